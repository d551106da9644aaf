//! The Widemesh agent: one per server of a rack. It connects outbound to the control plane with
//! the rack's join token, watches the rack's desired state, keeps it on disk, and reconciles it
//! into instances through a [`mesh_runtime::Runtime`], supervising them and reporting their state.
//!
//! - [`agent`]: the controller (runner: watch, cache, requeue; reconcile: observe and act; report);
//! - [`plan`]: reconcile's decisions as pure functions, from desired and observed to actions;
//! - [`supervise`]: restarts with backoff, health, and what state an instance is in;
//! - [`logship`]: output files to the control plane, resumable, never twice;
//! - [`dns`]: `<stack>-<service>` answered on each environment's gateway.

pub mod agent;
pub mod cache;
pub mod dns;
pub mod gateway;
pub mod handover;
pub mod health;
pub mod images;
pub mod kube;
pub mod logship;
pub mod networks;
pub mod plan;
pub mod report;
pub mod routing;
pub mod supervise;
mod tasks;

pub use agent::{Agent, AgentOptions, InFlight};
pub use routing::Routing;
