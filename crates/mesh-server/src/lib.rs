//! The Widemesh control plane: the HTTP API under `/v1`, bearer-token auth, validation of every
//! change, the audit log, and (later) the agent gateway, scheduler and builds.
//!
//! [`start`] opens the store, bootstraps a fresh platform and serves until shut down.

mod acme;
mod agent;
mod api;
mod app;
mod auth;
mod bootstrap;
mod certs;
mod clock;
mod deploy;
mod domain;
mod error;
mod extract;
mod kube;
#[cfg(test)]
mod layering;
mod logs;
mod metrics;
mod ndjson;
pub mod provision;
mod replace;
mod retire;
mod routes;
mod sweeper;
mod tasks;
mod tokens;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use mesh_store::{MasterKey, SqlStore, Store};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use acme::AcmeOptions;
pub use app::AppState;
pub use auth::policy;
pub use clock::{Clock, SystemClock};
pub use deploy::{DEFAULT_MAX_UPLOAD_BYTES, DeployOptions, UploadLimits};
pub use domain::servers::DEFAULT_LOST_AFTER as DEFAULT_SERVER_LOST_AFTER;
pub use error::ApiError;
pub use mesh_build::builder::Builder;
pub use routes::{ROUTES, app_router};

/// How to run the control plane.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Where the API listens.
    pub listen: SocketAddr,
    /// Holds the master key, the admin token file and (without `database_url`) the SQLite file.
    pub data_dir: PathBuf,
    /// `postgres://...` or `sqlite://...`; none means SQLite at `<data_dir>/widemesh.db`.
    pub database_url: Option<String>,
    /// Create the `local` provider and rack on first start, as `mesh up` does.
    pub local_rack: bool,
    /// Order certificates for custom domains from this ACME CA; none: they stay pending.
    pub acme: Option<AcmeOptions>,
    /// Builds sources for deployments; none: only prebuilt images deploy.
    pub builder: Option<Arc<dyn Builder>>,
    /// Largest source or image archive accepted.
    pub max_upload_bytes: u64,
    /// How many uploads are received and checked at once, and for how long.
    pub uploads: UploadLimits,
    /// Serve on this already-listening socket instead of binding `listen` (one handed over by
    /// the process this one replaces, with the connections queued on it).
    pub listener: Option<Arc<std::net::TcpListener>>,
    /// A server without a heartbeat for this long is lost ([`DEFAULT_SERVER_LOST_AFTER`]).
    pub server_lost_after: std::time::Duration,
}

/// Why the control plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("store: {0}")]
    Store(#[from] mesh_store::StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A control plane serving in the background.
pub struct RunningServer {
    addr: SocketAddr,
    /// Another handle to the listening socket, to hand it to a successor process.
    listener: std::net::TcpListener,
    admin_token: Option<String>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
    state: AppState,
}

impl RunningServer {
    /// The address the API listens on (with the real port when asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Another handle to the API's listening socket (same accept queue), for handing it over.
    pub fn listener(&self) -> std::io::Result<std::net::TcpListener> {
        self.listener.try_clone()
    }

    /// The admin token this data directory holds, if the platform was bootstrapped here.
    pub fn admin_token(&self) -> Option<&str> {
        self.admin_token.as_deref()
    }

    /// Lets racks of ssh providers make their servers: agents reach this control plane at
    /// `p.advertise_url`.
    pub fn set_provision(&self, p: provision::Provision) {
        self.state.set_provision(p);
    }

    /// Stops accepting connections and lets in-flight requests finish.
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Waits until the server has stopped.
    pub async fn wait(self) -> std::io::Result<()> {
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}

/// Opens the store, bootstraps a fresh platform and starts serving the API.
pub async fn start(opts: ServerOptions) -> Result<RunningServer, StartError> {
    let dir_err = |source| StartError::DataDir {
        path: opts.data_dir.clone(),
        source,
    };
    std::fs::create_dir_all(&opts.data_dir).map_err(dir_err)?;
    restrict_dir(&opts.data_dir).map_err(dir_err)?;
    let key = MasterKey::load_or_create(&opts.data_dir.join("master.key"))?;
    // A path, not a URL: data directories may hold characters a URL would misread.
    let (store, url) = match &opts.database_url {
        Some(url) => (SqlStore::open(url, key).await?, url.clone()),
        None => {
            let path = opts.data_dir.join("widemesh.db");
            (
                SqlStore::open_sqlite_path(&path, key).await?,
                format!("sqlite {}", path.display()),
            )
        }
    };
    let store: Arc<dyn Store> = Arc::new(store);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let admin_token = bootstrap::bootstrap(store.as_ref(), clock.as_ref(), &opts).await?;

    let listen_err = |source| StartError::Listen {
        addr: opts.listen,
        source,
    };
    let listener = match &opts.listener {
        Some(given) => {
            let std = given.try_clone().map_err(listen_err)?;
            std.set_nonblocking(true).map_err(listen_err)?;
            TcpListener::from_std(std).map_err(listen_err)?
        }
        None => TcpListener::bind(opts.listen).await.map_err(listen_err)?,
    };
    let handle = {
        use std::os::fd::AsFd;
        let fd = listener.as_fd().try_clone_to_owned().map_err(listen_err)?;
        std::net::TcpListener::from(fd)
    };
    let addr = listener.local_addr().map_err(|source| StartError::Listen {
        addr: opts.listen,
        source,
    })?;
    let deploy = DeployOptions {
        builder: opts.builder.clone(),
        blobs: mesh_build::BlobDir::new(opts.data_dir.join("blobs")),
        work_dir: opts.data_dir.join("deploys"),
        max_upload_bytes: opts.max_upload_bytes,
        uploads: opts.uploads.clone(),
    };
    // A deployment a stopped control plane left half done is over: say so, so the stack can
    // deploy again.
    deploy::abandon_unfinished(store.as_ref(), clock.now_ms()).await?;
    let state = AppState::with_deploys(store, clock, Some(deploy));
    state.set_server_lost_after(opts.server_lost_after);
    let app = app_router(state.clone());
    let (tx, mut rx) = watch::channel(false);
    let streams = state.clone();
    sweeper::spawn(state.clone(), rx.clone());
    retire::spawn(state.clone(), rx.clone());
    replace::spawn(state.clone(), rx.clone());
    acme::spawn(state.clone(), opts.acme.clone(), &opts.data_dir, rx.clone());
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = rx.wait_for(|stop| *stop).await;
            // Streams that would otherwise never end (agents' watch, logs -f, runs) end now.
            streams.begin_shutdown();
        })
        .await
    });
    tracing::info!(%addr, database = %redact(&url), "control plane listening");
    Ok(RunningServer {
        addr,
        listener: handle,
        admin_token,
        shutdown: tx,
        task,
        state,
    })
}

/// The data directory holds the master key: only its owner may enter it.
fn restrict_dir(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
}

/// A database URL without its password, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            super::redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(super::redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(super::redact("sqlite:///x.db"), "sqlite:///x.db");
    }
}
