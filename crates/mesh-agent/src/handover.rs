//! What lets a new agent process take over from a running one on the same server without a gap
//! in routing: an exclusive lock on the data directory (two agents never reconcile at once; the
//! new one waits for the old to stop), and a routing snapshot made from the cached desired state
//! and the instances running now, for the new process's router to start with before its own
//! agent has reconciled.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::time::Duration;

use crate::agent::Agent;
use crate::plan;
use crate::routing::{Backend, Routing, upstream_key};

/// Held while an agent runs on a data directory.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Waits (as long as it takes, saying so) for the exclusive lock of `dir`.
    pub async fn acquire(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("agent.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        let mut said = false;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Self { _file: file }),
                Err(std::fs::TryLockError::WouldBlock) => {
                    if !said {
                        tracing::info!(
                            path = %path.display(),
                            "waiting for the agent that holds this data directory to stop"
                        );
                        said = true;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(e),
            }
        }
    }
}

impl Agent {
    /// The routing the router can start with: the cached desired state's routes and
    /// certificates, and the running instances it asks for (taken as healthy: they were serving
    /// a moment ago). The agent's own reconcile replaces it within a tick of starting.
    pub async fn cached_routing(&self) -> Routing {
        let Ok(Some(state)) = self.cache().load() else {
            return Routing::default();
        };
        let listed = self.runtime().list().await.unwrap_or_default();
        let (wanted, _) = plan::wanted(&state);
        let wanted: BTreeMap<&str, &plan::Wanted> =
            wanted.iter().map(|w| (w.id.as_str(), w)).collect();
        let mut upstreams: BTreeMap<String, Vec<Backend>> = BTreeMap::new();
        for inst in listed.iter().filter(|i| i.status.is_running()) {
            let Some(w) = wanted.get(inst.id.as_str()) else {
                continue;
            };
            let key = upstream_key(w.environment.as_str(), w.stack.as_str(), w.service.as_str());
            upstreams.entry(key).or_default().push(Backend {
                id: inst.id.clone(),
                addr: std::net::SocketAddr::from((inst.address, w.port)),
                healthy: true,
                draining: false,
            });
        }
        Routing::new(&state, upstreams)
    }
}
