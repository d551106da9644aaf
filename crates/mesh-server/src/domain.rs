//! What the control plane decides, apart from how it was asked: the rules the HTTP handlers
//! (`api/`), deployments (`deploy/`) and the first start (`bootstrap.rs`) share.
//!
//! Nothing here knows HTTP: these modules never import `api/` or axum, and say what went wrong
//! with their own error types, which `api/answer.rs` turns into HTTP answers.
//!
//! - [`migration`]: moving an environment between racks: leaving, forwarding, finishing.
//! - [`placement`]: where an environment's one-off work runs.
//! - [`racks`]: a rack from its request, with its provider's defaults.
//! - [`replacement`]: replacing a rack's server: phases, and what each server is told.
//! - [`servers`]: a rack's one server: who may register, when it is lost.
//! - [`services`]: a service's spec, to change and store again.

pub mod migration;
pub mod placement;
pub mod racks;
pub mod replacement;
pub mod servers;
pub mod services;
