//! What the agent tells others after a pass: the routing for the rack's edge router, the output
//! files for the log shipper, and the instances' states for the control plane.

use std::collections::{BTreeMap, HashSet};

use mesh_runtime::InstanceState;
use mesh_types::UnixMs;
use mesh_types::agent::{LogStream, StatusReport};
use mesh_types::api::Instance;
use mesh_types::desired::DesiredState;

use super::heartbeat::HEARTBEAT_MS;
use super::{Agent, now_ms};
use crate::plan;
use crate::routing::{Backend, Routing, upstream_key};

impl Agent {
    /// Publishes the routing with the `draining` instances marked so; whether any routed
    /// instance is draining.
    pub(super) fn publish_routing(
        &self,
        desired: &DesiredState,
        listed: &[InstanceState],
        draining: &HashSet<&str>,
    ) -> bool {
        let mut any_draining = false;
        let mut upstreams: BTreeMap<String, Vec<Backend>> = BTreeMap::new();
        {
            let state = self.state();
            for inst in listed.iter().filter(|i| {
                i.status.is_running() && !plan::is_run(&i.id) && !plan::is_oneoff(&i.id)
            }) {
                let Some(r) = state.records.get(&inst.id) else {
                    continue;
                };
                let key =
                    upstream_key(r.environment.as_str(), r.stack.as_str(), r.service.as_str());
                let drains = draining.contains(inst.id.as_str());
                any_draining |= drains;
                upstreams.entry(key).or_default().push(Backend {
                    id: inst.id.clone(),
                    addr: std::net::SocketAddr::from((inst.address, r.port)),
                    healthy: r.healthy,
                    draining: drains,
                });
            }
        }
        let routing = Routing::with_own_router(desired, upstreams, self.router.get().copied());
        self.routing.send_if_modified(|old| {
            let changed = *old != routing;
            if changed {
                *old = routing;
            }
            changed
        });
        any_draining
    }

    pub(super) fn refresh_log_sources(&self, listed: &[InstanceState]) {
        let mut state = self.state();
        let mut sources = Vec::new();
        for inst in listed {
            let Some(r) = state.records.get(&inst.id) else {
                continue;
            };
            for (stream, path) in [
                (LogStream::Stdout, inst.logs.stdout.clone()),
                (LogStream::Stderr, inst.logs.stderr.clone()),
                (LogStream::System, self.system_log(&inst.id)),
            ] {
                sources.push(crate::logship::Source {
                    environment: r.environment.clone(),
                    stack: r.stack.clone(),
                    service: r.service.clone(),
                    instance: inst.id.clone(),
                    stream,
                    path,
                });
            }
        }
        state.log_sources = sources;
    }

    /// Sends the instances' states when they changed, and at least every [`HEARTBEAT_MS`]: each
    /// delivered report is the server's heartbeat.
    pub(super) async fn report(
        &self,
        desired: Option<&DesiredState>,
        last: Option<(Vec<Instance>, UnixMs)>,
    ) -> Option<(Vec<Instance>, UnixMs)> {
        let now = now_ms();
        let listed = self.runtime.list().await.unwrap_or_default();
        let records = self.state().records.clone();
        let mut instances: Vec<Instance> = listed
            .iter()
            .filter_map(|i| {
                records
                    .get(&i.id)
                    .map(|r| r.report(&i.id, i.status.is_running(), now))
            })
            .collect();
        // Instances that could not be created at all still show, with why.
        for (id, r) in &records {
            if r.error.is_some() && !listed.iter().any(|i| &i.id == id) {
                instances.push(r.report(id, false, now));
            }
        }
        if let Some(d) = desired {
            instances = crate::report::placed(instances, d);
        }
        instances.sort_by(|a, b| a.id.cmp(&b.id));
        let strip = |v: &[Instance]| {
            v.iter()
                .map(|i| Instance {
                    updated_at: 0,
                    message: None,
                    ..i.clone()
                })
                .collect::<Vec<_>>()
        };
        let unchanged = last
            .as_ref()
            .is_some_and(|(prev, at)| strip(prev) == strip(&instances) && now - at < HEARTBEAT_MS);
        if unchanged {
            return last;
        }
        let report = StatusReport {
            server: self.opts.server_name.clone(),
            instances: instances.clone(),
        };
        match self.gateway.status(&report).await {
            Ok(()) => {
                self.heard(now);
                Some((instances, now))
            }
            Err(e) => {
                tracing::debug!(error = %e, "status report not delivered");
                last
            }
        }
    }
}
