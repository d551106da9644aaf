//! The access record of one request: one structured log line and the route's metrics, emitted
//! when the response is over (last byte sent, client gone, or tunnel closed).

use std::sync::Arc;
use std::time::Instant;

use http::{HeaderValue, Method};

use crate::balance::InFlightGuard;
use crate::metrics::RouteMetrics;

/// Filled in as the request goes; logged and counted on drop.
pub(crate) struct Access {
    pub start: Instant,
    pub request_id: HeaderValue,
    pub method: Method,
    /// Path only: queries often carry secrets.
    pub path: String,
    /// The host the client asked for (normalized), or `-`.
    pub host: String,
    pub endpoint: Option<Arc<str>>,
    pub service: Option<Arc<str>>,
    pub instance: Option<Arc<str>>,
    pub status: u16,
    pub bytes: u64,
    pub attempts: u32,
    pub error: Option<String>,
    pub metrics: Arc<RouteMetrics>,
    /// Held until the response is over, so draining waits for it.
    pub in_flight: Option<InFlightGuard>,
}

impl Drop for Access {
    fn drop(&mut self) {
        let elapsed = self.start.elapsed();
        self.metrics.record(self.status, elapsed);
        tracing::info!(
            target: "mesh_router::access",
            request_id = self.request_id.to_str().unwrap_or("-"),
            method = %self.method,
            host = %self.host,
            path = %self.path,
            endpoint = self.endpoint.as_deref().unwrap_or("-"),
            service = self.service.as_deref().unwrap_or("-"),
            instance = self.instance.as_deref().unwrap_or("-"),
            status = self.status,
            bytes = self.bytes,
            attempts = self.attempts,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            error = self.error.as_deref(),
            "request"
        );
    }
}
