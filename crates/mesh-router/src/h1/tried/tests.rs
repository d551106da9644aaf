use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

use super::*;
use crate::balance::InFlight;
use crate::config::ServiceKey;
use crate::table::InstanceAddr;

/// An upstream of `n` instances; those in `out` are unhealthy.
fn upstream(n: usize, out: &[usize]) -> Upstream {
    Upstream {
        key: ServiceKey::new("env", "app", "web"),
        name: Arc::from("env/app/web"),
        instances: (0..n)
            .map(|i| InstanceAddr {
                id: Arc::from(format!("web-{i}")),
                addr: SocketAddr::from(([127, 0, 0, 1], 10_000 + i as u16)),
                healthy: !out.contains(&i),
                draining: false,
                in_flight: Arc::new(InFlight::default()),
            })
            .collect(),
    }
}

/// Retries as the engine makes them when every connect fails: pick, count the attempt, stop
/// at the last chance. Returns the instances in the order they were tried.
fn fail_everywhere(up: &Upstream, max_attempts: u32) -> Vec<usize> {
    let mut tried = Tried::new();
    let mut order = Vec::new();
    let mut attempts = 0;
    while let Some(i) = tried.pick(up) {
        attempts += 1;
        order.push(i);
        assert_eq!(tried.len(), order.len(), "every try is remembered");
        if tried.last_chance(attempts, max_attempts, up.instances.len()) {
            break;
        }
    }
    order
}

#[test]
fn retries_over_many_failing_instances_never_repeat_one() {
    // More instances than fit inline, and attempts enough to try them all.
    for _ in 0..50 {
        let up = upstream(20, &[]);
        let order = fail_everywhere(&up, 100);
        let distinct: HashSet<usize> = order.iter().copied().collect();
        assert_eq!(order.len(), 20, "each instance once, then 502: {order:?}");
        assert_eq!(distinct.len(), 20, "an instance was tried twice: {order:?}");
    }
}

#[test]
fn the_last_instance_is_the_last_chance_however_many_there_are() {
    let up = upstream(12, &[]);
    let mut tried = Tried::new();
    for k in 1..=12u32 {
        assert!(tried.pick(&up).is_some());
        assert_eq!(
            tried.last_chance(k, 100, up.instances.len()),
            k == 12,
            "after {k} tries"
        );
    }
    assert_eq!(tried.pick(&up), None, "nothing left to try");
}

#[test]
fn max_attempts_still_caps_the_tries() {
    let up = upstream(20, &[]);
    assert_eq!(fail_everywhere(&up, 3).len(), 3);
    assert_eq!(fail_everywhere(&up, 11).len(), 11);
}

#[test]
fn unhealthy_instances_are_never_tried() {
    let up = upstream(12, &[0, 5, 11]);
    let order = fail_everywhere(&up, 100);
    assert_eq!(order.len(), 9, "{order:?}");
    assert!(order.iter().all(|i| ![0, 5, 11].contains(i)), "{order:?}");
}

#[test]
fn tries_past_the_inline_slots_keep_the_earlier_ones_in_order() {
    let mut tried = Tried::new();
    assert!(tried.is_empty());
    for i in 0..INLINE {
        tried.push(i * 10);
    }
    assert!(tried.spilled.is_empty(), "the inline slots suffice so far");
    for i in INLINE..INLINE + 5 {
        tried.push(i * 10);
    }
    let want: Vec<usize> = (0..INLINE + 5).map(|i| i * 10).collect();
    assert_eq!(tried.as_slice(), want.as_slice());
    assert_eq!(tried.len(), INLINE + 5);
}
