//! Stacks: one version of source code and shared config, built by one formula.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use mesh_types::ErrorCode;
use mesh_types::api::{CreateStack, Role, Stack, UpdateStack, check_command};
use mesh_types::desired::ImageRef;

use super::{Created, JsonBody, audit, created};
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};

pub async fn list(
    State(state): State<AppState>,
    Path(env): Path<String>,
) -> ApiResult<Json<Vec<Stack>>> {
    state.store().get_environment(&env).await?;
    Ok(Json(state.store().list_stacks(&env).await?))
}

pub async fn get(
    State(state): State<AppState>,
    Path((env, stack)): Path<(String, String)>,
) -> ApiResult<Json<Stack>> {
    Ok(Json(state.store().get_stack(&env, &stack).await?))
}

pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(env): Path<String>,
    JsonBody(req): JsonBody<CreateStack>,
) -> ApiResult<Created<Stack>> {
    let stack = state.store().create_stack(&env, &req, state.now()).await?;
    let target = format!("{env}/{}", stack.name);
    audit(
        &state,
        &caller,
        "stack.create",
        &target,
        &format!("formula {}", stack.formula),
    )
    .await;
    Ok(created(stack))
}

const MAX_BUILDPACKS: usize = 16;

/// A buildpack as a user may give it: an absolute directory, an `http(s)://` URL of a `.tgz`,
/// or a git URL with an optional `#ref`.
fn check_buildpack(b: &str) -> Result<(), String> {
    if b.is_empty() || b.len() > 1024 || b.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "buildpack {b:?} must be a directory, a .tgz URL or a git URL, without spaces"
        ));
    }
    let ok = b.starts_with('/')
        || b.starts_with("https://")
        || b.starts_with("http://")
        || b.starts_with("git://")
        || b.starts_with("git@")
        || b.starts_with("file://");
    if !ok {
        return Err(format!(
            "buildpack {b:?} is not an absolute directory, an http(s) URL of a .tgz or a git URL (https://host/repo.git#v1)"
        ));
    }
    Ok(())
}

/// Whether a buildpack is read from the build host's own disk (a directory or `file://`), which
/// a tenant must not be able to point at: only an operator (an admin token) may.
fn on_build_host(b: &str) -> bool {
    b.starts_with('/') || b.starts_with("file://")
}

/// Buildpacks on the build host's disk are the operator's to name, not a tenant's.
fn check_buildpack_source(req: &UpdateStack, caller: &Caller) -> ApiResult<()> {
    if caller.role == Role::Admin {
        return Ok(());
    }
    match req.buildpacks.iter().flatten().find(|b| on_build_host(b)) {
        Some(b) => Err(ApiError::new(
            ErrorCode::PermissionDenied,
            format!(
                "buildpack {b:?} is on the build host's disk: only an admin token may set one; \
                 give an http(s) URL of a .tgz or a git URL"
            ),
        )),
        None => Ok(()),
    }
}

fn check_update(req: &UpdateStack) -> ApiResult<()> {
    if let Some(cmd) = req.release_command.as_deref().filter(|c| !c.is_empty()) {
        check_command("release command", cmd).map_err(ApiError::invalid)?;
    }
    if let Some(b) = req.builder.as_deref().filter(|b| !b.is_empty())
        && (b.len() > 255 || b.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return Err(ApiError::invalid(format!(
            "builder {b:?} is not an image reference such as heroku/buildpacks:20"
        )));
    }
    if let Some(image) = req.image.as_deref().filter(|i| !i.is_empty()) {
        ImageRef::parse(image).map_err(ApiError::invalid)?;
    }
    if let Some(list) = &req.buildpacks {
        if list.len() > MAX_BUILDPACKS {
            return Err(ApiError::invalid(format!(
                "{} buildpacks given, at most {MAX_BUILDPACKS} are allowed",
                list.len()
            )));
        }
        for b in list {
            check_buildpack(b).map_err(ApiError::invalid)?;
        }
    }
    if req.formula.is_none()
        && req.release_command.is_none()
        && req.builder.is_none()
        && req.image.is_none()
        && req.buildpacks.is_none()
    {
        return Err(ApiError::invalid(
            "nothing to change: give a formula, release_command, builder, image or buildpacks",
        ));
    }
    Ok(())
}

pub async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((env, stack)): Path<(String, String)>,
    JsonBody(req): JsonBody<UpdateStack>,
) -> ApiResult<Json<Stack>> {
    check_update(&req)?;
    check_buildpack_source(&req, &caller)?;
    let updated = state
        .store()
        .update_stack(&env, &stack, &req, state.now())
        .await?;
    let detail = serde_json::to_string(&req).unwrap_or_default();
    audit(
        &state,
        &caller,
        "stack.update",
        &format!("{env}/{stack}"),
        &detail,
    )
    .await;
    Ok(Json(updated))
}

pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((env, stack)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state.store().delete_stack(&env, &stack).await?;
    audit(
        &state,
        &caller,
        "stack.delete",
        &format!("{env}/{stack}"),
        "",
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
