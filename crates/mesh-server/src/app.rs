//! Shared state of every request handler.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use mesh_store::Store;
use mesh_types::UnixMs;
use tokio::sync::watch;

use crate::auth::TokenCache;
use crate::clock::Clock;
use crate::deploy::{DeployOptions, Deploys};
use crate::domain::servers::{DEFAULT_LOST_AFTER, Liveness};
use crate::logs::LogStore;
use crate::metrics::Metrics;
use crate::tasks::TaskHub;

#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
    tokens: TokenCache,
    logs: LogStore,
    tasks: TaskHub,
    deploys: Arc<Deploys>,
    /// How long a server may go without a heartbeat before it is lost, in milliseconds.
    server_lost_after: AtomicI64,
    /// Bumped after every successful change through the API; wakes agents' watch streams.
    changes: watch::Sender<u64>,
    /// True once the server shuts down: long streams (watch, logs -f, runs) end, so the
    /// graceful shutdown does not wait for clients that never hang up.
    shutdown: watch::Sender<bool>,
    /// How racks of server-making providers get their servers; none: they cannot.
    provision: std::sync::RwLock<Option<Arc<crate::provision::Provision>>>,
    /// The server replacements (rack, since) whose new server this process is making now.
    making: std::sync::Mutex<std::collections::BTreeSet<(String, UnixMs)>>,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        let inner = Inner {
            logs: LogStore::new(store.clone()),
            store,
            clock,
            metrics: Metrics::new(),
            tokens: TokenCache::default(),
            tasks: TaskHub::default(),
            deploys: Arc::new(Deploys::default()),
            server_lost_after: AtomicI64::new(duration_ms(DEFAULT_LOST_AFTER)),
            changes: watch::channel(0).0,
            shutdown: watch::channel(false).0,
            provision: std::sync::RwLock::new(None),
            making: Default::default(),
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    pub fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    pub fn now(&self) -> UnixMs {
        self.inner.clock.now_ms()
    }

    /// Now, and when servers count as lost.
    pub(crate) fn liveness(&self) -> Liveness {
        Liveness {
            now: self.now(),
            lost_after: self.server_lost_after(),
        }
    }

    /// How long a server may go without a heartbeat before it is lost, in milliseconds.
    pub(crate) fn server_lost_after(&self) -> UnixMs {
        self.inner.server_lost_after.load(Ordering::Relaxed)
    }

    /// Servers without a heartbeat for longer than `after` are lost (default: 30 s).
    pub fn set_server_lost_after(&self, after: Duration) {
        self.inner
            .server_lost_after
            .store(duration_ms(after), Ordering::Relaxed);
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub(crate) fn tokens(&self) -> &TokenCache {
        &self.inner.tokens
    }

    pub(crate) fn logs(&self) -> &LogStore {
        &self.inner.logs
    }

    pub(crate) fn tasks(&self) -> &TaskHub {
        &self.inner.tasks
    }

    pub(crate) fn deploys(&self) -> &Arc<Deploys> {
        &self.inner.deploys
    }

    /// Deployments with these options (uploads, builds); without it, none.
    pub fn with_deploys(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        deploy: Option<DeployOptions>,
    ) -> Self {
        let state = Self::new(store, clock);
        let mut inner = Arc::try_unwrap(state.inner).unwrap_or_else(|_| unreachable!("just made"));
        inner.deploys = Arc::new(Deploys::new(deploy));
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Lets racks of ssh providers make their servers.
    pub fn set_provision(&self, p: crate::provision::Provision) {
        *self.inner.provision.write().expect("provision lock") = Some(Arc::new(p));
    }

    pub(crate) fn provision(&self) -> Option<Arc<crate::provision::Provision>> {
        self.inner.provision.read().expect("provision lock").clone()
    }

    /// Marks the new server of the replacement of `rack` started at `since` as being made (or,
    /// with `false`, made or failed) by this process: an undone replacement waits for it.
    pub(crate) fn set_making(&self, rack: &str, since: UnixMs, on: bool) {
        let mut making = self.inner.making.lock().expect("making lock");
        if on {
            making.insert((rack.to_string(), since));
        } else {
            making.remove(&(rack.to_string(), since));
        }
    }

    pub(crate) fn is_making(&self, rack: &str, since: UnixMs) -> bool {
        self.inner
            .making
            .lock()
            .expect("making lock")
            .contains(&(rack.to_string(), since))
    }

    pub(crate) fn notify_change(&self) {
        self.inner.changes.send_modify(|n| *n += 1);
    }

    pub(crate) fn begin_shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    /// Resolves once the server shuts down.
    pub(crate) async fn shutting_down(&self) {
        let mut rx = self.inner.shutdown.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    pub(crate) fn subscribe_changes(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }
}

fn duration_ms(d: Duration) -> UnixMs {
    UnixMs::try_from(d.as_millis()).unwrap_or(UnixMs::MAX)
}
