use mesh_types::api::{HealthCheck, ServiceKind};
use mesh_types::desired::ImageRef;
use mesh_types::{InstanceSize, Name};

use super::*;
use crate::plan::Wanted;

const TICK: Duration = Duration::from_millis(500);
const NOW: UnixMs = 1_000_000;

fn record(run: bool, started_ms_ago: i64) -> Record {
    let w = Wanted {
        id: "app-web-0123abcd-0".into(),
        environment: Name::parse("shop").unwrap(),
        stack: Name::parse("app").unwrap(),
        service: Name::parse("web").unwrap(),
        deployment: None,
        generation: "0123abcd".into(),
        kind: ServiceKind::Web,
        hostname: "app-web".into(),
        image: ImageRef::Builtin {
            name: "busybox".into(),
        },
        command: None,
        env: Default::default(),
        limits: InstanceSize::Nano.limits(),
        port: 5000,
        health: HealthCheck::default(),
    };
    let mut r = Record::new(&w, run);
    r.started(std::net::Ipv4Addr::new(10, 0, 0, 2), NOW - started_ms_ago);
    r
}

#[test]
fn a_starting_instance_shortens_the_requeue() {
    assert_eq!(requeue_after(&[], NOW, TICK), TICK);
    let starting = record(false, 1_000);
    assert_eq!(requeue_after([&starting], NOW, TICK), STARTING_TICK);
    assert_eq!(
        requeue_after([&starting], NOW, Duration::from_millis(50)),
        Duration::from_millis(50),
        "never longer than the configured tick"
    );
}

#[test]
fn healthy_ended_old_and_cron_instances_do_not_shorten_it() {
    let mut healthy = record(false, 1_000);
    healthy.healthy = true;
    let mut ended = record(false, 1_000);
    ended.ended(mesh_runtime::ExitStatus::UNKNOWN, NOW);
    let old = record(false, STARTING_WINDOW_MS);
    let run = record(true, 1_000);
    assert_eq!(
        requeue_after([&healthy, &ended, &old, &run], NOW, TICK),
        TICK
    );
}

#[test]
fn reconnects_back_off_doubling_up_to_a_cap() {
    let mut waits = Vec::new();
    let mut last = None;
    for _ in 0..8 {
        let w = reconnect_after(last);
        waits.push(w.as_millis());
        last = Some(w);
    }
    assert_eq!(
        waits,
        vec![250, 500, 1_000, 2_000, 4_000, 8_000, 10_000, 10_000]
    );
}
