//! The runtime's one error type. Messages name the instance or environment, what failed and,
//! where there is one, the fix.

use std::io;
use std::net::Ipv4Addr;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },

    #[error("instance {0:?} does not exist")]
    NotFound(String),

    #[error("instance {0:?} already exists")]
    AlreadyExists(String),

    #[error("instance {0:?} is not running")]
    NotRunning(String),

    #[error("environment {0:?} has no network on this server; call ensure_network first")]
    NoNetwork(String),

    #[error(
        "network of environment {environment:?} still has {instances} instance(s); delete them first"
    )]
    NetworkInUse {
        environment: String,
        instances: usize,
    },

    #[error("network of environment {environment:?}: {reason}")]
    NetworkConflict { environment: String, reason: String },

    #[error("address {address} in {environment:?}: {reason}")]
    Address {
        environment: String,
        address: Ipv4Addr,
        reason: String,
    },

    #[error("no free address left in {subnet} for environment {environment:?}")]
    AddressesExhausted { environment: String, subnet: String },

    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },

    #[error("{program} is not installed (or not in PATH): run scripts/install-runtime-deps")]
    MissingTool { program: String },

    #[error("instance {id:?} failed to start: {message}")]
    StartFailed { id: String, message: String },

    #[error("instance {id:?}: {what} did not finish within {waited_ms} ms")]
    Timeout {
        id: String,
        what: &'static str,
        waited_ms: u128,
    },

    #[error("image at {path}: {reason}")]
    Image { path: PathBuf, reason: String },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    #[error("{context}: {source}")]
    Json {
        context: String,
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        Error::Invalid {
            what,
            reason: reason.into(),
        }
    }
}

/// Adds what was being done to an `io::Error`, so "No such file or directory" says which file.
pub(crate) trait IoContext<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: context(),
            source,
        })
    }
}

impl<T> IoContext<T> for std::result::Result<T, serde_json::Error> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Json {
            context: context(),
            source,
        })
    }
}
