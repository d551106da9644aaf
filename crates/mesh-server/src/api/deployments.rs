//! Deployment history and logs. Starting deployments arrives with builds and rollouts.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use mesh_types::Version;
use mesh_types::api::Deployment;

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};

fn version(v: &str) -> ApiResult<Version> {
    Version::parse(v).map_err(ApiError::from)
}

pub async fn list(
    State(state): State<AppState>,
    Path((env, stack)): Path<(String, String)>,
) -> ApiResult<Json<Vec<Deployment>>> {
    state.store().get_stack(&env, &stack).await?;
    Ok(Json(state.store().list_deployments(&env, &stack).await?))
}

pub async fn get(
    State(state): State<AppState>,
    Path((env, stack, v)): Path<(String, String, String)>,
) -> ApiResult<Json<Deployment>> {
    Ok(Json(
        state
            .store()
            .get_deployment(&env, &stack, version(&v)?)
            .await?,
    ))
}

pub async fn log(
    State(state): State<AppState>,
    Path((env, stack, v)): Path<(String, String, String)>,
) -> ApiResult<impl IntoResponse> {
    let text = state
        .store()
        .deployment_log(&env, &stack, version(&v)?)
        .await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text))
}

pub async fn create(
    State(state): State<AppState>,
    Path((env, stack)): Path<(String, String)>,
) -> ApiResult<Json<Deployment>> {
    state.store().get_stack(&env, &stack).await?;
    Err(ApiError::not_available(
        "deployments are not available yet: builds and rollouts are not part of this platform yet",
    ))
}
