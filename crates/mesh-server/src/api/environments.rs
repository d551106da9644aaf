//! Environments: network-isolated groups of stacks placed on an ordered list of racks.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Extension, Json};
use futures_util::{StreamExt, stream};
use mesh_store::AliasSpec;
use mesh_types::api::{
    CreateEnvironment, Environment, EnvironmentDetails, Instance, Rack, UpdateEnvironment,
};
use mesh_types::schedule::parse_duration;
use mesh_types::{Domain, Name};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use super::{Created, JsonBody, QueryArgs, audit, created};
use crate::app::AppState;
use crate::auth::Caller;
use crate::domain::servers;
use crate::error::{ApiError, ApiResult};
use crate::logs::LogFilter;
use crate::ndjson;

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

/// Every environment for an admin; a developer or viewer sees only those its token reaches.
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Vec<Environment>>> {
    let mut envs = state.store().list_environments().await?;
    envs.retain(|e| caller.reaches(e.name.as_str()));
    Ok(Json(envs))
}

pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<EnvironmentDetails>> {
    let store = state.store();
    // One after another: each read holds a pooled connection, and under load overlapping
    // them only queues requests behind each other's connections (measured: benches/control-plane).
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
    state.logs().forget(&name);
    audit(&state, &caller, "environment.delete", &name, "").await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
pub struct LogsQuery {
    /// How far back: `30s`, `15m`, `1h` (at most the hour kept). Default one minute.
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    stack: Option<String>,
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    instance: Option<String>,
    #[serde(default)]
    follow: bool,
}

/// The environment's instance output as newline-delimited JSON, oldest first; with `follow`,
/// new lines keep coming until the client hangs up.
pub async fn logs(
    State(state): State<AppState>,
    Path(name): Path<String>,
    QueryArgs(q): QueryArgs<LogsQuery>,
) -> ApiResult<Response> {
    let env = state.store().get_environment(&name).await?;
    let seconds = match q.since.as_deref() {
        None => 60,
        Some(s) => parse_duration(s).map_err(|e| ApiError::invalid(format!("since: {e}")))?,
    };
    if seconds * 1000 > crate::logs::MAX_AGE_MS as u64 {
        return Err(ApiError::invalid(
            "since: logs are kept for one hour; ask for 1h or less",
        ));
    }
    let filter = LogFilter {
        stack: q.stack,
        service: q.service,
        instance: q.instance,
    };
    // Subscribe before reading history so no line falls between the two.
    let follower = q.follow.then(|| state.logs().follow(env.name.as_str()));
    let history = state.logs().query(
        env.name.as_str(),
        state.now() - seconds as i64 * 1000,
        &filter,
    );
    let last = history.last().map(|l| (l.instance.clone(), l.offset));
    let head = stream::iter(history.into_iter().map(|l| ndjson::line(&l)));
    let body = match follower {
        None => Body::from_stream(head),
        Some(rx) => {
            let shutdown = state.clone();
            let tail = stream::unfold((rx, filter, last), move |(mut rx, filter, last)| {
                let shutdown = shutdown.clone();
                async move {
                    loop {
                        let next = tokio::select! {
                            _ = shutdown.shutting_down() => return None,
                            l = rx.recv() => l,
                        };
                        match next {
                            Ok(l) if !filter.matches(&l) => continue,
                            // Already sent as history.
                            Ok(l)
                                if last
                                    .as_ref()
                                    .is_some_and(|(i, o)| &l.instance == i && l.offset <= *o) =>
                            {
                                continue;
                            }
                            Ok(l) => return Some((ndjson::line(&l), (rx, filter, last))),
                            Err(RecvError::Lagged(n)) => {
                                tracing::warn!(skipped = n, "a log follower fell behind");
                                continue;
                            }
                            Err(RecvError::Closed) => return None,
                        }
                    }
                }
            });
            Body::from_stream(head.chain(tail))
        }
    };
    Ok(ndjson::response(body))
}

pub async fn instances(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<Instance>>> {
    let environment = state.store().get_environment(&name).await?;
    let instances = state.store().list_instances(&name).await?;
    let map = servers::server_map(state.store(), &environment.racks, state.liveness()).await?;
    Ok(Json(servers::instances_view(instances, &map)))
}

fn join(names: &[Name]) -> String {
    names.iter().map(Name::as_str).collect::<Vec<_>>().join(",")
}
