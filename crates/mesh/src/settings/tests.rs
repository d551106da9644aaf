use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;

use super::*;

fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

#[test]
fn the_config_path_follows_mesh_config_then_xdg_then_home() {
    let all = vars(&[
        ("MESH_CONFIG", "/etc/mesh.toml"),
        ("XDG_CONFIG_HOME", "/x"),
        ("HOME", "/h"),
    ]);
    assert_eq!(config_path(&all).unwrap(), PathBuf::from("/etc/mesh.toml"));
    let xdg = vars(&[("XDG_CONFIG_HOME", "/x"), ("HOME", "/h")]);
    assert_eq!(
        config_path(&xdg).unwrap(),
        PathBuf::from("/x/mesh/config.toml")
    );
    let home = vars(&[("XDG_CONFIG_HOME", ""), ("HOME", "/h")]);
    assert_eq!(
        config_path(&home).unwrap(),
        PathBuf::from("/h/.config/mesh/config.toml")
    );
    // A relative XDG_CONFIG_HOME is invalid by the spec and ignored.
    let relative = vars(&[("XDG_CONFIG_HOME", "rel"), ("HOME", "/h")]);
    assert_eq!(
        config_path(&relative).unwrap(),
        PathBuf::from("/h/.config/mesh/config.toml")
    );
    let err = config_path(&vars(&[])).unwrap_err().to_string();
    assert!(err.contains("set HOME or MESH_CONFIG"), "{err}");
}

#[test]
fn the_data_dir_follows_xdg_then_home() {
    let xdg = vars(&[("XDG_DATA_HOME", "/d"), ("HOME", "/h")]);
    assert_eq!(
        default_data_dir(&xdg).unwrap(),
        PathBuf::from("/d/widemesh")
    );
    let home = vars(&[("HOME", "/h")]);
    assert_eq!(
        default_data_dir(&home).unwrap(),
        PathBuf::from("/h/.local/share/widemesh")
    );
    assert!(default_data_dir(&vars(&[])).is_err());
}

#[test]
fn saved_config_is_private_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("mesh").join("config.toml");
    let s = Settings {
        api_url: Some("http://127.0.0.1:9".into()),
        token: Some("tok".into()),
    };
    save(&path, &s).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
    let dir_mode = std::fs::metadata(path.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700, "{dir_mode:o}");
    assert_eq!(load(&path).unwrap(), s);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("api_url = \"http://127.0.0.1:9\""), "{text}");
    assert!(text.contains("token = \"tok\""), "{text}");

    // Overwriting an existing, looser file leaves it private too.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    save(&path, &Settings::default()).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

#[test]
fn a_missing_file_is_empty_and_a_broken_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    assert_eq!(load(&path).unwrap(), Settings::default());
    std::fs::write(&path, "api_url = [").unwrap();
    let err = load(&path).unwrap_err().to_string();
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("is not valid"), "{err}");
}

#[test]
fn environment_variables_override_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    save(
        &path,
        &Settings {
            api_url: Some("http://file:1".into()),
            token: Some("file-token".into()),
        },
    )
    .unwrap();
    let p = path.to_str().unwrap();
    let r = resolve(&vars(&[("MESH_CONFIG", p)])).unwrap();
    assert_eq!(r.api_url, "http://file:1");
    assert_eq!(r.token.as_deref(), Some("file-token"));
    let r = resolve(&vars(&[
        ("MESH_CONFIG", p),
        ("MESH_API_URL", "10.0.0.1:7440/"),
        ("MESH_TOKEN", "env-token"),
    ]))
    .unwrap();
    assert_eq!(r.api_url, "http://10.0.0.1:7440");
    assert_eq!(r.token.as_deref(), Some("env-token"));
}

#[test]
fn without_any_config_the_local_api_is_assumed_and_login_is_suggested() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("none.toml");
    let r = resolve(&vars(&[("MESH_CONFIG", p.to_str().unwrap())])).unwrap();
    assert_eq!(r.api_url, "http://127.0.0.1:7440");
    assert_eq!(r.token, None);
    let err = r.client().unwrap_err();
    let (message, hint) = crate::failure::describe(&err);
    assert!(message.starts_with("not logged in"), "{message}");
    assert!(hint.unwrap().contains("mesh login URL --token TOKEN"));
}

#[test]
fn urls_are_normalized() {
    assert_eq!(normalize_url("127.0.0.1:7440"), "http://127.0.0.1:7440");
    assert_eq!(
        normalize_url(" https://mesh.example.com/ "),
        "https://mesh.example.com"
    );
    assert_eq!(normalize_url("http://h:1/prefix/"), "http://h:1/prefix");
}
