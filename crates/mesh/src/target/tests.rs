use super::*;

fn link(env: Option<&str>, stack: Option<&str>) -> Link {
    Link {
        environment: env.map(str::to_string),
        stack: stack.map(str::to_string),
    }
}

#[test]
fn the_nearest_link_file_upwards_wins() {
    let root = tempfile::tempdir().unwrap();
    let deep = root.path().join("a").join("b").join("c");
    std::fs::create_dir_all(&deep).unwrap();
    assert!(find_link(&deep).unwrap().is_none());

    write_link(root.path(), &link(Some("shop"), Some("app"))).unwrap();
    let (path, found) = find_link(&deep).unwrap().unwrap();
    assert_eq!(path, root.path().join(".mesh/link.toml"));
    assert_eq!(found, link(Some("shop"), Some("app")));

    let mid = root.path().join("a");
    write_link(&mid, &link(Some("other"), None)).unwrap();
    let (path, found) = find_link(&deep).unwrap().unwrap();
    assert_eq!(path, mid.join(".mesh/link.toml"));
    assert_eq!(found, link(Some("other"), None));
}

#[test]
fn a_broken_link_file_is_named() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join(".mesh")).unwrap();
    std::fs::write(root.path().join(".mesh/link.toml"), "environment = 3").unwrap();
    let err = find_link(root.path()).unwrap_err().to_string();
    assert!(err.contains(".mesh/link.toml"), "{err}");
    assert!(err.contains("is not valid"), "{err}");
}

#[test]
fn the_written_file_has_the_documented_keys() {
    let root = tempfile::tempdir().unwrap();
    let path = write_link(root.path(), &link(Some("shop"), Some("app"))).unwrap();
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains("environment = \"shop\""), "{text}");
    assert!(text.contains("stack = \"app\""), "{text}");
}

#[test]
fn flags_win_over_the_link() {
    let t = Target {
        env_flag: Some("prod".into()),
        stack_flag: Some("api".into()),
        link: Some(link(Some("shop"), Some("app"))),
    };
    assert_eq!(t.env_stack().unwrap(), ("prod", "api"));
}

#[test]
fn the_linked_stack_applies_only_to_the_linked_environment() {
    let linked = Some(link(Some("shop"), Some("app")));
    let same = Target {
        env_flag: Some("shop".into()),
        stack_flag: None,
        link: linked.clone(),
    };
    assert_eq!(same.env_stack().unwrap(), ("shop", "app"));
    let other = Target {
        env_flag: Some("prod".into()),
        stack_flag: None,
        link: linked.clone(),
    };
    assert_eq!(other.env().unwrap(), "prod");
    assert!(other.stack().is_err());
    let plain = Target {
        link: linked,
        ..Target::default()
    };
    assert_eq!(plain.env_stack().unwrap(), ("shop", "app"));
}

#[test]
fn nothing_chosen_says_how_to_choose() {
    let t = Target::default();
    let (message, hint) = crate::failure::describe(&t.env().unwrap_err());
    assert_eq!(
        message,
        "no environment chosen: pass --env, or run this inside a directory linked with `mesh link`"
    );
    assert!(hint.unwrap().contains("mesh link --env"));
    let (message, _) = crate::failure::describe(&t.stack().unwrap_err());
    assert!(
        message.starts_with("no stack chosen: pass --stack"),
        "{message}"
    );
}
