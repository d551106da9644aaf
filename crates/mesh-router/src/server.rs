//! The router as a running thing: listeners, hot config updates, metrics and shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::config::RouterConfig;
use crate::error::{CertificateError, ConfigError, RouterError};
use crate::options::RouterOptions;
use crate::proxy::ProxyState;
use crate::table::RouteTable;
use crate::tls::{self, SniResolver};
use crate::tracker::{Phase, Tracker};

mod conn;

/// A running edge router: an HTTP listener and optionally an HTTPS one.
///
/// Binaries must install a rustls `CryptoProvider` at the start of `main`
/// (`rustls::crypto::ring::default_provider().install_default()`); the router falls back to ring
/// when none is installed, but other TLS users in the process would panic.
pub struct Router {
    state: Arc<ProxyState>,
    resolver: Arc<SniResolver>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    http_addr: SocketAddr,
    https_addr: Option<SocketAddr>,
    accept_tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("http_addr", &self.http_addr)
            .field("https_addr", &self.https_addr)
            .finish()
    }
}

/// What an update applied, and what it had to leave out.
#[derive(Debug, Default)]
pub struct UpdateReport {
    /// Accepted but will not route as the config may intend (e.g. a route to a service with no
    /// upstream entry answers 503).
    pub warnings: Vec<String>,
    /// Certificates left out; the rest of the config applied.
    pub certificate_errors: Vec<CertificateError>,
}

/// How shutdown went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Every connection finished its requests before the deadline.
    pub clean: bool,
    /// Connections and tunnels closed at the deadline with work in progress.
    pub forced: usize,
}

impl Router {
    /// Binds with default options. Port 0 picks a free port (see `http_addr`).
    pub async fn bind(http: SocketAddr, https: Option<SocketAddr>) -> Result<Router, RouterError> {
        Self::bind_with(http, https, RouterOptions::default()).await
    }

    /// Binds both listeners and starts serving an empty table (every host answers 404) until
    /// the first `update`.
    pub async fn bind_with(
        http: SocketAddr,
        https: Option<SocketAddr>,
        options: RouterOptions,
    ) -> Result<Router, RouterError> {
        let http_listener = bind(http).await?;
        let http_addr = local_addr(&http_listener, http)?;
        let https_listener = match https {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let https_addr = match (&https_listener, https) {
            (Some(l), Some(addr)) => Some(local_addr(l, addr)?),
            _ => None,
        };

        let tracker = Tracker::new();
        let state = Arc::new(ProxyState::new(
            options,
            https_addr.map(|a| a.port()),
            tracker,
        ));
        let builder = Arc::new(conn::builder(&state.options));
        let provider = tls::crypto_provider();
        let resolver = Arc::new(SniResolver::new());

        let mut accept_tasks = vec![tokio::spawn(conn::accept_loop(
            http_listener,
            state.clone(),
            builder.clone(),
            None,
        ))];
        if let Some(listener) = https_listener {
            let config = tls::server_config(resolver.clone(), provider.clone())?;
            let acceptor = TlsAcceptor::from(Arc::new(config));
            accept_tasks.push(tokio::spawn(conn::accept_loop(
                listener,
                state.clone(),
                builder,
                Some(acceptor),
            )));
        }
        tracing::info!(%http_addr, https_addr = ?https_addr, "router listening");
        Ok(Router {
            state,
            resolver,
            provider,
            http_addr,
            https_addr,
            accept_tasks,
        })
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https_addr
    }

    /// Replaces routes, upstreams, certificates, redirects and challenges at once. Requests in
    /// flight finish on the table they started with; connections stay open. On error nothing
    /// changes. Certificates that fail to load are reported and left out.
    pub fn update(&self, config: RouterConfig) -> Result<UpdateReport, ConfigError> {
        let (table, warnings) =
            RouteTable::build(&config, &self.state.registry, &self.state.metrics)?;
        let certificate_errors = self.resolver.replace(
            &config.certificates,
            config.default_certificate.as_deref(),
            &self.provider,
        );
        self.state.table.store(Arc::new(table));
        self.state.registry.prune();
        for w in &warnings {
            tracing::warn!(warning = %w, "router config");
        }
        for e in &certificate_errors {
            tracing::warn!(error = %e, "router certificate left out");
        }
        Ok(UpdateReport {
            warnings,
            certificate_errors,
        })
    }

    /// Requests sent to this instance and not finished yet, whatever table version sent them.
    /// An agent stops a draining instance once this reaches 0.
    pub fn in_flight(&self, instance_id: &str) -> usize {
        self.state.registry.get(instance_id)
    }

    /// The router's metrics in the Prometheus text format.
    pub fn metrics_text(&self) -> String {
        self.state.metrics.text()
    }

    /// Stops accepting, lets accepted requests (and open tunnels) finish, and closes what is
    /// left when `deadline` passes.
    pub async fn shutdown(mut self, deadline: Duration) -> ShutdownReport {
        let tracker = self.state.tracker.clone();
        tracker.set_phase(Phase::Draining);
        for task in std::mem::take(&mut self.accept_tasks) {
            let _ = task.await;
        }
        let clean = tokio::time::timeout(deadline, tracker.idle()).await.is_ok();
        let forced = if clean { 0 } else { tracker.live() };
        tracker.set_phase(Phase::Closing);
        // Closing is immediate; the bound only guards against a task that never yields.
        let _ = tokio::time::timeout(Duration::from_secs(5), tracker.idle()).await;
        tracing::info!(clean, forced, "router stopped");
        ShutdownReport { clean, forced }
    }
}

impl Drop for Router {
    /// Dropped without `shutdown`: stop at once rather than leave listeners running.
    fn drop(&mut self) {
        if !self.accept_tasks.is_empty() {
            for task in &self.accept_tasks {
                task.abort();
            }
            self.state.tracker.set_phase(Phase::Closing);
        }
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, RouterError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| RouterError::Bind { addr, source })
}

fn local_addr(listener: &TcpListener, addr: SocketAddr) -> Result<SocketAddr, RouterError> {
    listener
        .local_addr()
        .map_err(|source| RouterError::Bind { addr, source })
}
