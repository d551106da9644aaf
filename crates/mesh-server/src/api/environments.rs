//! Environments: network-isolated groups of stacks placed on an ordered list of racks.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use mesh_store::AliasSpec;
use mesh_types::api::{
    CreateEnvironment, Environment, EnvironmentDetails, Instance, Rack, UpdateEnvironment,
};
use mesh_types::{Domain, Name};

use super::{Created, JsonBody, audit, created};
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};

/// The rack new environments go to when none is named: `local` if it exists, else the oldest.
async fn default_rack(state: &AppState) -> ApiResult<Name> {
    let racks = state.store().list_racks().await?;
    racks
        .iter()
        .find(|r| r.name.as_str() == "local")
        .or_else(|| racks.iter().min_by_key(|r| r.created_at))
        .map(|r| r.name.clone())
        .ok_or_else(|| {
            ApiError::precondition("there is no rack yet: create one with `mesh rack create`")
        })
}

/// Checks the rack list and derives the alias endpoints: `<env>.<rack domain>` per rack.
async fn placement(state: &AppState, env: &Name, racks: &[Name]) -> ApiResult<Vec<AliasSpec>> {
    if racks.is_empty() {
        return Err(ApiError::invalid("an environment needs at least one rack"));
    }
    let mut aliases: Vec<AliasSpec> = Vec::new();
    for (i, name) in racks.iter().enumerate() {
        if racks[..i].contains(name) {
            return Err(ApiError::invalid(format!("rack {name:?} is listed twice")));
        }
        let rack: Rack = state.store().get_rack(name.as_str()).await?;
        let domain = Domain::parse(&format!("{env}.{}", rack.domain))
            .map_err(|e| ApiError::invalid(format!("platform alias of rack {name}: {e}")))?;
        if !aliases.iter().any(|a| a.domain == domain) {
            aliases.push(AliasSpec {
                domain,
                rack: rack.name,
            });
        }
    }
    Ok(aliases)
}

pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<Environment>>> {
    Ok(Json(state.store().list_environments().await?))
}

pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<EnvironmentDetails>> {
    let store = state.store();
    let environment = store.get_environment(&name).await?;
    let stacks = store.list_stacks(&name).await?;
    let services = store.list_services(&name, None).await?;
    let endpoints = store.list_endpoints(&name).await?;
    Ok(Json(EnvironmentDetails {
        environment,
        stacks,
        services,
        endpoints,
    }))
}

pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(req): JsonBody<CreateEnvironment>,
) -> ApiResult<Created<Environment>> {
    let racks = if req.racks.is_empty() {
        vec![default_rack(&state).await?]
    } else {
        req.racks
    };
    let aliases = placement(&state, &req.name, &racks).await?;
    let env = state
        .store()
        .create_environment(&req.name, &racks, &aliases, state.now())
        .await?;
    audit(
        &state,
        &caller,
        "environment.create",
        env.name.as_str(),
        &format!("racks {}", join(&env.racks)),
    )
    .await;
    Ok(created(env))
}

pub async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<UpdateEnvironment>,
) -> ApiResult<Json<Environment>> {
    let current = state.store().get_environment(&name).await?;
    let aliases = placement(&state, &current.name, &req.racks).await?;
    let env = state
        .store()
        .update_environment_racks(&name, &req.racks, &aliases, state.now())
        .await?;
    audit(
        &state,
        &caller,
        "environment.update",
        &name,
        &format!("racks {}", join(&env.racks)),
    )
    .await;
    Ok(Json(env))
}

pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    state.store().delete_environment(&name).await?;
    audit(&state, &caller, "environment.delete", &name, "").await;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn logs(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<String> {
    state.store().get_environment(&name).await?;
    Err(ApiError::not_available(
        "logs are not available yet: instances (and the agent that ships their output) are not running on this platform yet",
    ))
}

pub async fn instances(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<Instance>>> {
    state.store().get_environment(&name).await?;
    Ok(Json(state.store().list_instances(&name).await?))
}

fn join(names: &[Name]) -> String {
    names.iter().map(Name::as_str).collect::<Vec<_>>().join(",")
}
