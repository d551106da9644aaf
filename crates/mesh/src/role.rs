//! The roles that run the platform: `mesh up` (everything on this machine) and `mesh server`
//! (the control plane alone).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use mesh_server::{RunningServer, ServerOptions, StartError};

use crate::failure::hinted;
use crate::output::print;
use crate::settings::{self, Settings};

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Where the platform keeps its state [default: $XDG_DATA_HOME/widemesh or
    /// ~/.local/share/widemesh]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address of the API (port 0 picks a free port)
    #[arg(long, value_name = "ADDR", default_value = mesh_types::DEFAULT_API_ADDR)]
    pub listen: SocketAddr,
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Where the control plane keeps its master key, admin token and (without
    /// --database-url) its SQLite database [default: $XDG_DATA_HOME/widemesh or
    /// ~/.local/share/widemesh]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address of the API (port 0 picks a free port)
    #[arg(long, value_name = "ADDR", default_value = mesh_types::DEFAULT_API_ADDR)]
    pub listen: SocketAddr,
    /// `postgres://...` to share one database between several control planes, or
    /// `sqlite://PATH`
    #[arg(
        long,
        value_name = "URL",
        env = "MESH_DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn data_dir(given: Option<PathBuf>) -> Result<PathBuf> {
    match given {
        Some(d) => Ok(d),
        None => settings::default_data_dir(&env_var),
    }
}

/// The URL clients on this machine use: a wildcard listen address is reached on loopback.
pub fn local_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

/// Starts the control plane; a busy address gets a hint instead of a bare OS error.
async fn start(opts: ServerOptions, what: &str) -> Result<RunningServer> {
    let listen = opts.listen;
    match mesh_server::start(opts).await {
        Ok(r) => Ok(r),
        Err(e @ StartError::Listen { .. }) => Err(hinted(
            format!("cannot start {what}: {e}"),
            format!(
                "is another widemesh already running on {listen}? stop it, or pass --listen with another address (port 0 picks a free one)"
            ),
        )),
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot start {what}"))),
    }
}

/// `mesh up`: the control plane with the local rack, and a CLI config pointing at it.
pub async fn up(args: UpArgs) -> Result<()> {
    let data_dir = data_dir(args.data_dir)?;
    let opts = ServerOptions {
        listen: args.listen,
        data_dir: data_dir.clone(),
        database_url: None,
        local_rack: true,
    };
    let running = start(opts, "widemesh").await?;
    let api_url = local_url(running.addr());
    match running.admin_token() {
        Some(token) => {
            let path = settings::config_path(&env_var)?;
            let config = Settings {
                api_url: Some(api_url.clone()),
                token: Some(token.to_string()),
            };
            if let Err(e) = settings::save(&path, &config) {
                running.shutdown();
                let _ = running.wait().await;
                return Err(e.context("cannot write the CLI config"));
            }
            tracing::info!(path = %path.display(), "CLI config written");
        }
        None => tracing::warn!(
            "the admin token file is missing from {}: the CLI config was not written; log in with `mesh login {api_url} --token TOKEN`",
            data_dir.display()
        ),
    }
    print(format!(
        "widemesh is up: api {api_url}, data {}",
        data_dir.display()
    ));
    serve_until_signal(running).await
}

/// `mesh server`: the control plane alone.
pub async fn server(args: ServerArgs) -> Result<()> {
    let data_dir = data_dir(args.data_dir)?;
    let opts = ServerOptions {
        listen: args.listen,
        data_dir: data_dir.clone(),
        database_url: args.database_url,
        local_rack: false,
    };
    let running = start(opts, "the widemesh control plane").await?;
    let api_url = local_url(running.addr());
    print(format!(
        "widemesh control plane is up: api {api_url}, data {}",
        data_dir.display()
    ));
    let token_file = data_dir.join("admin-token");
    if token_file.exists() {
        print(format!(
            "admin token: {} (log in with `mesh login {api_url} --token \"$(cat {})\"`)",
            token_file.display(),
            token_file.display()
        ));
    }
    serve_until_signal(running).await
}

async fn serve_until_signal(running: RunningServer) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    running.shutdown();
    running.wait().await.context("the API server failed")?;
    tracing::info!("stopped");
    Ok(())
}
