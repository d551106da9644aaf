//! Load balancing: power of two choices on outstanding requests, over eligible instances.
//!
//! In-flight counters live in a registry keyed by instance id, not in the route table, so a
//! config update that marks an instance draining keeps counting the requests already sent to it
//! until they finish (`Router::in_flight` lets the agent wait for zero before stopping it).

use std::cell::Cell;
use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::table::InstanceAddr;

#[cfg(test)]
mod tests;

/// Outstanding requests of one instance.
#[derive(Debug, Default)]
pub struct InFlight(AtomicUsize);

impl InFlight {
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    /// Counts one request until the guard drops (response finished, failed or abandoned).
    pub fn start(self: &Arc<Self>) -> InFlightGuard {
        self.0.fetch_add(1, Ordering::Relaxed);
        InFlightGuard(self.clone())
    }
}

/// Decrements its instance's counter on drop.
#[derive(Debug)]
pub struct InFlightGuard(Arc<InFlight>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counters by instance id, shared by every table version.
#[derive(Debug, Default)]
pub struct InFlightRegistry {
    counters: Mutex<HashMap<String, Arc<InFlight>>>,
}

impl InFlightRegistry {
    /// The counter for `id`, created at zero if new.
    pub fn counter(&self, id: &str) -> Arc<InFlight> {
        let mut map = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = map.get(id) {
            return c.clone();
        }
        let c = Arc::new(InFlight::default());
        map.insert(id.to_owned(), c.clone());
        c
    }

    /// Outstanding requests of `id` (0 for an unknown id).
    pub fn get(&self, id: &str) -> usize {
        let map = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(id).map_or(0, |c| c.get())
    }

    /// Forgets counters that no table lists and no request holds.
    pub fn prune(&self) {
        let mut map = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, c| Arc::strong_count(c) > 1 || c.get() > 0);
    }
}

/// Power of two choices: the first candidate rotates with `start` (so equal loads spread
/// round-robin), the second is random among the other eligible ones; the one with fewer
/// outstanding requests wins, ties go to the first. Skips unhealthy, draining and `tried`.
pub fn pick(
    instances: &[InstanceAddr],
    start: usize,
    random: u64,
    tried: &[usize],
) -> Option<usize> {
    let usable = |i: usize| instances[i].eligible() && !tried.contains(&i);
    let n = (0..instances.len()).filter(|&i| usable(i)).count();
    let nth = |k: usize| (0..instances.len()).filter(|&i| usable(i)).nth(k);
    match n {
        0 => None,
        1 => nth(0),
        _ => {
            let a = start % n;
            let b = (a + 1 + (random % (n as u64 - 1)) as usize) % n;
            let (a, b) = (nth(a)?, nth(b)?);
            if instances[b].in_flight() < instances[a].in_flight() {
                Some(b)
            } else {
                Some(a)
            }
        }
    }
}

thread_local! {
    static RNG: Cell<u64> = Cell::new(RandomState::new().hash_one(0u64) | 1);
    static ROTATION: Cell<usize> = const { Cell::new(0) };
}

/// The next first P2C candidate of this thread. Each worker rotates on its own (a shared counter
/// would bounce between cores on every request); together they still spread equal loads evenly.
pub fn next_start() -> usize {
    ROTATION.with(|r| {
        let n = r.get();
        r.set(n.wrapping_add(1));
        n
    })
}

/// A fast per-thread xorshift64*: balancing and request ids need spread, not secrecy.
pub fn random_u64() -> u64 {
    RNG.with(|s| {
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}
