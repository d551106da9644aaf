//! Per-endpoint/per-service request counts by status class and latency histograms.
//!
//! Handles are resolved once per route when a table is built, so the request path only bumps
//! atomics (no label hashing or family lock per request), and those atomics are sharded by
//! worker thread (`shards.rs`): a worker only writes cache lines no other core writes. A scrape
//! sums the shards.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

mod serve;
mod shards;
#[cfg(test)]
mod tests;

pub use serve::{MetricsHandle, serve_metrics};
use shards::Shards;
pub(crate) use shards::set_thread_shard;

/// Label value used for requests that matched no route (unknown host, bad request, redirects).
pub const UNMATCHED: &str = "-";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: String,
    service: String,
    status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    endpoint: String,
    service: String,
}

/// The router's metrics and their registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    routes: Arc<RouteSet>,
    unmatched: Arc<RouteMetrics>,
    /// `mesh_router_access_log_dropped_total`: access lines not written (see `crate::access_log`).
    access_log_dropped: Counter,
}

/// Every route's handles by (endpoint, service), read at each scrape.
#[derive(Debug)]
struct RouteSet {
    shards: usize,
    routes: Mutex<BTreeMap<(String, String), Arc<RouteMetrics>>>,
}

/// One route's counters per status class (1xx..5xx) and latency histogram, sharded.
#[derive(Debug)]
pub struct RouteMetrics {
    shards: Shards,
}

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Metrics for a router whose requests are recorded from one thread at a time.
    pub fn new() -> Self {
        Self::with_shards(1)
    }

    /// Metrics with one shard per worker thread (see `set_thread_shard`).
    pub fn with_shards(shards: usize) -> Self {
        let mut registry = Registry::with_prefix("mesh_router");
        let routes = Arc::new(RouteSet {
            shards: shards.clamp(1, shards::MAX),
            routes: Mutex::new(BTreeMap::new()),
        });
        registry.register_collector(Box::new(RouteCollector(routes.clone())));
        let unmatched = routes.get(UNMATCHED, UNMATCHED);
        let access_log_dropped = Counter::default();
        registry.register(
            "access_log_dropped",
            "Access log lines not written: the writer was behind (its queue full) or the sink failed.",
            access_log_dropped.clone(),
        );
        Metrics {
            registry,
            routes,
            unmatched,
            access_log_dropped,
        }
    }

    /// Handles for one endpoint + service pair (the same handles for the same pair).
    pub fn route(&self, endpoint: &str, service: &str) -> Arc<RouteMetrics> {
        self.routes.get(endpoint, service)
    }

    /// Handles for requests that matched no route.
    pub fn unmatched(&self) -> Arc<RouteMetrics> {
        self.unmatched.clone()
    }

    /// The counter of access log lines dropped (the same counter on every call).
    pub(crate) fn access_log_dropped(&self) -> Counter {
        self.access_log_dropped.clone()
    }

    /// The Prometheus text exposition of every router metric.
    pub fn text(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl RouteSet {
    fn get(&self, endpoint: &str, service: &str) -> Arc<RouteMetrics> {
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        routes
            .entry((endpoint.to_owned(), service.to_owned()))
            .or_insert_with(|| {
                Arc::new(RouteMetrics {
                    shards: Shards::new(self.shards),
                })
            })
            .clone()
    }
}

impl RouteMetrics {
    pub fn record(&self, status: u16, elapsed: Duration) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.shards.record(class, elapsed);
    }
}

/// Encodes the two families from the route set at each scrape.
#[derive(Debug)]
struct RouteCollector(Arc<RouteSet>);

impl Collector for RouteCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let routes: Vec<_> = {
            let routes = self.0.routes.lock().unwrap_or_else(PoisonError::into_inner);
            routes.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        let sums: Vec<_> = routes.iter().map(|(_, r)| r.shards.sum()).collect();
        let mut family = encoder.encode_descriptor(
            "requests",
            "Requests answered, by endpoint, service and status class.",
            None,
            MetricType::Counter,
        )?;
        for (((endpoint, service), _), sum) in routes.iter().zip(&sums) {
            for (class, name) in CLASSES.iter().enumerate() {
                let labels = RequestLabels {
                    endpoint: endpoint.clone(),
                    service: service.clone(),
                    status_class: name,
                };
                family
                    .encode_family(&labels)?
                    .encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(
                        &sum.classes[class],
                        None,
                    )?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "request_duration_seconds",
            "Time from request head to the end of the response body.",
            None,
            MetricType::Histogram,
        )?;
        for (((endpoint, service), _), sum) in routes.iter().zip(&sums) {
            let labels = RouteLabels {
                endpoint: endpoint.clone(),
                service: service.clone(),
            };
            family
                .encode_family(&labels)?
                .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                    sum.seconds,
                    sum.count,
                    &sum.buckets,
                    None,
                )?;
        }
        Ok(())
    }
}
