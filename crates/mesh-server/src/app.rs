//! Shared state of every request handler.

use std::sync::Arc;

use mesh_store::Store;
use mesh_types::UnixMs;

use crate::auth::TokenCache;
use crate::clock::Clock;
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
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                clock,
                metrics: Metrics::new(),
                tokens: TokenCache::default(),
            }),
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
}
