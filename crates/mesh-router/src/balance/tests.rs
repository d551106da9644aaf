use std::net::SocketAddr;

use super::*;
use crate::config::{InstanceConfig, RouteConfig, RouterConfig, ServiceKey, UpstreamConfig};
use crate::metrics::Metrics;
use crate::table::RouteTable;

fn table(reg: &InFlightRegistry, states: &[(bool, bool)]) -> RouteTable {
    let key = ServiceKey::new("e", "s", "web");
    let cfg = RouterConfig {
        routes: vec![RouteConfig {
            host: "a.test".to_owned(),
            path: "/".to_owned(),
            service: key.clone(),
        }],
        upstreams: vec![UpstreamConfig {
            service: key,
            instances: states
                .iter()
                .enumerate()
                .map(|(i, (healthy, draining))| InstanceConfig {
                    id: format!("i{i}"),
                    addr: SocketAddr::from(([127, 0, 0, 1], 20_000 + i as u16)),
                    healthy: *healthy,
                    draining: *draining,
                })
                .collect(),
        }],
        ..RouterConfig::default()
    };
    RouteTable::build(&cfg, reg, &Metrics::new())
        .expect("valid")
        .0
}

fn instances(t: &RouteTable) -> &[InstanceAddr] {
    &t.lookup("a.test", "/").expect("route").upstream.instances
}

#[test]
fn skips_unhealthy_draining_and_tried() {
    let reg = InFlightRegistry::default();
    let t = table(
        &reg,
        &[(false, false), (true, true), (true, false), (true, false)],
    );
    let inst = instances(&t);
    for start in 0..20 {
        let got = pick(inst, start, random_u64(), &[]).expect("some instance");
        assert!(got == 2 || got == 3, "picked ineligible {got}");
        assert_eq!(pick(inst, start, random_u64(), &[2]), Some(3));
        assert_eq!(pick(inst, start, random_u64(), &[2, 3]), None);
    }
}

#[test]
fn none_when_nothing_eligible() {
    let reg = InFlightRegistry::default();
    let t = table(&reg, &[(false, false), (true, true)]);
    assert_eq!(pick(instances(&t), 0, 0, &[]), None);
    assert_eq!(pick(&[], 0, 0, &[]), None);
}

#[test]
fn equal_load_rotates_evenly() {
    let reg = InFlightRegistry::default();
    let t = table(&reg, &[(true, false); 3]);
    let mut hits = [0usize; 3];
    for start in 0..300 {
        hits[pick(instances(&t), start, random_u64(), &[]).expect("pick")] += 1;
    }
    assert_eq!(hits, [100, 100, 100]);
}

#[test]
fn prefers_fewer_outstanding() {
    let reg = InFlightRegistry::default();
    let t = table(&reg, &[(true, false); 2]);
    let inst = instances(&t);
    let _busy: Vec<_> = (0..5).map(|_| inst[0].in_flight.start()).collect();
    for start in 0..10 {
        assert_eq!(pick(inst, start, random_u64(), &[]), Some(1));
    }
}

#[test]
fn counters_survive_table_swaps_and_prune() {
    let reg = InFlightRegistry::default();
    let t1 = table(&reg, &[(true, false)]);
    let guard = instances(&t1)[0].in_flight.start();
    drop(t1);
    // The instance is draining in the new table: same counter, still counting.
    let t2 = table(&reg, &[(true, true)]);
    assert_eq!(instances(&t2)[0].in_flight(), 1);
    assert_eq!(reg.get("i0"), 1);
    drop(t2);
    reg.prune();
    assert_eq!(reg.get("i0"), 1, "held by an in-flight request");
    drop(guard);
    reg.prune();
    assert_eq!(reg.get("i0"), 0);
    assert!(reg.counters.lock().expect("lock").is_empty());
}

#[test]
fn random_varies() {
    let a = random_u64();
    let b = random_u64();
    assert_ne!(a, b);
}
