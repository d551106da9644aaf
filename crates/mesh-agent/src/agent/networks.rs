//! Effects on environments' networks: set up (with a DNS responder on the gateway), peers' names
//! written into `/etc/hosts` and published to DNS, and networks no longer needed removed.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Arc;

use mesh_runtime::{InstanceState, NetworkSpec};
use tokio::sync::watch;

use super::Agent;
use crate::plan;

impl Agent {
    pub(crate) async fn ensure_network(&self, env: &str) -> Result<(), String> {
        let assigned = {
            let state = self.state();
            if state.networks.contains(env) {
                return Ok(());
            }
            state.subnets.get(env)
        };
        // Only a new subnet looks at the host: one an environment has stays (its instances
        // and their peers' caches hold addresses in it).
        let host = match assigned {
            Some(_) => Vec::new(),
            None => self.runtime.host_networks().await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot read the host's routes and addresses; choosing a subnet without them");
                Vec::new()
            }),
        };
        let choice = self
            .state()
            .subnets
            .get_or_assign(env, &host)
            .map_err(|e| e.to_string())?;
        for skipped in &choice.skipped {
            tracing::warn!(environment = %env, "subnet {skipped} skipped: the host already uses it");
        }
        let subnet = choice.subnet;
        if assigned.is_none() {
            tracing::info!(environment = %env, %subnet, "environment subnet assigned");
        }
        let mut spec = NetworkSpec::new(env, subnet);
        spec.egress = self.opts.egress;
        if self.opts.dns {
            spec.dns = Some(subnet.gateway());
        }
        let info = self
            .runtime
            .ensure_network(&spec)
            .await
            .map_err(|e| e.to_string())?;
        if self.opts.dns {
            self.start_dns(env, info.gateway).await;
        }
        self.state().networks.insert(env.to_string());
        Ok(())
    }

    async fn start_dns(&self, env: &str, gateway: Ipv4Addr) {
        let socket = match tokio::net::UdpSocket::bind((gateway, 53)).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(environment = %env, error = %e, "cannot serve DNS on {gateway}:53; /etc/hosts still names peers");
                return;
            }
        };
        let (stop, rx) = watch::channel(false);
        let names = self.names.subscribe();
        let env_name = env.to_string();
        let lookup: Arc<crate::dns::Lookup> = Arc::new(move |name: &str| {
            names
                .borrow()
                .get(&env_name)
                .and_then(|m| m.get(name).cloned())
        });
        tokio::spawn(async move {
            if let Err(e) = crate::dns::serve(socket, lookup, rx).await {
                tracing::warn!(error = %e, "dns server stopped");
            }
        });
        let old = self.state().dns.insert(env.to_string(), stop);
        if let Some(old) = old {
            let _ = old.send(true);
        }
    }

    /// Peers by name: `/etc/hosts` of every instance of the environment, and DNS answers.
    pub(super) async fn refresh_names(&self, envs: &BTreeSet<String>, listed: &[InstanceState]) {
        let mut names = plan::names(listed, &self.state().records);
        for env in envs {
            let entries = names.hosts.remove(env).unwrap_or_default();
            let changed = self.state().hosts.get(env) != Some(&entries);
            if changed {
                for inst in listed
                    .iter()
                    .filter(|i| &i.environment == env && i.status.is_running())
                {
                    if let Err(e) = self.runtime.update_hosts(&inst.id, &entries).await {
                        tracing::debug!(instance = %inst.id, error = %e, "update hosts");
                    }
                }
                self.state().hosts.insert(env.clone(), entries);
            }
        }
        self.names.send_replace(names.dns);
    }

    /// Networks of environments no longer here, once their last instance is gone.
    pub(super) async fn forget_networks(&self, envs: &BTreeSet<String>, listed: &[InstanceState]) {
        let unused = {
            let state = self.state();
            let assigned: Vec<String> = state.subnets.assigned().cloned().collect();
            plan::unused_networks(&assigned, envs, listed, &state.pinned)
        };
        for env in unused {
            // A one-off run may have taken the network since the plan: its pin is the word.
            if self.state().pinned.contains_key(&env) {
                continue;
            }
            match self.runtime.remove_network(&env).await {
                Ok(()) => {
                    let stop = {
                        let mut state = self.state();
                        state.networks.remove(&env);
                        state.hosts.remove(&env);
                        let _ = state.subnets.release(&env);
                        state.dns.remove(&env)
                    };
                    if let Some(stop) = stop {
                        let _ = stop.send(true);
                    }
                }
                Err(e) => tracing::debug!(environment = %env, error = %e, "remove network"),
            }
        }
    }
}
