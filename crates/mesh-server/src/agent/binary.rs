//! `GET /v1/agent/mesh`: the control plane's own `mesh` executable, for servers that boot
//! from a cloud image and cannot be sent it over SSH (their user data downloads it with the
//! rack's join token and checks its SHA-256). Only a rack's join token may download it.

use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use mesh_types::ErrorCode;
use mesh_types::api::Role;

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};

/// The executable served: the one made servers are told to expect (`Provision::binary`),
/// else the running one.
pub fn binary_path(state: &AppState) -> std::io::Result<std::path::PathBuf> {
    match state.provision() {
        Some(p) => Ok(p.binary.clone()),
        None => std::env::current_exe(),
    }
}

pub async fn mesh(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Response> {
    match (&caller.role, &caller.rack) {
        (Role::Agent, Some(rack)) => {
            state.store().get_rack(rack.as_str()).await?;
        }
        _ => {
            return Err(ApiError::new(
                ErrorCode::PermissionDenied,
                "only a rack's join token may download mesh",
            ));
        }
    }
    let path = binary_path(&state).map_err(|e| {
        ApiError::new(
            ErrorCode::Internal,
            format!("cannot tell where this control plane's executable is: {e}"),
        )
    })?;
    let file = tokio::fs::File::open(&path).await.map_err(|e| {
        ApiError::new(
            ErrorCode::Internal,
            format!(
                "cannot read this control plane's executable {}: {e}",
                path.display()
            ),
        )
    })?;
    let len = file.metadata().await.map(|m| m.len()).ok();
    Ok(super::file_stream::octet_stream(file, len))
}
