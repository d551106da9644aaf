//! What the agent remembers about each instance between reconciles: where it belongs, how often
//! it ended, when it may start again, whether it is healthy. And how that reads as a state.

use std::net::Ipv4Addr;

use mesh_runtime::ExitStatus;
use mesh_types::api::{HealthCheck, Instance, InstanceState, ServiceKind};
use mesh_types::{Name, UnixMs, Version};

use crate::plan::Wanted;

/// The first restart waits this long; each next one twice as long, up to [`BACKOFF_MAX_MS`].
pub const BACKOFF_START_MS: UnixMs = 1_000;
pub const BACKOFF_MAX_MS: UnixMs = 60_000;
/// Running this long without ending resets the backoff.
pub const STABLE_MS: UnixMs = 60_000;
/// A worker (no port to probe) counts as healthy once it has run this long.
pub const WORKER_SETTLE_MS: UnixMs = 2_000;
/// This many restarts within [`STABLE_MS`] each is shown as a crash loop.
const CRASH_LOOP: u32 = 3;

#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub environment: Name,
    pub stack: Name,
    pub service: Name,
    pub hostname: String,
    pub deployment: Option<Version>,
    pub kind: ServiceKind,
    pub port: u16,
    pub health: HealthCheck,
    pub address: Option<Ipv4Addr>,
    pub started_at: Option<UnixMs>,
    pub restarts: u32,
    pub restart_at: Option<UnixMs>,
    pub last_exit: Option<ExitStatus>,
    pub healthy: bool,
    /// A cron run: it is not restarted when it ends.
    pub run: bool,
    /// Why the last create failed, if it did.
    pub error: Option<String>,
    /// The current run's end was noted (so it is counted once).
    pub end_seen: bool,
}

impl Record {
    pub fn new(w: &Wanted, run: bool) -> Self {
        Record {
            environment: w.environment.clone(),
            stack: w.stack.clone(),
            service: w.service.clone(),
            hostname: w.hostname.clone(),
            deployment: w.deployment,
            kind: w.kind,
            port: w.port,
            health: w.health.clone(),
            address: None,
            started_at: None,
            restarts: 0,
            restart_at: None,
            last_exit: None,
            healthy: false,
            run,
            error: None,
            end_seen: false,
        }
    }

    /// The instance ended: remember how, and when it may start again.
    pub fn ended(&mut self, exit: ExitStatus, now: UnixMs) {
        self.healthy = false;
        self.end_seen = true;
        self.last_exit = Some(exit);
        if self.run {
            self.restart_at = None;
            return;
        }
        if self.started_at.is_some_and(|s| now - s >= STABLE_MS) {
            self.restarts = 0;
        }
        let wait = BACKOFF_START_MS
            .saturating_mul(1 << self.restarts.min(16))
            .min(BACKOFF_MAX_MS);
        self.restarts += 1;
        self.restart_at = Some(now + wait);
    }

    /// It was (re)started.
    pub fn started(&mut self, address: Ipv4Addr, now: UnixMs) {
        self.address = Some(address);
        self.started_at = Some(now);
        self.restart_at = None;
        self.healthy = false;
        self.error = None;
        self.end_seen = false;
    }

    /// What the instance is, for the control plane.
    pub fn state(&self, running: bool, now: UnixMs) -> (InstanceState, Option<String>) {
        if running {
            if self.healthy {
                return (InstanceState::Healthy, None);
            }
            let grace_ms = i64::from(self.health.grace_s) * 1000;
            let young = self.started_at.is_none_or(|s| now - s < grace_ms);
            let why = (!young).then(|| "running, but its health check fails".to_string());
            return (
                if young {
                    InstanceState::Starting
                } else {
                    InstanceState::Running
                },
                why,
            );
        }
        if let Some(e) = &self.error {
            return (InstanceState::BackingOff, Some(e.clone()));
        }
        let Some(exit) = self.last_exit else {
            return (InstanceState::Starting, None);
        };
        let how = match (exit.code, exit.oom_killed) {
            (_, true) => "was killed for using more memory than its size allows".to_string(),
            (Some(c), _) => format!("exited with code {c}"),
            (None, _) => "ended (how is unknown)".to_string(),
        };
        if self.run || self.restart_at.is_none() {
            let state = if exit.oom_killed {
                InstanceState::OomKilled
            } else {
                InstanceState::Stopped
            };
            return (state, Some(how));
        }
        let wait_s = self
            .restart_at
            .map(|t| ((t - now).max(0) + 999) / 1000)
            .unwrap_or(0);
        let mut msg = format!("{how}; restart {} in {wait_s}s", self.restarts);
        if self.restarts >= CRASH_LOOP {
            msg = format!("crash loop: {msg}");
        }
        let state = if exit.oom_killed {
            InstanceState::OomKilled
        } else if wait_s == 0 {
            InstanceState::Crashed
        } else {
            InstanceState::BackingOff
        };
        (state, Some(msg))
    }

    pub fn report(&self, id: &str, running: bool, now: UnixMs) -> Instance {
        let (state, message) = self.state(running, now);
        Instance {
            id: id.to_string(),
            environment: self.environment.clone(),
            stack: self.stack.clone(),
            service: self.service.clone(),
            deployment: self.deployment,
            server: None,
            rack: None,
            state,
            address: self.address.map(|a| a.to_string()),
            restarts: self.restarts,
            exit_code: if running {
                None
            } else {
                self.last_exit.and_then(|e| e.code)
            },
            message,
            started_at: self.started_at,
            updated_at: now,
        }
    }
}

#[cfg(test)]
#[path = "supervise/tests.rs"]
mod tests;
