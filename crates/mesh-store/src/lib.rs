//! The durable state of the control plane.
//!
//! [`Store`] is the only way the control plane reads or writes state. [`SqlStore`] implements it
//! on SQLite (the embedded default) and PostgreSQL (several control planes behind a load balancer)
//! with the same SQL. Secret values (config variables, provider secrets, certificate keys) are
//! sealed with the master key before they reach the database.

mod crypto;
mod error;
mod sql;
mod store;

pub use crypto::{KEY_LEN, MasterKey};
pub use error::{StoreError, StoreResult};
pub use sql::{Dialect, SqlStore};
pub use store::*;
