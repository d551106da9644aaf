//! A typed async client of the Widemesh HTTP API (`/v1`), shared by the CLI and the agent.
//!
//! One method per route of the control plane's route table, taking and returning the bodies
//! defined in `mesh-types`, so that the CLI and the server cannot drift apart. Names in paths are
//! percent-encoded, so a stray `/` or `?` in a user's argument can never reach another route.

mod agent;
mod client;
mod endpoints;
mod environments;
mod error;
mod platform;
mod services;

pub use agent::Download;
pub use client::{Client, JsonLines};
pub use environments::LogQuery;
pub use error::{Error, Result};

#[cfg(test)]
mod tests;
