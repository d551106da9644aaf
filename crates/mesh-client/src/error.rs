//! What can go wrong when calling the API, in words a user can act on.

use mesh_types::ErrorCode;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API answered with its error body.
    #[error("{message}")]
    Api {
        status: u16,
        code: ErrorCode,
        message: String,
    },
    /// Nothing answered at the API's address (refused, unreachable, DNS failure, timed out
    /// while connecting).
    #[error(
        "cannot reach the Widemesh API at {url}: is `mesh up` running? (or point the CLI elsewhere with `mesh login URL --token TOKEN`)"
    )]
    Connect { url: String },
    /// Anything else: a bad URL, a broken connection, an answer that is not the API's.
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// The API's error code, if the API answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Api { code, .. } => Some(*code),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
