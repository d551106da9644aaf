//! Effects on single instances: create (with its image), remove, drain through the router, and
//! the lines the platform writes about an instance.

use std::path::PathBuf;
use std::time::Duration;

use mesh_runtime::{InstanceSpec, User};
use mesh_types::UnixMs;

use super::state::Creating;
use super::{Agent, now_ms};
use crate::plan::Wanted;
use crate::supervise::Record;

/// How long the router gets to apply a routing change before in-flight counts are trusted.
const DRAIN_SETTLE: Duration = Duration::from_millis(150);
/// Longest a replaced instance is given to finish its requests before it is stopped anyway.
const DRAIN_MAX: Duration = Duration::from_secs(30);
/// How often a draining instance's in-flight count is looked at.
const DRAIN_POLL: Duration = Duration::from_millis(20);

impl Agent {
    pub(super) async fn start(&self, w: &Wanted, run: bool) {
        let now = now_ms();
        let image = match self.images.get(&w.image).await {
            Ok(i) => i,
            Err(e) => return self.failed(w, run, e, now),
        };
        let hosts = self
            .state()
            .hosts
            .get(w.environment.as_str())
            .cloned()
            .unwrap_or_default();
        let (command, env) = crate::images::shape(&w.image, w.command.clone(), &w.env);
        let spec = InstanceSpec {
            id: w.id.clone(),
            environment: w.environment.to_string(),
            hostname: w.hostname.clone(),
            image,
            command,
            env,
            limits: w.limits,
            user: User::default(),
            address: None,
            hosts,
        };
        // Off the list (on drop) only once the record exists (`failed` writes one too).
        let _creating = Creating::new(self, &w.id);
        match self.runtime.create(&spec).await {
            Ok(handle) => {
                let line = {
                    let mut state = self.state();
                    let rec = state
                        .records
                        .entry(w.id.clone())
                        .or_insert_with(|| Record::new(w, run));
                    rec.started(handle.address, now);
                    format!(
                        "instance {} started at {} (restart {})",
                        w.id, handle.address, rec.restarts
                    )
                };
                self.system_line(&w.id, &line);
            }
            Err(e) => self.failed(w, run, e.to_string(), now),
        }
    }

    /// A create that failed is retried with the same backoff as a crash.
    fn failed(&self, w: &Wanted, run: bool, error: String, now: UnixMs) {
        tracing::warn!(instance = %w.id, error = %error, "cannot start instance");
        let mut state = self.state();
        let rec = state
            .records
            .entry(w.id.clone())
            .or_insert_with(|| Record::new(w, run));
        rec.ended(mesh_runtime::ExitStatus::UNKNOWN, now);
        rec.error = Some(format!("cannot start: {error}"));
    }

    pub(crate) async fn remove(&self, id: &str) {
        if let Err(e) = self.runtime.stop(id, self.opts.stop_grace).await {
            tracing::debug!(instance = %id, error = %e, "stop");
        }
        match self.runtime.delete(id).await {
            Ok(()) => {
                self.state().records.remove(id);
            }
            Err(e) => tracing::warn!(instance = %id, error = %e, "cannot delete instance"),
        }
    }

    /// Takes a web instance out of the router and waits (bounded) for its requests to finish.
    pub(super) async fn drain(&self, ids: &[String]) {
        let Some(probe) = self.state().in_flight.clone() else {
            return;
        };
        // The router applies a routing change asynchronously: give it a moment, so a request
        // it picked the instance for just before is counted.
        tokio::time::sleep(DRAIN_SETTLE).await;
        let deadline = tokio::time::Instant::now() + DRAIN_MAX;
        while ids.iter().any(|id| probe(id) > 0) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(DRAIN_POLL).await;
        }
    }

    pub(super) fn system_log(&self, id: &str) -> PathBuf {
        self.opts
            .data_dir
            .join("system-logs")
            .join(format!("{id}.log"))
    }

    /// A line the platform writes about an instance, shipped with its output.
    pub(super) fn system_line(&self, id: &str, text: &str) {
        use std::io::Write;
        let path = self.system_log(id);
        let _ = std::fs::create_dir_all(path.parent().unwrap_or(&self.opts.data_dir));
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
        {
            let _ = writeln!(f, "{text}");
        }
    }
}
