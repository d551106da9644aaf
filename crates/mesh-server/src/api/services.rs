//! Services: commands run from a stack's build, as web services, workers or cron jobs.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use mesh_store::ServiceSpec;
use mesh_types::api::{
    CreateService, DEFAULT_PORT, HealthCheck, MAX_INSTANCES, ScaleService, Service, UpdateService,
    check_command,
};
use mesh_types::name::{MAX_NAME_LEN, service_hostname};
use mesh_types::{InstanceSize, Schedule};

use super::{Created, JsonBody, audit, created};
use crate::app::AppState;
use crate::auth::Caller;
use crate::domain::services::spec_of;
use crate::error::{ApiError, ApiResult};

pub async fn list(
    State(state): State<AppState>,
    Path((env, stack)): Path<(String, String)>,
) -> ApiResult<Json<Vec<Service>>> {
    state.store().get_stack(&env, &stack).await?;
    Ok(Json(state.store().list_services(&env, Some(&stack)).await?))
}

pub async fn list_env(
    State(state): State<AppState>,
    Path(env): Path<String>,
) -> ApiResult<Json<Vec<Service>>> {
    state.store().get_environment(&env).await?;
    Ok(Json(state.store().list_services(&env, None).await?))
}

pub async fn get(
    State(state): State<AppState>,
    Path((env, stack, service)): Path<(String, String, String)>,
) -> ApiResult<Json<Service>> {
    Ok(Json(
        state.store().get_service(&env, &stack, &service).await?,
    ))
}

fn check_instances(n: u32) -> ApiResult<u32> {
    if n > MAX_INSTANCES {
        return Err(ApiError::invalid(format!(
            "{n} instances asked for, at most {MAX_INSTANCES} are allowed"
        )));
    }
    Ok(n)
}

fn check_port(port: u16) -> ApiResult<u16> {
    if port == 0 {
        return Err(ApiError::invalid("port 0 is not a port; use 1-65535"));
    }
    Ok(port)
}

fn check_health_path(path: &str) -> ApiResult<()> {
    if !path.starts_with('/')
        || path.len() > 1024
        || path.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ApiError::invalid(format!(
            "health check path {path:?} must be a URL path such as /healthz"
        )));
    }
    Ok(())
}

fn check_spec(spec: &ServiceSpec) -> ApiResult<()> {
    if let Some(cmd) = &spec.command {
        check_command("command", cmd).map_err(ApiError::invalid)?;
    }
    if let Some(p) = &spec.health.http_path {
        check_health_path(p)?;
    }
    check_port(spec.port)?;
    check_instances(spec.instances)?;
    Ok(())
}

pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((env, stack)): Path<(String, String)>,
    JsonBody(req): JsonBody<CreateService>,
) -> ApiResult<Created<Service>> {
    let hostname = service_hostname(&stack, req.name.as_str());
    if hostname.len() > MAX_NAME_LEN {
        return Err(ApiError::invalid(format!(
            "service hostname {hostname:?} would be {} characters, at most {MAX_NAME_LEN} are allowed: use a shorter service name",
            hostname.len()
        )));
    }
    // `<stack>-<service>` names the service in DNS, /etc/hosts and the router: two services of
    // one environment must not share it (stack `a-b` service `web` and stack `a` service `b-web`).
    if let Some(taken) = state
        .store()
        .list_services(&env, None)
        .await?
        .into_iter()
        .find(|s| s.hostname == hostname && s.stack.as_str() != stack)
    {
        return Err(ApiError::new(
            mesh_types::ErrorCode::AlreadyExists,
            format!(
                "service {} of stack {} is already reachable as {hostname}; choose another service name",
                taken.name, taken.stack
            ),
        ));
    }
    let spec = ServiceSpec {
        name: req.name,
        command: req.command,
        schedule: req.schedule,
        port: req.port.unwrap_or(DEFAULT_PORT),
        instances: req.instances.unwrap_or(1),
        size: req.size.unwrap_or_default(),
        health: HealthCheck {
            http_path: req.health_path,
            ..HealthCheck::default()
        },
    };
    check_spec(&spec)?;
    let service = state
        .store()
        .create_service(&env, &stack, &spec, state.now())
        .await?;
    let detail = format!(
        "kind {} size {} instances {}",
        service.kind, service.size, service.instances
    );
    audit(
        &state,
        &caller,
        "service.create",
        &format!("{env}/{stack}/{}", service.name),
        &detail,
    )
    .await;
    Ok(created(service))
}

/// An empty string clears an optional field; anything else replaces it.
fn clear_or(v: &str) -> Option<String> {
    (!v.is_empty()).then(|| v.to_string())
}

pub async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((env, stack, name)): Path<(String, String, String)>,
    JsonBody(req): JsonBody<UpdateService>,
) -> ApiResult<Json<Service>> {
    if req == UpdateService::default() {
        return Err(ApiError::invalid(
            "nothing to change: give a command, schedule, port or health_path",
        ));
    }
    let current = state.store().get_service(&env, &stack, &name).await?;
    let mut spec = spec_of(&current);
    if let Some(c) = &req.command {
        spec.command = clear_or(c);
    }
    if let Some(s) = &req.schedule {
        spec.schedule = clear_or(s)
            .map(|s| Schedule::parse(&s))
            .transpose()
            .map_err(ApiError::invalid)?;
    }
    if let Some(p) = req.port {
        spec.port = p;
    }
    if let Some(p) = &req.health_path {
        spec.health.http_path = clear_or(p);
    }
    check_spec(&spec)?;
    let service = state
        .store()
        .update_service(&env, &stack, &spec, state.now())
        .await?;
    let detail = serde_json::to_string(&req).unwrap_or_default();
    audit(
        &state,
        &caller,
        "service.update",
        &format!("{env}/{stack}/{name}"),
        &detail,
    )
    .await;
    Ok(Json(service))
}

pub async fn scale(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((env, stack, name)): Path<(String, String, String)>,
    JsonBody(req): JsonBody<ScaleService>,
) -> ApiResult<Json<Service>> {
    if req.instances.is_none() && req.size.is_none() {
        return Err(ApiError::invalid(
            "nothing to change: give instances or size",
        ));
    }
    let current = state.store().get_service(&env, &stack, &name).await?;
    let mut spec = spec_of(&current);
    if let Some(n) = req.instances {
        spec.instances = check_instances(n)?;
    }
    let size: InstanceSize = req.size.unwrap_or(spec.size);
    spec.size = size;
    let service = state
        .store()
        .update_service(&env, &stack, &spec, state.now())
        .await?;
    let detail = format!("instances {} size {}", service.instances, service.size);
    audit(
        &state,
        &caller,
        "service.scale",
        &format!("{env}/{stack}/{name}"),
        &detail,
    )
    .await;
    Ok(Json(service))
}

pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((env, stack, name)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    state.store().delete_service(&env, &stack, &name).await?;
    audit(
        &state,
        &caller,
        "service.delete",
        &format!("{env}/{stack}/{name}"),
        "",
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
