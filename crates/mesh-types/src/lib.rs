//! The vocabulary of Widemesh, shared by the control plane, the agent and the CLI.
//!
//! Everything that crosses a process boundary is defined here, so that a change to the API is a
//! compile error on both sides rather than a runtime surprise.

pub mod agent;
pub mod api;
pub mod cidr;
pub mod config;
pub mod desired;
pub mod error;
pub mod name;
pub mod schedule;
pub mod size;

pub use cidr::{Cidr, CidrError};
pub use error::{ErrorBody, ErrorCode, ErrorDetail};
pub use name::{ConfigKey, Domain, Name, NameError, Version};
pub use schedule::Schedule;
pub use size::InstanceSize;

/// The default loopback address of the control plane API.
pub const DEFAULT_API_ADDR: &str = "127.0.0.1:7440";

/// Milliseconds since the Unix epoch, the one timestamp representation used on the wire and in
/// the store.
pub type UnixMs = i64;
