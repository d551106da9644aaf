//! Providers, racks and their servers.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use mesh_types::api::{
    CreateProvider, CreateRack, CreatedRack, Provider, ProviderKind, Rack, ResizeRack, Role, Server,
};

use super::{Created, JsonBody, audit, created};
use crate::app::AppState;
use crate::auth::Caller;
use crate::domain::racks::{check_size, join_token_name, rack_from_request};
use crate::error::{ApiError, ApiResult};
use crate::tokens;

/// Longest provider secret value (an SSH private key fits easily).
const MAX_SECRET_LEN: usize = 64 * 1024;

pub async fn list_providers(State(state): State<AppState>) -> ApiResult<Json<Vec<Provider>>> {
    Ok(Json(state.store().list_providers().await?))
}

pub async fn get_provider(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Provider>> {
    Ok(Json(state.store().get_provider(&name).await?))
}

pub async fn create_provider(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(req): JsonBody<CreateProvider>,
) -> ApiResult<Created<Provider>> {
    for (k, v) in &req.secrets {
        if k.is_empty()
            || k.len() > 255
            || !k
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(ApiError::invalid(format!(
                "provider secret name {k:?} is invalid: use letters, digits, '-' and '_'"
            )));
        }
        if v.is_empty() || v.len() > MAX_SECRET_LEN {
            return Err(ApiError::invalid(format!(
                "provider secret {k} must be 1 to {MAX_SECRET_LEN} bytes long"
            )));
        }
    }
    if req.kind == ProviderKind::Ssh && !req.secrets.contains_key("private_key") {
        return Err(ApiError::invalid(
            "an ssh provider needs the secret private_key (`--secret-file private_key=~/.ssh/id_ed25519`)",
        ));
    }
    let provider = state.store().create_provider(&req, state.now()).await?;
    audit(
        &state,
        &caller,
        "provider.create",
        req.name.as_str(),
        req.kind.as_str(),
    )
    .await;
    Ok(created(provider))
}

pub async fn delete_provider(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    state.store().delete_provider(&name).await?;
    audit(&state, &caller, "provider.delete", &name, "").await;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_racks(State(state): State<AppState>) -> ApiResult<Json<Vec<Rack>>> {
    Ok(Json(state.store().list_racks().await?))
}

pub async fn get_rack(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Rack>> {
    Ok(Json(state.store().get_rack(&name).await?))
}

pub async fn create_rack(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(req): JsonBody<CreateRack>,
) -> ApiResult<Created<CreatedRack>> {
    let provider = state.store().get_provider(req.provider.as_str()).await?;
    let rack = state
        .store()
        .create_rack(&rack_from_request(&req, provider.kind, state.now())?)
        .await?;
    let join_token = tokens::generate();
    state
        .store()
        .create_token(
            &join_token_name(rack.name.as_str()),
            Role::Agent,
            Some(&rack.name),
            &tokens::hash(&join_token),
        )
        .await?;
    let detail = format!(
        "provider {} region {} size {}",
        rack.provider, rack.region, rack.size
    );
    audit(&state, &caller, "rack.create", rack.name.as_str(), &detail).await;
    Ok(created(CreatedRack { rack, join_token }))
}

pub async fn delete_rack(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    state.store().delete_rack(&name).await?;
    let token = join_token_name(&name);
    match state.store().delete_token(&token).await {
        Ok(()) | Err(mesh_store::StoreError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    state.tokens().evict_name(&token);
    audit(&state, &caller, "rack.delete", &name, "").await;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn upgrade_rack(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Rack>> {
    state.store().get_rack(&name).await?;
    Err(ApiError::not_available(format!(
        "rack upgrade replaces the servers of rack {name:?} with new ones; server replacement is not available yet on this platform"
    )))
}

pub async fn resize_rack(
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<ResizeRack>,
) -> ApiResult<Json<Rack>> {
    state.store().get_rack(&name).await?;
    check_size(&req.size)?;
    Err(ApiError::not_available(format!(
        "rack resize replaces the servers of rack {name:?} with servers of size {}; server replacement is not available yet on this platform",
        req.size
    )))
}

pub async fn list_servers(
    State(state): State<AppState>,
    Path(rack): Path<String>,
) -> ApiResult<Json<Vec<Server>>> {
    state.store().get_rack(&rack).await?;
    let servers = state.store().list_servers(&rack).await?;
    Ok(Json(state.liveness().view(servers)))
}
