//! Endpoints: platform aliases and custom domains, and the services published on them.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use mesh_types::api::{
    CreateEndpoint, Endpoint, EndpointKind, PublishService, Route, UnpublishService,
    UpdateEndpoint, check_route_path,
};

use super::{Created, JsonBody, audit, created};
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};

pub async fn list(
    State(state): State<AppState>,
    Path(env): Path<String>,
) -> ApiResult<Json<Vec<Endpoint>>> {
    state.store().get_environment(&env).await?;
    Ok(Json(state.store().list_endpoints(&env).await?))
}

pub async fn get(
    State(state): State<AppState>,
    Path((env, domain)): Path<(String, String)>,
) -> ApiResult<Json<Endpoint>> {
    Ok(Json(
        state
            .store()
            .get_endpoint(&env, &domain.to_ascii_lowercase())
            .await?,
    ))
}

pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(env): Path<String>,
    JsonBody(req): JsonBody<CreateEndpoint>,
) -> ApiResult<Created<Endpoint>> {
    state.store().get_environment(&env).await?;
    // Rack domains belong to platform aliases: a custom domain there would shadow an alias.
    for rack in state.store().list_racks().await? {
        if req.domain.is_within(rack.domain.as_str()) {
            return Err(ApiError::invalid(format!(
                "{} lies under {}, the platform alias domain of rack {}; custom domains must be your own",
                req.domain, rack.domain, rack.name
            )));
        }
    }
    let endpoint = state
        .store()
        .create_endpoint(&env, &req.domain, EndpointKind::Custom, None, state.now())
        .await?;
    audit(
        &state,
        &caller,
        "endpoint.create",
        &format!("{env}/{}", req.domain),
        "",
    )
    .await;
    Ok(created(endpoint))
}

/// `PATCH`: the endpoint's settings (the redirect of plain HTTP to HTTPS).
pub async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((env, domain)): Path<(String, String)>,
    JsonBody(req): JsonBody<UpdateEndpoint>,
) -> ApiResult<Json<Endpoint>> {
    let domain = domain.to_ascii_lowercase();
    let Some(on) = req.https_redirect else {
        return Err(ApiError::invalid("nothing to change: give https_redirect"));
    };
    let endpoint = state.store().set_https_redirect(&env, &domain, on).await?;
    audit(
        &state,
        &caller,
        "endpoint.update",
        &format!("{env}/{domain}"),
        &format!("https_redirect {on}"),
    )
    .await;
    Ok(Json(endpoint))
}

pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((env, domain)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let domain = domain.to_ascii_lowercase();
    let endpoint = state.store().get_endpoint(&env, &domain).await?;
    if endpoint.kind == EndpointKind::Alias {
        return Err(ApiError::precondition(format!(
            "{domain} is a platform alias: it follows the environment's racks and cannot be deleted"
        )));
    }
    state.store().delete_endpoint(&env, &domain).await?;
    audit(
        &state,
        &caller,
        "endpoint.delete",
        &format!("{env}/{domain}"),
        "",
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn publish(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((env, domain)): Path<(String, String)>,
    JsonBody(req): JsonBody<PublishService>,
) -> ApiResult<Json<Endpoint>> {
    let domain = domain.to_ascii_lowercase();
    let path = req.path.unwrap_or_else(|| "/".to_string());
    check_route_path(&path).map_err(ApiError::invalid)?;
    state
        .store()
        .get_service(&env, req.stack.as_str(), req.service.as_str())
        .await?;
    let endpoint = state.store().get_endpoint(&env, &domain).await?;
    let mut routes = endpoint.routes.clone();
    match routes.iter().find(|r| r.path == path) {
        Some(r) if r.stack == req.stack && r.service == req.service => return Ok(Json(endpoint)),
        Some(r) => {
            return Err(ApiError::precondition(format!(
                "{domain}{path} already routes to {}-{}; unpublish it first",
                r.stack, r.service
            )));
        }
        None => routes.push(Route {
            path: path.clone(),
            stack: req.stack.clone(),
            service: req.service.clone(),
        }),
    }
    let endpoint = state.store().set_routes(&env, &domain, &routes).await?;
    let detail = format!("{}{path} -> {}-{}", domain, req.stack, req.service);
    audit(
        &state,
        &caller,
        "endpoint.publish",
        &format!("{env}/{domain}"),
        &detail,
    )
    .await;
    Ok(Json(endpoint))
}

pub async fn unpublish(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((env, domain)): Path<(String, String)>,
    JsonBody(req): JsonBody<UnpublishService>,
) -> ApiResult<Json<Endpoint>> {
    let domain = domain.to_ascii_lowercase();
    let endpoint = state.store().get_endpoint(&env, &domain).await?;
    let matches = |r: &Route| {
        r.stack == req.stack
            && r.service == req.service
            && req.path.as_ref().is_none_or(|p| p == &r.path)
    };
    if !endpoint.routes.iter().any(matches) {
        return Err(ApiError::not_found(format!(
            "a route of {}-{} on {domain}",
            req.stack, req.service
        )));
    }
    let routes: Vec<Route> = endpoint
        .routes
        .iter()
        .filter(|r| !matches(r))
        .cloned()
        .collect();
    let endpoint = state.store().set_routes(&env, &domain, &routes).await?;
    let detail = format!("{}-{}", req.stack, req.service);
    audit(
        &state,
        &caller,
        "endpoint.unpublish",
        &format!("{env}/{domain}"),
        &detail,
    )
    .await;
    Ok(Json(endpoint))
}
