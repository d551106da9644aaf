//! Config variables of a stack and its services, with region and rack overrides.

use axum::extract::{Path, State};
use axum::{Extension, Json};
use mesh_store::StoreError;
use mesh_types::Name;
use mesh_types::config::{
    ConfigChange, ConfigScope, ConfigVar, MAX_VARS_PER_SCOPE, ResolvedConfig, ResolvedVar,
    check_value, resolve,
};
use serde::Deserialize;

use super::{JsonBody, QueryArgs, audit};
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};

/// Variables the platform sets itself.
const RESERVED: &[&str] = &["PORT"];

pub async fn list_stack(
    State(state): State<AppState>,
    Path((env, stack)): Path<(String, String)>,
) -> ApiResult<Json<Vec<ConfigVar>>> {
    Ok(Json(state.store().list_config(&env, &stack).await?))
}

pub async fn list_service(
    State(state): State<AppState>,
    Path((env, stack, service)): Path<(String, String, String)>,
) -> ApiResult<Json<Vec<ConfigVar>>> {
    state.store().get_service(&env, &stack, &service).await?;
    let vars = state.store().list_config(&env, &stack).await?;
    Ok(Json(
        vars.into_iter()
            .filter(|v| {
                v.scope
                    .service
                    .as_ref()
                    .is_some_and(|s| s.as_str() == service)
            })
            .collect(),
    ))
}

pub async fn change_stack(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((env, stack)): Path<(String, String)>,
    JsonBody(req): JsonBody<ConfigChange>,
) -> ApiResult<Json<Vec<ConfigVar>>> {
    let vars = apply(&state, &caller, &env, &stack, None, req).await?;
    Ok(Json(vars))
}

pub async fn change_service(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((env, stack, service)): Path<(String, String, String)>,
    JsonBody(req): JsonBody<ConfigChange>,
) -> ApiResult<Json<Vec<ConfigVar>>> {
    let svc = state.store().get_service(&env, &stack, &service).await?;
    let vars = apply(&state, &caller, &env, &stack, Some(svc.name.clone()), req).await?;
    Ok(Json(
        vars.into_iter()
            .filter(|v| v.scope.service.as_ref() == Some(&svc.name))
            .collect(),
    ))
}

async fn apply(
    state: &AppState,
    caller: &Caller,
    env: &str,
    stack: &str,
    service: Option<Name>,
    req: ConfigChange,
) -> ApiResult<Vec<ConfigVar>> {
    let scope = ConfigScope {
        service,
        region: req.region,
        rack: req.rack,
    };
    scope.check().map_err(ApiError::invalid)?;
    if req.set.is_empty() && req.unset.is_empty() {
        return Err(ApiError::invalid(
            "nothing to change: give variables to set or unset",
        ));
    }
    if let Some(k) = req.unset.iter().find(|k| req.set.contains_key(*k)) {
        return Err(ApiError::invalid(format!(
            "{k} is both set and unset in one change"
        )));
    }
    for (k, v) in &req.set {
        if RESERVED.contains(&k.as_str()) {
            return Err(ApiError::invalid(format!(
                "{k} is set by the platform from the service's port; change it with `mesh svc update NAME --port N`"
            )));
        }
        check_value(k, v).map_err(ApiError::invalid)?;
    }
    if let Some(rack) = &scope.rack {
        state.store().get_rack(rack.as_str()).await?;
    }
    if let Some(region) = &scope.region {
        let racks = state.store().list_racks().await?;
        if !racks.iter().any(|r| &r.region == region) {
            return Err(ApiError::invalid(format!(
                "no rack is in region {region:?}; list regions with `mesh rack list`"
            )));
        }
    }
    match state.store().list_config(env, stack).await {
        Ok(current) => {
            let in_scope = current.iter().filter(|v| v.scope == scope).count();
            let added = req
                .set
                .keys()
                .filter(|k| !current.iter().any(|v| v.scope == scope && &&v.key == k))
                .count();
            if in_scope + added > MAX_VARS_PER_SCOPE {
                return Err(ApiError::invalid(format!(
                    "a scope holds at most {MAX_VARS_PER_SCOPE} variables"
                )));
            }
        }
        // A value that does not open (sealed for another owner) must still be replaceable or
        // removable; the store checks the count itself, in the change's transaction.
        Err(StoreError::FailedPrecondition(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let vars = state
        .store()
        .change_config(env, stack, &scope, &req.set, &req.unset, state.now())
        .await?;
    // Names only: values are secrets and stay out of the audit log.
    let keys: Vec<_> = req.set.keys().map(|k| k.to_string()).collect();
    let unset: Vec<_> = req.unset.iter().map(|k| k.to_string()).collect();
    let detail = format!(
        "{}: set [{}] unset [{}]",
        scope.describe(),
        keys.join(","),
        unset.join(",")
    );
    audit(
        state,
        caller,
        "config.change",
        &format!("{env}/{stack}"),
        &detail,
    )
    .await;
    // The change is stored and audited: failing the request now would say it was not. So a
    // redeployment that cannot start is logged and counted instead, and the stack's next
    // deployment applies the config.
    if let Err(e) = crate::deploy::config_changed(state, &caller.name, env, stack, &detail).await {
        tracing::warn!(%env, %stack, error = %e, "config changed, but no deployment with it could start; deploy the stack again to apply it");
        state.metrics().config_redeploy_errors.inc();
    }
    Ok(vars)
}

#[derive(Debug, Deserialize)]
pub struct ResolvedQuery {
    #[serde(default)]
    rack: Option<String>,
}

pub async fn resolved(
    State(state): State<AppState>,
    Path((env, stack, service)): Path<(String, String, String)>,
    QueryArgs(q): QueryArgs<ResolvedQuery>,
) -> ApiResult<Json<ResolvedConfig>> {
    let environment = state.store().get_environment(&env).await?;
    let svc = state.store().get_service(&env, &stack, &service).await?;
    let rack_name = match q.rack {
        Some(r) => r,
        None => environment
            .racks
            .first()
            .map(|r| r.to_string())
            .unwrap_or_default(),
    };
    if !environment.racks.iter().any(|r| r.as_str() == rack_name) {
        return Err(ApiError::invalid(format!(
            "environment {env:?} is not placed on rack {rack_name:?}"
        )));
    }
    let rack = state.store().get_rack(&rack_name).await?;
    let all = state.store().list_config(&env, &stack).await?;
    let mut vars = resolve(&all, &service, rack.name.as_str(), rack.region.as_str());
    vars.insert(
        "PORT".to_string(),
        ResolvedVar {
            value: svc.port.to_string(),
            from: "platform".to_string(),
        },
    );
    Ok(Json(ResolvedConfig {
        service: svc.name,
        rack: rack.name,
        region: rack.region,
        vars,
    }))
}
