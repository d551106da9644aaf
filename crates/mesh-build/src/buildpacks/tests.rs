use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

#[test]
fn names_packages_and_detection_order_agree() {
    let names = builtin_names();
    assert_eq!(
        names,
        [
            "nodejs", "python", "ruby", "go", "php", "java", "rust", "static"
        ]
    );
    for name in names {
        assert!(is_builtin(name));
        assert!(!runtime_packages(name).is_empty(), "{name}");
    }
    assert!(runtime_packages("cobol").is_empty());
    assert_eq!(runtime_packages("static"), ["busybox"]);
}

#[test]
fn write_builtin_writes_executable_scripts_and_their_helpers() {
    for name in builtin_names() {
        let dir = tempfile::tempdir().unwrap();
        write_builtin(name, dir.path()).unwrap();
        for script in ["detect", "compile", "release"] {
            let path = dir.path().join("bin").join(script);
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o755, "{name}/bin/{script}");
            let text = fs::read_to_string(&path).unwrap();
            assert!(text.starts_with("#!/bin/sh\n"), "{name}/bin/{script}");
            // Every helper a script sources is written beside it.
            for line in text.lines().filter(|l| l.starts_with(". ")) {
                let lib = line.rsplit('/').next().unwrap().trim_end_matches('"');
                assert!(dir.path().join("lib").join(lib).is_file(), "{line}");
            }
        }
    }
}

#[test]
fn write_builtin_refuses_an_unknown_name() {
    let dir = tempfile::tempdir().unwrap();
    let err = write_builtin("cobol", dir.path()).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    assert!(err.to_string().contains("cobol"), "{err}");
}

/// Runs a written buildpack's script on a source dir with the host's sh.
fn run_script(name: &str, script: &str, src: &Path) -> (bool, String) {
    let bp = tempfile::tempdir().unwrap();
    write_builtin(name, bp.path()).unwrap();
    let out = Command::new(bp.path().join("bin").join(script))
        .arg(src)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The scripts' own detection and web command agree with [`crate::detect_buildpack`] on every
/// example. nodejs's bin/release needs node, so its command is checked only when node is here.
#[test]
fn scripts_agree_with_rust_detection_on_the_examples() {
    let has_node = Command::new("node").arg("--version").output().is_ok();
    for entry in fs::read_dir(examples()).unwrap() {
        let src = entry.unwrap().path();
        if src.join("Dockerfile").is_file() {
            continue;
        }
        let found = crate::detect_buildpack(&src).unwrap();
        let name = found.name.as_str();
        let first_match = builtin_names()
            .iter()
            .find(|n| run_script(n, "detect", &src).0)
            .copied();
        assert_eq!(first_match, Some(name), "{}", src.display());
        assert_eq!(run_script(name, "detect", &src).1.trim(), name);
        if name == "nodejs" && !has_node {
            continue;
        }
        let (ok, yaml) = run_script(name, "release", &src);
        assert!(ok, "{name} release on {}: {yaml}", src.display());
        let web = parse_release(&yaml).unwrap().remove("web");
        assert_eq!(web, found.default_web_command, "{}", src.display());
    }
}

#[test]
fn parse_release_reads_default_process_types() {
    let yaml = "---\naddons: []\ndefault_process_types:\n  web: npm start\n  worker: 'node \
                worker.js --name ''a'''\n  clock: \"bin/clock \\\"x\\\"\"\nconfig_vars:\n  A: b\n";
    let want: BTreeMap<String, String> = [
        ("web", "npm start"),
        ("worker", "node worker.js --name 'a'"),
        ("clock", "bin/clock \"x\""),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(parse_release(yaml).unwrap(), want);
    // Colons inside the command stay in it.
    let types = parse_release("default_process_types:\n  web: php -S 0.0.0.0:$PORT -t .\n");
    assert_eq!(types.unwrap()["web"], "php -S 0.0.0.0:$PORT -t .");
}

#[test]
fn parse_release_accepts_no_process_types() {
    for yaml in [
        "",
        "---\n",
        "--- {}\n",
        "---\ndefault_process_types: {}\n",
        "addons: []\n",
    ] {
        assert_eq!(parse_release(yaml).unwrap(), BTreeMap::new(), "{yaml:?}");
    }
}

#[test]
fn parse_release_refuses_malformed_answers() {
    for (yaml, line) in [
        ("default_process_types: web\n", 1),
        ("default_process_types:\n  web npm start\n", 2),
        ("default_process_types:\n  web:\n", 2),
        ("default_process_types:\n  web: 'unterminated\n", 2),
        ("nonsense\n", 1),
    ] {
        let err = parse_release(yaml).unwrap_err();
        assert!(
            matches!(err, ReleaseError::Line { line: l, .. } if l == line),
            "{yaml:?}: {err}"
        );
    }
}
