//! The router as a running thing: listeners, hot config updates, metrics and shutdown.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

use crate::access_log;
use crate::config::RouterConfig;
use crate::error::{CertificateError, ConfigError, RouterError};
use crate::metrics::MetricsHandle;
use crate::options::RouterOptions;
use crate::proxy::Shared;
use crate::table::RouteTable;
use crate::tls::{self, SniResolver};
use crate::tracker::{Phase, Tracker};

/// How long shutdown waits for queued access lines to be written: a reader stuck on the other
/// end must not hold the process up for long, and lines still queued after it are lost.
const ACCESS_LOG_FLUSH: Duration = Duration::from_secs(2);

mod conn;
mod listeners;
mod spread;
mod workers;

pub use listeners::Listeners;

/// A running edge router: an HTTP listener and optionally an HTTPS one, served by
/// `RouterOptions::workers` threads (one per core by default), each with its own
/// single-threaded runtime.
///
/// Binaries must install a rustls `CryptoProvider` at the start of `main`
/// (`rustls::crypto::ring::default_provider().install_default()`); the router falls back to ring
/// when none is installed, but other TLS users in the process would panic.
pub struct Router {
    state: Arc<Shared>,
    resolver: Arc<SniResolver>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    http_addr: SocketAddr,
    https_addr: Option<SocketAddr>,
    /// The router's own handles to its sockets, for `listeners`; dropped when shutdown starts.
    listeners: Option<Listeners>,
    /// Ends (`None`) once every worker's accept loops have stopped.
    accepting: Option<mpsc::Receiver<()>>,
    /// The access log's queue, for flushing it at shutdown (`None`: the log is off).
    access_log: Option<access_log::Sender>,
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
        Self::from_listeners(Listeners::bind(http, https)?, options)
    }

    /// Serves on sockets that are already listening: inherited from a previous router (see
    /// `listeners` and `crate::handover`), or bound by the caller. Connections waiting in their
    /// accept queues are served here; nothing is lost between the two routers.
    ///
    /// It serves an empty table until the first `update`: a router taking over from another
    /// one should use `take_over`, which applies its config before accepting anything.
    pub fn from_listeners(
        listeners: Listeners,
        options: RouterOptions,
    ) -> Result<Router, RouterError> {
        Self::start(listeners, options, None).map(|(router, _)| router)
    }

    /// `from_listeners` with `config` in force before the first connection is accepted, for a
    /// router taking over another one's sockets (so no request meets an empty table).
    pub fn take_over(
        listeners: Listeners,
        options: RouterOptions,
        config: RouterConfig,
    ) -> Result<(Router, UpdateReport), RouterError> {
        let (router, report) = Self::start(listeners, options, Some(config))?;
        Ok((router, report.unwrap_or_default()))
    }

    fn start(
        listeners: Listeners,
        options: RouterOptions,
        config: Option<RouterConfig>,
    ) -> Result<(Router, Option<UpdateReport>), RouterError> {
        listeners.set_nonblocking().map_err(RouterError::Listener)?;
        let http_addr = listeners.http.local_addr().map_err(RouterError::Listener)?;
        let https_addr = match &listeners.https {
            Some(l) => Some(l.local_addr().map_err(RouterError::Listener)?),
            None => None,
        };
        let provider = tls::crypto_provider();
        let resolver = Arc::new(SniResolver::new());
        let tls = match &listeners.https {
            Some(_) => {
                let config = tls::server_config(resolver.clone(), provider.clone())?;
                Some(TlsAcceptor::from(Arc::new(config)))
            }
            None => None,
        };
        let worker_count = options.worker_count();
        let builder = Arc::new(conn::builder(&options));
        let access_log_setting = options.access_log.clone();
        let state = Arc::new(Shared::new(
            options,
            https_addr.map(|a| a.port()),
            Tracker::new(),
        ));
        let access_log =
            access_log::start(&access_log_setting, state.metrics.access_log_dropped())?;
        let (accepting, accept_done) = mpsc::channel(1);
        let (spread, inboxes) = spread::Spread::new(worker_count);
        let mut router = Router {
            state: state.clone(),
            resolver,
            provider,
            http_addr,
            https_addr,
            listeners: None,
            accepting: Some(accept_done),
            access_log: access_log.clone(),
        };
        let report = config.map(|c| router.update(c)).transpose()?;
        for (index, inbox) in inboxes.into_iter().enumerate() {
            let worker = workers::Worker {
                spread: spread.clone(),
                inbox,
                listeners: listeners.try_clone().map_err(RouterError::Listener)?,
                shared: state.clone(),
                builder: builder.clone(),
                tls: tls.clone(),
                accepting: accepting.clone(),
                access_log: access_log.clone(),
            };
            // On error, dropping `router` stops the workers already started.
            worker.spawn(index)?;
        }
        drop(accepting);
        tracing::info!(%http_addr, https_addr = ?https_addr, workers = worker_count, "router listening");
        router.listeners = Some(listeners);
        Ok((router, report))
    }

    /// New handles to the router's listening sockets (the same sockets, sharing their accept
    /// queues), for a router taking over: start it with `from_listeners` (or send them to
    /// another process with `crate::handover::send_listeners`), then `shutdown` this one.
    /// Connections this router accepted finish here; the rest wait in the queue for the new one.
    pub fn listeners(&self) -> io::Result<Listeners> {
        match &self.listeners {
            Some(l) => l.try_clone(),
            None => Err(io::Error::other("the router is shutting down")),
        }
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

    /// A handle on the metrics, for `serve_metrics` (it stays valid after shutdown).
    pub fn metrics(&self) -> MetricsHandle {
        MetricsHandle(self.state.clone())
    }

    /// Stops accepting, lets accepted requests (and open tunnels) finish, and closes what is
    /// left when `deadline` passes. Then waits (up to `ACCESS_LOG_FLUSH`) for the access lines
    /// queued so far to be written.
    pub async fn shutdown(mut self, deadline: Duration) -> ShutdownReport {
        let tracker = self.state.tracker.clone();
        // The sockets close once every worker's accept loop has dropped its handles too.
        self.listeners = None;
        tracker.set_phase(Phase::Draining);
        if let Some(mut accepting) = self.accepting.take() {
            while accepting.recv().await.is_some() {}
        }
        let clean = tokio::time::timeout(deadline, tracker.idle()).await.is_ok();
        let forced = if clean { 0 } else { tracker.live() };
        tracker.set_phase(Phase::Closing);
        // Closing is immediate; the bound only guards against a task that never yields.
        let _ = tokio::time::timeout(Duration::from_secs(5), tracker.idle()).await;
        if let Some(log) = &self.access_log
            && !log.flush(ACCESS_LOG_FLUSH).await
        {
            tracing::warn!("access log: lines still queued at shutdown were not written");
        }
        tracing::info!(clean, forced, "router stopped");
        ShutdownReport { clean, forced }
    }
}

impl Drop for Router {
    /// Dropped without `shutdown`: stop at once rather than leave listeners running.
    fn drop(&mut self) {
        if self.accepting.is_some() {
            self.state.tracker.set_phase(Phase::Closing);
        }
    }
}
