//! The retire task: moves each rack an environment is leaving along (`domain::migration::step`):
//! forwarding starts once the remaining racks are healthy, and when the drain grace is over the
//! environment leaves the rack. Each change wakes the agents' watch streams, so the leaving
//! rack's router forwards, and later its instances stop, within a tick. Several control planes
//! may run it on one database: each step is a conditional write that one of them wins.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::AppState;
use crate::domain::migration::{self, Step};

/// Often enough that forwarding follows health within about a second.
const EVERY: Duration = Duration::from_secs(1);

pub(crate) fn spawn(state: AppState, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(EVERY) => {}
            }
            match pass(&state).await {
                Ok(true) => state.notify_change(),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot move environments off racks they leave; trying again")
                }
            }
        }
    })
}

/// One pass over the environments that are leaving racks: true if anything changed.
async fn pass(state: &AppState) -> Result<bool, mesh_store::StoreError> {
    let store = state.store();
    let mut changed = false;
    for env in store.list_environments().await? {
        if env.leaving.is_empty() {
            continue;
        }
        let live = state.liveness();
        let observed = migration::observe(store, &env, live).await?;
        let healthy = migration::remaining_healthy(&observed.placement);
        for leaving in &env.leaving {
            let (env_name, rack) = (env.name.as_str(), leaving.rack.as_str());
            match migration::step(leaving, healthy, live.now) {
                Step::Wait | Step::Forward => {}
                Step::StartForwarding => {
                    if store
                        .start_forwarding(env_name, rack, leaving.since, live.now)
                        .await?
                    {
                        tracing::info!(
                            environment = env_name,
                            rack,
                            to = %env.racks.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(","),
                            grace_s = leaving.drain_grace_ms / 1000,
                            "the remaining racks are healthy: the leaving rack forwards the environment's hosts to them for its drain grace"
                        );
                        changed = true;
                    }
                }
                Step::Finish => {
                    if store.finish_leaving(env_name, rack, leaving.since).await? {
                        tracing::info!(
                            environment = env_name,
                            rack,
                            "drain grace over: the environment has left the rack; its instances stop"
                        );
                        changed = true;
                    }
                }
            }
        }
    }
    Ok(changed)
}
