//! Provider drivers: they make the servers a rack runs on and install the agent on them.
//!
//! One trait, [`Driver`], for every kind of provider: create a server (a name, a size, a
//! region and a [`Bootstrap`]: which `mesh` binary to install and how the agent joins), list,
//! delete, and wait until a server is reachable. Decisions (which pool server is free, what
//! the supervisor script says, whether a host key is trusted) are pure functions with unit
//! tests; the network and the files are at the edges.
//!
//! Drivers: `ssh` ([`ssh::SshDriver`]), a pool of servers the user already has; `aws`
//! ([`aws::AwsDriver`], EC2) and `hetzner` ([`hetzner::HetznerDriver`], Hetzner Cloud), which
//! make servers that boot with the user data of [`cloudinit`] (or, for a Kubernetes rack's
//! servers, of [`k3s`]).

use std::path::PathBuf;
use std::time::Duration;

pub mod aws;
pub mod bootstrap;
pub mod cloudinit;
pub mod hetzner;
pub mod k3s;
pub mod pool;
pub mod ssh;

pub use bootstrap::{Bootstrap, NetPlan};

/// Why a driver could not do what it was asked; every message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("the provider refused its credentials: {0}")]
    BadCredentials(String),
    #[error("unknown region {region:?}: {hint}")]
    UnknownRegion { region: String, hint: String },
    #[error("unknown server size {size:?}: {hint}")]
    UnknownSize { size: String, hint: String },
    #[error("{0}")]
    Exhausted(String),
    #[error("server {address} is unreachable: {why}")]
    Unreachable { address: String, why: String },
    #[error(
        "the host key of server {address} changed (was {expected}, now {got}): someone may be intercepting the connection, or the server was reinstalled; if you trust the new key, remove the server from the pool and add it again"
    )]
    HostKeyChanged {
        address: String,
        expected: String,
        got: String,
    },
    #[error("no server named {0:?} was made by this provider")]
    NotFound(String),
    #[error("invalid provider settings: {0}")]
    Invalid(String),
    #[error("on server {address}: {what} failed: {detail}")]
    Remote {
        address: String,
        what: String,
        detail: String,
    },
    #[error("the provider's state in {path}: {source}")]
    State {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = ProviderError> = std::result::Result<T, E>;

/// What to make: a server of `size` in `region`, named `name`, bootstrapped with `bootstrap`.
#[derive(Debug, Clone)]
pub struct CreateServer {
    pub name: String,
    pub size: String,
    pub region: String,
    pub bootstrap: Bootstrap,
}

/// A server a driver made, as the driver knows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MadeServer {
    /// The server's name in its rack.
    pub name: String,
    pub rack: String,
    /// Where the platform reaches the server (`host:port` of its SSH server for `ssh`).
    pub address: String,
    /// The host alone: the address the rack's router and the agent advertise.
    pub host: String,
    /// The agent's directory on the server.
    pub dir: String,
    /// The agent's instance networking, when not its defaults.
    #[serde(default)]
    pub net: Option<NetPlan>,
}

/// The drivers' one interface.
#[async_trait::async_trait]
pub trait Driver: Send + Sync {
    /// Makes a server and starts the agent on it; returns once the agent's supervisor runs
    /// (joining the rack is the agent's and is seen through the control plane).
    async fn create(&self, req: &CreateServer) -> Result<MadeServer>;
    /// The servers this driver made and has not deleted.
    async fn list(&self) -> Result<Vec<MadeServer>>;
    /// Stops the agent, removes what creating the server made, and gives the server back.
    async fn delete(&self, name: &str) -> Result<()>;
    /// Waits (at most `limit`) until `address` answers; the error says why not.
    async fn wait_reachable(&self, address: &str, limit: Duration) -> Result<()>;
}

/// Waits (at most `limit`) until `address` (`host[:port]`, `default_port` when none) accepts
/// a TCP connection.
pub async fn tcp_wait(address: &str, default_port: u16, limit: Duration) -> Result<()> {
    let target = if let Ok(ip) = address.parse::<std::net::IpAddr>() {
        std::net::SocketAddr::new(ip, default_port).to_string()
    } else if address
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        address.to_string()
    } else {
        format!("{address}:{default_port}")
    };
    let start = std::time::Instant::now();
    let mut last = String::from("no attempt");
    while start.elapsed() < limit {
        let left = limit
            .saturating_sub(start.elapsed())
            .min(Duration::from_secs(5));
        match tokio::time::timeout(left, tokio::net::TcpStream::connect(&target)).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "timed out".into(),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(ProviderError::Unreachable {
        address: target,
        why: format!("no answer within {}s ({last})", limit.as_secs()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiting_for_an_address_ends_when_it_answers_or_at_the_limit() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tcp_wait(&format!("127.0.0.1:{port}"), 22, Duration::from_secs(2))
            .await
            .unwrap();
        // The default port when the address has none.
        tcp_wait("127.0.0.1", port, Duration::from_secs(2))
            .await
            .unwrap();
        drop(l);
        let t = std::time::Instant::now();
        let e = tcp_wait(&format!("127.0.0.1:{port}"), 22, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(5));
        assert!(
            matches!(&e, ProviderError::Unreachable { .. }) && e.to_string().contains("within 1s"),
            "{e}"
        );
    }
}
