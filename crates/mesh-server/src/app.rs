//! Shared state of every request handler.

use std::sync::Arc;

use mesh_store::Store;
use mesh_types::UnixMs;
use tokio::sync::watch;

use crate::auth::TokenCache;
use crate::clock::Clock;
use crate::logs::LogStore;
use crate::metrics::Metrics;

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
    /// Bumped after every successful change through the API; wakes agents' watch streams.
    changes: watch::Sender<u64>,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        let inner = Inner {
            store,
            clock,
            metrics: Metrics::new(),
            tokens: TokenCache::default(),
            logs: LogStore::default(),
            changes: watch::channel(0).0,
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

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub(crate) fn tokens(&self) -> &TokenCache {
        &self.inner.tokens
    }

    pub(crate) fn logs(&self) -> &LogStore {
        &self.inner.logs
    }

    pub(crate) fn notify_change(&self) {
        self.inner.changes.send_modify(|n| *n += 1);
    }

    pub(crate) fn subscribe_changes(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }
}
