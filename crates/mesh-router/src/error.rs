//! Errors of the router's public API (request-level failures become error pages, not these).

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

/// A `RouterConfig` that cannot be applied; the previous table stays in force.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid route host {0:?}")]
    InvalidHost(String),
    #[error("invalid route path {0:?}: it must start with '/' and hold no query")]
    InvalidPath(String),
    #[error("duplicate route {0}")]
    DuplicateRoute(String),
    #[error("duplicate upstream {0}")]
    DuplicateUpstream(String),
    #[error("duplicate instance id {0}")]
    DuplicateInstance(String),
    #[error("empty instance id in upstream {0}")]
    EmptyInstanceId(String),
    #[error("invalid instance address {0}")]
    InvalidAddress(String),
}

/// A certificate that could not be loaded; the others still apply.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("certificate for {domains}: no certificate in the chain PEM")]
    EmptyChain { domains: String },
    #[error("certificate for {domains}: bad chain PEM: {reason}")]
    BadChain { domains: String, reason: String },
    #[error("certificate for {domains}: bad private key: {reason}")]
    BadKey { domains: String, reason: String },
    #[error("certificate for {domains}: the key does not match the certificate")]
    KeyMismatch { domains: String },
    #[error("certificate lists no domain")]
    NoDomain,
    #[error("default certificate {domain}: no loaded certificate has this exact domain")]
    UnknownDefault { domain: String },
}

/// Starting the router failed.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("bind {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("tls setup: {0}")]
    Tls(String),
    /// An inherited or bound listener could not be prepared (address, non-blocking mode).
    #[error("listener: {0}")]
    Listener(io::Error),
    /// The initial config of `Router::take_over` was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A worker thread could not be started.
    #[error("starting a router worker thread: {0}")]
    Worker(io::Error),
    /// The access log file could not be opened for appending.
    #[error(
        "cannot open the access log {}: {source}; give a file path whose directory exists and is writable, or `stderr`, or `off`",
        path.display()
    )]
    AccessLog { path: PathBuf, source: io::Error },
}
