//! Per-endpoint/per-service request counts by status class and latency histograms.
//!
//! Handles are resolved once per route when a table is built, so the request path only bumps
//! atomics (no label hashing or family lock per request).

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

mod serve;
#[cfg(test)]
mod tests;

pub use serve::{MetricsHandle, serve_metrics};

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

fn latency_histogram() -> Histogram {
    // 1 ms .. ~65 s
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// The router's metric families and their registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    unmatched: Arc<RouteMetrics>,
}

/// One route's handles: a counter per status class (1xx..5xx) and a latency histogram.
#[derive(Debug)]
pub struct RouteMetrics {
    by_class: [Counter; 5],
    latency: Histogram,
}

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("mesh_router");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            "requests",
            "Requests answered, by endpoint, service and status class",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from request head to the end of the response body",
            latency.clone(),
        );
        let mut m = Metrics {
            registry,
            requests,
            latency,
            unmatched: Arc::new(RouteMetrics {
                by_class: Default::default(),
                latency: latency_histogram(),
            }),
        };
        m.unmatched = m.route(UNMATCHED, UNMATCHED);
        m
    }

    /// Handles for one endpoint + service pair (the same handles for the same pair).
    pub fn route(&self, endpoint: &str, service: &str) -> Arc<RouteMetrics> {
        let by_class = CLASSES.map(|class| {
            self.requests
                .get_or_create(&RequestLabels {
                    endpoint: endpoint.to_owned(),
                    service: service.to_owned(),
                    status_class: class,
                })
                .clone()
        });
        let latency = self
            .latency
            .get_or_create(&RouteLabels {
                endpoint: endpoint.to_owned(),
                service: service.to_owned(),
            })
            .clone();
        Arc::new(RouteMetrics { by_class, latency })
    }

    /// Handles for requests that matched no route.
    pub fn unmatched(&self) -> Arc<RouteMetrics> {
        self.unmatched.clone()
    }

    /// The Prometheus text exposition of every router metric.
    pub fn text(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl RouteMetrics {
    pub fn record(&self, status: u16, elapsed: Duration) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.by_class[class].inc();
        self.latency.observe(elapsed.as_secs_f64());
    }
}
