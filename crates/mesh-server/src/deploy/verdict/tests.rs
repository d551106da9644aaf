use mesh_types::api::{HealthCheck, ServiceKind, ServiceStatus};
use mesh_types::{InstanceSize, Version};

use super::*;

const T: UnixMs = 1_700_000_000_000;

fn n(s: &str) -> Name {
    s.parse().unwrap()
}

/// Service `web` asking for `count` instances per rack, with a 30 s grace.
fn web(count: u32) -> Service {
    Service {
        environment: n("shop"),
        stack: n("app"),
        name: n("web"),
        kind: ServiceKind::Web,
        command: None,
        schedule: None,
        port: 5000,
        instances: count,
        size: InstanceSize::Small,
        health: HealthCheck::default(),
        hostname: "app-web".into(),
        status: ServiceStatus {
            desired: count,
            running: 0,
            healthy: 0,
        },
        created_at: T,
        updated_at: T,
    }
}

fn new(id: &str, rack: &str, state: InstanceState) -> Instance {
    Instance {
        id: id.into(),
        environment: n("shop"),
        stack: n("app"),
        service: n("web"),
        deployment: Some(Version(2)),
        server: Some(n(&format!("box-{rack}"))),
        rack: Some(n(rack)),
        state,
        address: None,
        restarts: 0,
        exit_code: None,
        message: None,
        started_at: Some(T),
        updated_at: T,
    }
}

fn two_racks() -> Vec<Name> {
    vec![n("local"), n("east")]
}

#[test]
fn healthy_only_when_every_rack_has_its_count() {
    let a = new("a", "local", InstanceState::Healthy);
    let b = new("b", "east", InstanceState::Healthy);
    assert_eq!(
        standing(&web(1), &two_racks(), &[&a, &b], T, T + 5_000),
        Standing::Healthy
    );
    // Two healthy on one rack do not make up for none on the other.
    let a2 = new("a2", "local", InstanceState::Healthy);
    assert_eq!(
        standing(&web(1), &two_racks(), &[&a, &a2], T, T + 5_000),
        Standing::Waiting
    );
    // The count is per rack: 2 asked means 2 on each.
    assert_eq!(
        standing(&web(2), &two_racks(), &[&a, &a2, &b], T, T + 5_000),
        Standing::Waiting
    );
    let b2 = new("b2", "east", InstanceState::Healthy);
    assert_eq!(
        standing(&web(2), &two_racks(), &[&a, &a2, &b, &b2], T, T + 5_000),
        Standing::Healthy
    );
}

#[test]
fn one_rack_not_getting_healthy_fails_the_whole_rollout() {
    let a = new("a", "local", InstanceState::Healthy);
    let b = Instance {
        message: Some("connection refused".into()),
        ..new("b", "east", InstanceState::Starting)
    };
    // Within east's grace: waiting.
    assert_eq!(
        standing(&web(1), &two_racks(), &[&a, &b], T, T + 20_000),
        Standing::Waiting
    );
    // Past it: failed, naming the rack.
    assert_eq!(
        standing(&web(1), &two_racks(), &[&a, &b], T, T + 33_000),
        Standing::Failed(
            "the new instances of web on rack east did not become healthy within 30s: \
             starting: connection refused"
                .into()
        )
    );
    // A crash loop on one rack fails at once.
    let crashing = Instance {
        restarts: CRASHES,
        ..new("b", "east", InstanceState::Crashed)
    };
    assert!(matches!(
        standing(&web(1), &two_racks(), &[&a, &crashing], T, T + 1_000),
        Standing::Failed(_)
    ));
}

#[test]
fn a_rack_where_nothing_starts_fails_after_the_start_slack() {
    let a = new("a", "local", InstanceState::Healthy);
    assert_eq!(
        standing(&web(1), &two_racks(), &[&a], T, T + 80_000),
        Standing::Waiting
    );
    assert_eq!(
        standing(&web(1), &two_racks(), &[&a], T, T + 91_000),
        Standing::Failed(
            "no new instance of web on rack east started within 90s (is an agent running on \
             rack east?)"
                .into()
        )
    );
}

#[test]
fn one_rack_reads_as_before() {
    let racks = [n("local")];
    assert_eq!(
        standing(&web(1), &racks, &[], T, T + 91_000),
        Standing::Failed(
            "no new instance of web started within 90s (is an agent running on the \
             environment's rack?)"
                .into()
        )
    );
    let a = new("a", "local", InstanceState::Healthy);
    assert_eq!(
        progress(&web(1), &racks, &[&a], 0),
        "       web: 1/1 new healthy"
    );
    assert_eq!(
        progress(&web(2), &racks, &[&a], 1),
        "       web: 1/2 new healthy, 1 old running"
    );
}

#[test]
fn progress_counts_each_rack() {
    let a = new("a", "local", InstanceState::Healthy);
    let b = new("b", "east", InstanceState::Starting);
    assert_eq!(
        progress(&web(1), &two_racks(), &[&a, &b], 2),
        "       web: new healthy 1/1 on local, 0/1 on east, 2 old running"
    );
}
