//! `/metrics` over plain HTTP on a listener of the caller's choosing (keep it off the public
//! interfaces: it names every endpoint and service).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::proxy::Shared;

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A handle on a router's metrics that outlives borrows of the router (see `Router::metrics`).
#[derive(Clone)]
pub struct MetricsHandle(pub(crate) Arc<Shared>);

impl std::fmt::Debug for MetricsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsHandle")
    }
}

impl MetricsHandle {
    /// The router's metrics in the Prometheus (OpenMetrics) text format.
    pub fn text(&self) -> String {
        self.0.metrics.text()
    }
}

/// Answers `GET /metrics` (and `HEAD`) on `listener` until `shutdown` resolves; any other path
/// gets 404, any other method 405. Connections in progress are dropped at shutdown.
pub async fn serve_metrics(
    listener: TcpListener,
    metrics: MetricsHandle,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    tokio::pin!(shutdown);
    let (stop, stopped) = tokio::sync::watch::channel(());
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            () = &mut shutdown => break,
        };
        let metrics = metrics.clone();
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let metrics = metrics.clone();
                async move { Ok::<_, Infallible>(answer(&metrics, &req)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(tcp), svc);
            tokio::select! {
                _ = conn => {}
                _ = stopped.changed() => {}
            }
        });
    }
    drop(stop);
    Ok(())
}

fn answer(metrics: &MetricsHandle, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, body) = if req.uri().path() != "/metrics" {
        (StatusCode::NOT_FOUND, Bytes::from_static(b"not found\n"))
    } else if req.method() != Method::GET && req.method() != Method::HEAD {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            Bytes::from_static(b"method not allowed\n"),
        )
    } else {
        (StatusCode::OK, Bytes::from(metrics.text()))
    };
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    let content_type = if status == StatusCode::OK {
        HeaderValue::from_static(CONTENT_TYPE)
    } else {
        HeaderValue::from_static("text/plain; charset=utf-8")
    };
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, content_type);
    resp
}
