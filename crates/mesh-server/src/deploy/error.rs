//! Why a deployment could not be asked for. These say nothing of HTTP: `api/answer.rs` gives
//! each its status.

use mesh_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The stack is deploying already, here or on another control plane.
    #[error(
        "a deployment of {env}/{stack} is already running; follow it with `mesh deployments show` or wait for it to end"
    )]
    Busy { env: String, stack: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}
