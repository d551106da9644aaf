//! Widemesh edge router: terminates TLS, routes by host then longest path prefix to services,
//! balances across healthy instances and streams everything through without buffering.
//!
//! ```no_run
//! # async fn run(config: mesh_router::RouterConfig) -> Result<(), Box<dyn std::error::Error>> {
//! // In a binary, first: rustls::crypto::ring::default_provider().install_default()
//! let router = mesh_router::Router::bind(
//!     "127.0.0.1:8080".parse()?,
//!     Some("127.0.0.1:8443".parse()?),
//! )
//! .await?;
//! router.update(config)?; // again whenever the desired state changes
//! let _metrics = router.metrics_text();
//! router.shutdown(std::time::Duration::from_secs(30)).await;
//! # Ok(()) }
//! ```
//!
//! Modules, in request order: `server` (listeners, connections, shutdown), `tls` (SNI),
//! `proxy` (one request: route, balance, forward, stream back), `table` (routes), `balance`
//! (instance choice, in-flight counts), `forwarding` (whose forwarding headers count, SNI
//! against `Host`), `access_log` (one line per request, written off the request path),
//! `metrics`, `config` (the input document).

mod access_log;
pub mod balance;
pub mod config;
pub mod error;
mod forwarding;
#[doc(hidden)]
pub mod fuzzing;
mod h1;
pub mod handover;
pub mod metrics;
pub mod options;
mod proxy;
pub mod server;
pub mod table;
pub mod tls;
mod tracker;

pub use config::{
    CertificateConfig, InstanceConfig, RouteConfig, RouterConfig, ServiceKey, TrustedPeer,
    UpstreamConfig,
};
pub use error::{CertificateError, ConfigError, RouterError};
pub use metrics::{MetricsHandle, serve_metrics};
pub use options::{AccessLog, AccessLogParseError, RouterOptions};
pub use server::{Listeners, Router, ShutdownReport, UpdateReport};
