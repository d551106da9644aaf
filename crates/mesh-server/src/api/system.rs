//! Health, metrics, the OpenAPI document and the JSON answers for unknown routes.

use axum::extract::State;
use axum::http::{Method, Uri, header};
use axum::response::IntoResponse;
use mesh_types::ErrorCode;

use crate::app::AppState;
use crate::error::ApiError;

/// The API contract, checked against the route table by a test.
pub const OPENAPI: &str = include_str!("../../openapi.json");

pub async fn healthz() -> &'static str {
    "ok\n"
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics().encode(),
    )
}

pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

pub async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!("no such API route: {method} {}", uri.path()),
    )
}

pub async fn no_method(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidArgument,
        format!("method {method} is not allowed on {}", uri.path()),
    )
}
