//! Cluster access of Widemesh's Kubernetes runtime, shared by the control plane (which checks a
//! cluster before it makes a rack on it, and a namespace before it places an environment) and the
//! rack's agent (`mesh_agent::kube`, which reconciles into it). See `docs/kubernetes-runtime.md`.
//!
//! - [`names`]: names and labels of what the agent makes;
//! - [`check`]: the cluster answers, grants the rights the agent needs, and holds no namespace
//!   of someone else's where the agent would make one;
//! - [`client`]: a client from a kubeconfig's text;
//! - [`install`]: the agent installed into its cluster, and the registry's pull secret.

pub mod check;
pub mod client;
mod error;
pub mod install;
pub mod names;

pub use error::KubeError;
