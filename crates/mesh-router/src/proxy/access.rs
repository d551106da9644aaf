//! The access record of one request: one access log line (`crate::access_log`) and the route's
//! metrics, emitted when the response is over (last byte sent, client gone, or tunnel closed).

use std::sync::Arc;
use std::time::Instant;

use http::uri::PathAndQuery;
use http::{HeaderValue, Method};

use crate::access_log::{self, Record};
use crate::balance::InFlightGuard;
use crate::metrics::RouteMetrics;
use crate::table::Route;

/// Filled in as the request goes; logged and counted on drop.
pub(crate) struct Access {
    pub start: Instant,
    pub request_id: HeaderValue,
    /// `None` for a request too malformed to have one.
    pub method: Option<Method>,
    /// Logged without the query: queries often carry secrets.
    pub path: Option<PathAndQuery>,
    /// The host the client asked for (normalized), or `-`.
    pub host: String,
    /// The matched route: its endpoint, service and metrics. One handle, so a request touches
    /// one shared reference count, not one per name.
    pub route: Option<Arc<Route>>,
    /// Index of the instance in the route's upstream.
    pub instance: Option<usize>,
    /// Counts requests that matched no route (set on the way out when `route` is `None`).
    pub unmatched: Option<Arc<RouteMetrics>>,
    pub status: u16,
    pub bytes: u64,
    pub attempts: u32,
    pub error: Option<String>,
    /// Held until the response is over, so draining waits for it.
    pub in_flight: Option<InFlightGuard>,
}

impl Access {
    /// A record for a request that has not been routed yet; its status stays 499 (client
    /// closed) unless an answer is recorded.
    pub(crate) fn new(
        request_id: HeaderValue,
        method: Option<Method>,
        path: Option<PathAndQuery>,
    ) -> Self {
        Self {
            start: Instant::now(),
            request_id,
            method,
            path,
            host: "-".to_owned(),
            route: None,
            instance: None,
            unmatched: None,
            status: super::CLIENT_CLOSED,
            bytes: 0,
            attempts: 0,
            error: None,
            in_flight: None,
        }
    }
}

impl Drop for Access {
    fn drop(&mut self) {
        let elapsed = self.start.elapsed();
        let route = self.route.as_deref();
        if let Some(metrics) = route.map(|r| &r.metrics).or(self.unmatched.as_ref()) {
            metrics.record(self.status, elapsed);
        }
        // Nothing below runs when the access log is off.
        access_log::with_thread_log(|log| {
            let instance = route
                .zip(self.instance)
                .and_then(|(r, i)| r.upstream.instances.get(i));
            log.record(&Record {
                request_id: self.request_id.to_str().unwrap_or("-"),
                method: self.method.as_ref().map_or("-", Method::as_str),
                host: &self.host,
                path: self.path.as_ref().map_or("-", PathAndQuery::path),
                endpoint: route.map_or("-", |r| &*r.host),
                service: route.map_or("-", |r| &*r.upstream.name),
                instance: instance.map_or("-", |i| &*i.id),
                status: self.status,
                bytes: self.bytes,
                attempts: self.attempts,
                duration_ms: elapsed.as_secs_f64() * 1000.0,
                error: self.error.as_deref(),
            });
        });
    }
}
