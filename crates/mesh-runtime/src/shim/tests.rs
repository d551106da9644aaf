use super::*;

fn sample() -> ShimArgs {
    ShimArgs {
        id: "web-1".into(),
        runc: "/usr/sbin/runc".into(),
        runc_root: "/d/runc".into(),
        bundle: "/d/instances/web-1/bundle".into(),
        stdout: "/d/instances/web-1/stdout.log".into(),
        stderr: "/d/instances/web-1/stderr.log".into(),
        pid_file: "/d/instances/web-1/container.pid".into(),
        exit_file: "/d/instances/web-1/exit.json".into(),
        runc_log: "/d/instances/web-1/runc.log".into(),
        oom_file: Some("/sys/fs/cgroup/memory/wm/web-1/memory.oom_control".into()),
    }
}

#[test]
fn arguments_round_trip() {
    let a = sample();
    assert_eq!(ShimArgs::parse(a.to_args()).unwrap(), a);
    let mut b = sample();
    b.oom_file = None;
    assert_eq!(ShimArgs::parse(b.to_args()).unwrap(), b);
}

#[test]
fn bad_arguments_are_named() {
    let e = ShimArgs::parse(["--id".to_string()]).unwrap_err();
    assert_eq!(e, "--id needs a value");
    let e = ShimArgs::parse(["--nope".to_string(), "x".into()]).unwrap_err();
    assert!(e.contains("--nope"), "{e}");
    let e = ShimArgs::parse(["--id".to_string(), "x".into()]).unwrap_err();
    assert_eq!(e, "--runc is required");
}

#[test]
fn reports_are_one_line_each() {
    let r = ShimReport::Started { pid: 77 };
    assert_eq!(ShimReport::parse(&r.line()), r);
    let f = ShimReport::Failed("exec: \"nope\":\nnot found".into());
    assert_eq!(f.line().matches('\n').count(), 1);
    assert_eq!(
        ShimReport::parse(&f.line()),
        ShimReport::Failed("exec: \"nope\": not found".into())
    );
    assert!(matches!(ShimReport::parse("garbage"), ShimReport::Failed(m) if m.contains("garbage")));
}

#[test]
fn oom_counters_of_both_cgroup_versions() {
    let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
    let v2 = "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n";
    assert_eq!(oom_kills(v1), 2);
    assert_eq!(oom_kills(v2), 1);
    assert_eq!(oom_kills("oom_kill_disable 0\n"), 0);
}

#[test]
fn wait_statuses_follow_the_shell_convention() {
    let pid = Pid::from_raw(5);
    let st = exit_status(WaitStatus::Exited(pid, 3)).unwrap();
    assert_eq!((st.code, st.signal), (Some(3), None));
    let st = exit_status(WaitStatus::Signaled(pid, Signal::SIGKILL, false)).unwrap();
    assert_eq!((st.code, st.signal), (Some(137), Some(9)));
    assert_eq!(exit_status(WaitStatus::StillAlive), None);
}

#[test]
fn exit_records_are_flat_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exit.json");
    assert_eq!(read_exit(&path).unwrap(), None);
    let rec = ExitRecord {
        status: ExitStatus {
            code: Some(137),
            signal: Some(9),
            oom_killed: true,
        },
        at_ms: 5,
    };
    std::fs::write(&path, serde_json::to_vec(&rec).unwrap()).unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        r#"{"code":137,"signal":9,"oom_killed":true,"at_ms":5}"#
    );
    assert_eq!(read_exit(&path).unwrap(), Some(rec));
}

#[test]
fn runc_errors_come_from_its_json_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("runc.log");
    std::fs::write(
        &log,
        concat!(
            r#"{"level":"warning","msg":"meh","time":"t"}"#,
            "\n",
            r#"{"level":"error","msg":"runc run failed: exec: \"nope\": executable file not found","time":"t"}"#,
            "\n"
        ),
    )
    .unwrap();
    assert_eq!(
        last_runc_error(&log).unwrap(),
        "runc run failed: exec: \"nope\": executable file not found"
    );
}
