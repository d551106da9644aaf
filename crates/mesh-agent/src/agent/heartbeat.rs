//! Heartbeats: the control plane counts a server lost after `--server-lost-after` (30 s by
//! default) without hearing from it. Every delivered status report is a heartbeat, and one goes
//! out at least every [`HEARTBEAT_MS`]; when none was delivered for that long (a long reconcile
//! holds the runner's loop, or reports keep failing), this task registers again, which is a
//! heartbeat too.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use mesh_types::UnixMs;
use mesh_types::agent::RegisterServer;
use tokio::sync::watch;

use super::{Agent, now_ms};

/// A heartbeat goes out at least this often: a third of the control plane's default threshold,
/// so two can be lost without the server being counted lost.
pub(super) const HEARTBEAT_MS: UnixMs = 10_000;

/// Whether a heartbeat is due at `now`, the last one delivered at `last` (0: never).
fn due(last: UnixMs, now: UnixMs) -> bool {
    now - last >= HEARTBEAT_MS
}

impl Agent {
    /// What the agent registers its server with: also its heartbeat when nothing else is sent.
    pub(super) fn registration(&self) -> RegisterServer {
        RegisterServer {
            name: self.opts.server_name.clone(),
            address: self.opts.address.clone(),
            cpus: std::thread::available_parallelism()
                .map(|n| n.get() as f64)
                .unwrap_or(1.0),
            memory_mb: memory_mb(),
            version: Some(env!("CARGO_PKG_VERSION").to_string()),
            router: self.router.get().map(|a| a.to_string()),
        }
    }

    /// Records that the control plane heard from this server at `at`.
    pub(super) fn heard(&self, at: UnixMs) {
        self.last_heartbeat.fetch_max(at, Ordering::Relaxed);
    }

    /// Sends a heartbeat whenever none was delivered for [`HEARTBEAT_MS`], until `shutdown`.
    pub(super) async fn heartbeat_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let every = Duration::from_millis(HEARTBEAT_MS.unsigned_abs() / 2);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(every) => {}
            }
            let now = now_ms();
            let changed = self.reregister.swap(false, Ordering::Relaxed);
            if !changed && !due(self.last_heartbeat.load(Ordering::Relaxed), now) {
                continue;
            }
            match self.gateway.register(&self.registration()).await {
                Ok(_) => self.heard(now),
                Err(e) if changed => {
                    self.reregister.store(true, Ordering::Relaxed);
                    tracing::debug!(error = %e, "registration not delivered");
                }
                Err(e) => tracing::debug!(error = %e, "heartbeat not delivered"),
            }
        }
    }
}

fn memory_mb() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kb| kb / 1024)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_is_due_after_ten_quiet_seconds() {
        assert!(due(0, 1_700_000_000_000));
        assert!(!due(1000, 1000 + HEARTBEAT_MS - 1));
        assert!(due(1000, 1000 + HEARTBEAT_MS));
    }
}

#[cfg(test)]
mod router_tests {
    use crate::agent::router_address;

    #[test]
    fn a_router_is_reached_at_its_bound_address_or_the_servers() {
        let at = |s: &str| s.parse::<std::net::SocketAddr>().unwrap();
        assert_eq!(
            router_address(at("127.0.0.1:8080"), "127.0.0.1"),
            Some(at("127.0.0.1:8080"))
        );
        // Bound to loopback on a server others reach elsewhere: not reachable from other racks.
        assert_eq!(router_address(at("127.0.0.1:8080"), "10.0.0.5"), None);
        assert_eq!(
            router_address(at("10.0.0.5:80"), "10.0.0.5"),
            Some(at("10.0.0.5:80"))
        );
        assert_eq!(
            router_address(at("0.0.0.0:80"), "203.0.113.7"),
            Some(at("203.0.113.7:80"))
        );
        assert_eq!(
            router_address(at("[::]:80"), "2001:db8::7"),
            Some(at("[2001:db8::7]:80"))
        );
        // A hostname or wildcard address names no host to dial.
        assert_eq!(router_address(at("0.0.0.0:80"), "box.example"), None);
        assert_eq!(router_address(at("0.0.0.0:80"), "0.0.0.0"), None);
    }
}
