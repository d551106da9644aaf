//! Request counts and latencies in Prometheus text format, served on `/metrics`.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::app::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily,
    /// Instance output lines shipped by agents: kept, or dropped as resends.
    pub(crate) log_lines: Counter,
    pub(crate) log_duplicates: Counter,
    /// Uploads being received and checked now (each holds one upload slot).
    pub(crate) upload_checks: Gauge,
    /// Config changes stored whose redeployment failed in part or could not start.
    pub(crate) config_redeploy_errors: Counter,
}

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    ])
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("mesh_api");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        registry.register(
            "requests",
            "API requests by route and status",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "API request latency by route",
            latency.clone(),
        );
        let log_lines = Counter::default();
        let log_duplicates = Counter::default();
        registry.register(
            "log_lines",
            "Instance output lines kept from agents",
            log_lines.clone(),
        );
        registry.register(
            "log_line_resends",
            "Instance output lines agents sent again (dropped)",
            log_duplicates.clone(),
        );
        let upload_checks = Gauge::default();
        registry.register(
            "upload_checks",
            "Uploads being received and checked now, each holding an upload slot",
            upload_checks.clone(),
        );
        let config_redeploy_errors = Counter::default();
        registry.register(
            "config_redeploy_errors",
            "Config changes stored whose redeployment failed in part or could not start (see the log)",
            config_redeploy_errors.clone(),
        );
        Self {
            registry,
            upload_checks,
            config_redeploy_errors,
            requests,
            log_lines,
            log_duplicates,
            latency,
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

pub async fn record(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let resp = next.run(req).await;
    let m = state.metrics();
    m.requests
        .get_or_create(&RequestLabels {
            method: method.clone(),
            route: route.clone(),
            status: resp.status().as_u16(),
        })
        .inc();
    m.latency
        .get_or_create(&RouteLabels { method, route })
        .observe(started.elapsed().as_secs_f64());
    resp
}

#[cfg(test)]
mod tests {
    #[test]
    fn config_redeploy_errors_are_exported_as_mesh_api_config_redeploy_errors() {
        let m = super::Metrics::new();
        m.config_redeploy_errors.inc();
        let text = m.encode();
        assert!(
            text.lines()
                .any(|l| l == "mesh_api_config_redeploy_errors_total 1"),
            "{text}"
        );
    }
}
