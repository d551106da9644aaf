use super::*;

const T: UnixMs = 1_700_000_000_000;

fn n(s: &str) -> Name {
    s.parse().unwrap()
}

fn rep(phase: ReplacementPhase) -> Replacement {
    Replacement {
        rack: n("east"),
        old_server: n("east-1"),
        new_server: n("east-2"),
        size: "pool".into(),
        version: "0.1.0".into(),
        phase,
        since: T,
        phase_since: T + 10_000,
        drain_grace_ms: 60_000,
        timeout_ms: 600_000,
        message: None,
    }
}

fn running(missing: &[&str]) -> NewServer {
    NewServer::Running {
        missing: missing.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn the_new_server_takes_over_only_once_healthy() {
    let r = rep(ReplacementPhase::Starting);
    assert_eq!(step(&r, &running(&[]), T + 20_000), Step::Switch);
    assert_eq!(
        step(&r, &running(&["web-web 0/2 healthy"]), T + 20_000),
        Step::Wait(Some(
            "east-2 runs web-web 0/2 healthy of the rack's instances".into()
        ))
    );
    assert_eq!(
        step(&r, &NewServer::Absent, T + 20_000),
        Step::Wait(Some("the agent of east-2 has not joined yet".into()))
    );
    // Still being made: nothing to look at yet.
    assert_eq!(
        step(&rep(ReplacementPhase::Making), &NewServer::Absent, T + 1),
        Step::Wait(None)
    );
}

#[test]
fn a_new_server_that_is_not_healthy_in_time_is_undone_saying_why() {
    let r = rep(ReplacementPhase::Starting);
    assert_eq!(
        step(&r, &running(&["web-web 1/2 healthy"]), T + 600_001),
        Step::Undo(
            "east-2 did not become healthy within 600s: east-2 runs web-web 1/2 healthy of the \
             rack's instances"
                .into()
        )
    );
    assert_eq!(
        step(&r, &NewServer::Lost, T + 600_001),
        Step::Undo(
            "east-2 did not become healthy within 600s: east-2 is lost (no heartbeat)".into()
        )
    );
    assert_eq!(
        step(
            &rep(ReplacementPhase::Making),
            &NewServer::Absent,
            T + 600_001
        ),
        Step::Undo("server east-2 was not made within 600s".into())
    );
    // Healthy at the last moment still switches.
    assert_eq!(step(&r, &running(&[]), T + 600_001), Step::Switch);
}

#[test]
fn the_old_server_forwards_for_the_drain_grace_then_goes() {
    let r = rep(ReplacementPhase::Forwarding);
    assert_eq!(
        step(&r, &running(&[]), T + 10_000 + 59_999),
        Step::Wait(None)
    );
    assert_eq!(step(&r, &running(&[]), T + 10_000 + 60_000), Step::Remove);
    // Forwarding outlives the timeout: the timeout is for becoming healthy only.
    assert_eq!(step(&r, &NewServer::Lost, T + 10_000_000), Step::Remove);
    for phase in [ReplacementPhase::Removing, ReplacementPhase::Undoing] {
        assert_eq!(step(&rep(phase), &NewServer::Absent, T), Step::Delete);
    }
}

#[test]
fn each_server_is_told_its_part() {
    let starting = rep(ReplacementPhase::Starting);
    let forwarding = rep(ReplacementPhase::Forwarding);
    assert_eq!(role(None, &n("east-1")), Role::Sole);
    assert_eq!(
        role(Some(&starting), &n("east-1")),
        Role::Outgoing { forwarding: false }
    );
    assert_eq!(
        role(Some(&forwarding), &n("east-1")),
        Role::Outgoing { forwarding: true }
    );
    assert_eq!(
        role(Some(&starting), &n("east-2")),
        Role::Incoming { forwarded: false }
    );
    assert_eq!(
        role(Some(&rep(ReplacementPhase::Removing)), &n("east-2")),
        Role::Incoming { forwarded: true }
    );
    assert_eq!(role(Some(&starting), &n("other")), Role::Sole);
    // Undoing: the old server serves as before, without forwarding.
    assert_eq!(
        role(Some(&rep(ReplacementPhase::Undoing)), &n("east-1")),
        Role::Outgoing { forwarding: false }
    );
}

#[test]
fn the_new_server_keeps_its_instance_ids_once_alone() {
    let r = rep(ReplacementPhase::Starting);
    // While both run, their ids differ.
    assert_eq!(salt(Some(&r), &n("east-1"), None), None);
    assert_eq!(salt(Some(&r), &n("east-2"), None), Some("east-2".into()));
    // Once done, the rack's salt is the new server's name: the same ids.
    assert_eq!(
        salt(None, &n("east-2"), Some("east-2".into())),
        Some("east-2".into())
    );
    // The next replacement: the old (east-2) keeps its salt, the new one gets its own.
    let next = Replacement {
        old_server: n("east-2"),
        new_server: n("east-3"),
        ..r
    };
    assert_eq!(
        salt(Some(&next), &n("east-2"), Some("east-2".into())),
        Some("east-2".into())
    );
    assert_eq!(
        salt(Some(&next), &n("east-3"), Some("east-2".into())),
        Some("east-3".into())
    );
}

#[test]
fn only_the_new_server_joins_and_only_before_the_switch() {
    let r = rep(ReplacementPhase::Starting);
    assert!(admits(Some(&r), &n("east-2")));
    assert!(!admits(Some(&r), &n("east-3")));
    assert!(!admits(None, &n("east-2")));
    assert!(!admits(Some(&rep(ReplacementPhase::Undoing)), &n("east-2")));
}

#[test]
fn options_versions_and_names_say_what_is_wrong() {
    assert_eq!(durations(None, None), Ok((300_000, 900_000)));
    assert_eq!(durations(Some(0), Some(1)), Ok((0, 1000)));
    assert_eq!(
        durations(Some(86_401), None).unwrap_err().to_string(),
        "--drain-grace: at most 86400s (one day); DNS caches rarely keep a record longer"
    );
    assert_eq!(
        durations(None, Some(0)).unwrap_err().to_string(),
        "--timeout: from 1s to 7200s (two hours)"
    );
    assert_eq!(version(None, "0.1.0"), Ok("0.1.0".into()));
    assert_eq!(version(Some("v0.1.0"), "0.1.0"), Ok("0.1.0".into()));
    assert_eq!(
        version(Some("0.2.0"), "0.1.0").unwrap_err().to_string(),
        "this control plane installs mesh 0.1.0 only (its own binary on made servers): upgrade \
         the control plane to 0.2.0 first, then run `mesh rack upgrade` again"
    );
    assert_eq!(next_server("east", &["east-1"]), "east-2");
    assert_eq!(
        next_server("east", &["east-9", "east-10", "eastern-12", "east-x"]),
        "east-11"
    );
    assert_eq!(next_server("east", &[]), "east-1");
}
