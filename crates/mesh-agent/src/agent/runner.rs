//! The runner: keeps the desired state current (watch stream, cached on disk), reconciles it on
//! every change and every requeue, and reports what runs.

use std::sync::Arc;
use std::time::Duration;

use mesh_types::UnixMs;
use mesh_types::api::Instance;
use mesh_types::desired::{DesiredState, WatchEvent};
use tokio::sync::watch;

use super::{Agent, now_ms, policy};

impl Agent {
    /// Runs until `shutdown` turns true. Instances keep running after it returns. Holds the
    /// data directory's lock while it runs: a second agent on it waits for this one to stop.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let _lock = tokio::select! {
            lock = crate::handover::DataDirLock::acquire(&self.opts.data_dir) => match lock {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(error = %e, "cannot lock the agent's data directory");
                    return;
                }
            },
            _ = shutdown.changed() => return,
        };
        // Before anything is created: what an earlier agent left half-made must go, and what
        // the runtime's records name (the instances adopted below) must stay.
        self.sweep().await;
        let cached = match self.cache.load() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring the cached desired state");
                None
            }
        };
        let (tx, mut rx) = watch::channel(cached);
        let watcher = tokio::spawn(self.clone().watch_loop(tx, shutdown.clone()));
        let shipper = tokio::spawn(crate::logship::run(self.clone(), shutdown.clone()));
        let heartbeat = tokio::spawn(self.clone().heartbeat_loop(shutdown.clone()));
        let mut last_report: Option<(Vec<Instance>, UnixMs)> = None;
        loop {
            let desired = rx.borrow_and_update().clone();
            if let Some(d) = &desired
                && let Err(e) = self.reconcile(d).await
            {
                tracing::warn!(error = %e, "reconcile stopped early; trying again");
            }
            last_report = self.report(desired.as_ref(), last_report).await;
            let wait =
                policy::requeue_after(self.state().records.values(), now_ms(), self.opts.tick);
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = rx.changed() => {}
                _ = tokio::time::sleep(wait) => {}
            }
            if *shutdown.borrow() {
                break;
            }
        }
        let stops: Vec<_> = self.state().dns.drain().map(|(_, stop)| stop).collect();
        for stop in stops {
            let _ = stop.send(true);
        }
        let _ = watcher.await;
        let _ = shipper.await;
        let _ = heartbeat.await;
    }

    /// Removes what carries this server's prefix but no record of the runtime owns, saying so.
    async fn sweep(&self) {
        match self.runtime.sweep().await {
            Ok(removed) => {
                for leftover in &removed {
                    tracing::info!(removed = %leftover, "removed a leftover of an earlier run");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for leftovers of an earlier run; keeping everything")
            }
        }
    }

    /// Registers, then follows the watch stream, reconnecting with backoff; every snapshot is
    /// cached on disk and handed to the loop.
    async fn watch_loop(
        self: Arc<Self>,
        tx: watch::Sender<Option<DesiredState>>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut backoff: Option<Duration> = None;
        loop {
            let session = async {
                self.gateway.register(&self.registration()).await?;
                self.heard(super::now_ms());
                let mut stream = self.gateway.watch(&self.opts.server_name).await?;
                while let Some(event) = stream.next().await? {
                    match event {
                        WatchEvent::Snapshot { state, .. } => {
                            if let Err(e) = self.cache.save(&state) {
                                tracing::warn!(error = %e, "cannot cache the desired state");
                            }
                            tx.send_replace(Some(state));
                        }
                        WatchEvent::Task { task } => {
                            tokio::spawn(self.clone().handle_task(task));
                        }
                        WatchEvent::KeepAlive => {}
                    }
                }
                Ok::<(), crate::gateway::GatewayError>(())
            };
            tokio::select! {
                _ = shutdown.changed() => return,
                r = session => match r {
                    Ok(()) => tracing::info!("watch stream ended; reconnecting"),
                    // Another server holds the rack: the message says what to do.
                    Err(e) if e.code() == Some(mesh_types::ErrorCode::FailedPrecondition) => {
                        tracing::error!(error = %e, "the control plane refused this server; trying again")
                    }
                    Err(e) => tracing::warn!(error = %e, "control plane unreachable; instances keep running"),
                },
            }
            let wait = policy::reconnect_after(backoff);
            backoff = Some(wait);
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}
