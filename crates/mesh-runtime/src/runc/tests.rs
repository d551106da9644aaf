use super::*;

fn runc() -> Runc {
    Runc {
        program: "runc".into(),
        root: "/d/runc".into(),
    }
}

#[test]
fn every_command_names_the_state_root() {
    let r = runc();
    assert_eq!(r.state("a").line(), "runc --root /d/runc state a");
    assert_eq!(r.list().line(), "runc --root /d/runc list --format json");
    assert_eq!(
        r.kill("a", "SIGTERM").line(),
        "runc --root /d/runc kill a SIGTERM"
    );
    assert_eq!(
        r.delete_force("a").line(),
        "runc --root /d/runc delete --force a"
    );
    assert_eq!(
        r.exec("a", &["sh".into(), "-c".into(), "id -u".into()])
            .args,
        ["--root", "/d/runc", "exec", "a", "sh", "-c", "id -u"]
    );
}

#[test]
fn parses_state_and_list() {
    let s = parse_state(
        r#"{"ociVersion":"1.0.2-dev","id":"a","pid":4711,"status":"running","bundle":"/b","rootfs":"/b/rootfs","created":"2026-01-01T00:00:00Z","owner":""}"#,
    )
    .unwrap();
    assert_eq!(s.pid, 4711);
    assert!(s.is_alive());
    let stopped = parse_state(r#"{"id":"a","pid":0,"status":"stopped"}"#).unwrap();
    assert!(!stopped.is_alive());
    assert_eq!(parse_state(""), None);
    assert!(parse_list("null\n").is_empty());
    let l = parse_list(
        r#"[{"id":"a","pid":1,"status":"running"},{"id":"b","pid":0,"status":"stopped"}]"#,
    );
    assert_eq!(l.len(), 2);
    assert_eq!(l[1].status, "stopped");
}

#[test]
fn recognises_runc_error_words() {
    assert!(is_missing("container does not exist"));
    assert!(is_not_running(
        "cannot kill container: container not running"
    ));
    assert!(!is_missing("permission denied"));
}
