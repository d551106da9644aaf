//! The agent of a Kubernetes rack: it reconciles the rack's desired state into Kubernetes
//! objects with kube-rs (server-side apply, level-triggered), reports pod states as instance
//! states, feeds the rack's edge router with pod addresses, ships pods' logs, and runs `mesh run`
//! and `mesh exec` as pods and through the exec API. Cluster access shared with the control plane
//! (names, rights, the checks) is `mesh_kube`. See `docs/kubernetes-runtime.md`.
//!
//! - [`objects`]: the desired state as Kubernetes objects (pure);
//! - [`apply`]: server-side apply of them, and removal of what nothing wants;
//! - [`observe`]: pods as instances and as router backends (pure);
//! - `agent.rs`: the controller loop; `logs.rs`: log shipping; `tasks.rs`: one-off work.

mod agent;
pub mod apply;
mod logs;
pub mod objects;
pub mod observe;
mod tasks;

pub use agent::{KubeAgent, KubeAgentOptions};
