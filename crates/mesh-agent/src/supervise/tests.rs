use mesh_types::InstanceSize;

use super::*;

fn record(run: bool) -> Record {
    let n = |s: &str| Name::parse(s).unwrap();
    let w = Wanted {
        id: "app-web-00000000-0".into(),
        environment: n("shop"),
        stack: n("app"),
        service: n("web"),
        deployment: None,
        generation: "00000000".into(),
        kind: ServiceKind::Web,
        hostname: "app-web".into(),
        image: mesh_types::desired::ImageRef::Builtin {
            name: "busybox".into(),
        },
        command: None,
        env: Default::default(),
        limits: InstanceSize::Nano.limits(),
        port: 5000,
        health: HealthCheck::default(),
    };
    Record::new(&w, run)
}

const CRASH: ExitStatus = ExitStatus {
    code: Some(1),
    signal: None,
    oom_killed: false,
};

#[test]
fn backoff_doubles_up_to_a_cap_and_resets_after_a_stable_run() {
    let mut r = record(false);
    r.started(Ipv4Addr::new(10, 0, 0, 2), 0);
    let mut waits = Vec::new();
    let mut now = 100;
    for _ in 0..8 {
        r.ended(CRASH, now);
        waits.push(r.restart_at.unwrap() - now);
        now = r.restart_at.unwrap();
        r.started(Ipv4Addr::new(10, 0, 0, 2), now);
    }
    assert_eq!(
        waits,
        [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000]
    );
    r.ended(CRASH, now + STABLE_MS);
    assert_eq!(
        r.restart_at.unwrap() - (now + STABLE_MS),
        1_000,
        "a long run resets the backoff"
    );
}

#[test]
fn states_say_what_happened() {
    let mut r = record(false);
    r.started(Ipv4Addr::new(10, 0, 0, 2), 0);
    assert_eq!(r.state(true, 1_000).0, InstanceState::Starting);
    assert_eq!(
        r.state(true, 31_000),
        (
            InstanceState::Running,
            Some("running, but its health check fails".into())
        )
    );
    r.healthy = true;
    assert_eq!(r.state(true, 31_000).0, InstanceState::Healthy);
    for _ in 0..3 {
        r.ended(CRASH, 40_000);
    }
    let (state, msg) = r.state(false, 40_000);
    assert_eq!(state, InstanceState::BackingOff);
    assert!(
        msg.unwrap()
            .starts_with("crash loop: exited with code 1; restart 3 in 4s")
    );
    r.ended(
        ExitStatus {
            code: Some(137),
            signal: Some(9),
            oom_killed: true,
        },
        50_000,
    );
    assert_eq!(r.state(false, 50_000).0, InstanceState::OomKilled);
    let report = r.report("app-web-00000000-0", false, 50_000);
    assert_eq!(report.exit_code, Some(137));
    assert!(report.message.unwrap().contains("more memory"));
}

#[test]
fn a_finished_cron_run_is_stopped_not_restarted() {
    let mut r = record(true);
    r.started(Ipv4Addr::new(10, 0, 0, 3), 0);
    r.ended(
        ExitStatus {
            code: Some(0),
            signal: None,
            oom_killed: false,
        },
        500,
    );
    assert_eq!(r.restart_at, None);
    assert_eq!(
        r.state(false, 600),
        (InstanceState::Stopped, Some("exited with code 0".into()))
    );
}
