//! Request handlers, one module per resource.

pub mod access;
mod answer;
pub mod certificates;
pub mod config;
pub mod deployments;
pub mod endpoints;
pub mod environments;
pub mod platform;
pub mod replacement;
pub mod runs;
pub mod services;
pub mod sources;
pub mod stacks;
pub mod system;

pub use crate::extract::{JsonBody, QueryArgs};

use axum::Json;
use axum::http::StatusCode;

use crate::app::AppState;
use crate::auth::Caller;

/// `201 Created` with the created resource.
pub type Created<T> = (StatusCode, Json<T>);

pub fn created<T>(value: T) -> Created<T> {
    (StatusCode::CREATED, Json(value))
}

/// Appends to the audit log. The change has already happened, so a failure here is logged
/// rather than turned into a failed request.
pub async fn audit(state: &AppState, caller: &Caller, action: &str, target: &str, detail: &str) {
    if let Err(e) = state
        .store()
        .record_event(&caller.name, action, target, detail, state.now())
        .await
    {
        tracing::error!(error = %e, action, target, "could not write the audit log");
    }
}
