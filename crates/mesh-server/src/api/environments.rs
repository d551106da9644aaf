//! Environments: network-isolated groups of stacks placed on an ordered list of racks.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Extension, Json};
use mesh_store::AliasSpec;
use mesh_types::api::{
    CreateEnvironment, Environment, EnvironmentDetails, Instance, Rack, UpdateEnvironment,
};
use mesh_types::schedule::parse_duration;
use mesh_types::{Domain, Name};
use serde::Deserialize;

use super::{Created, JsonBody, QueryArgs, audit, created};
use crate::app::AppState;
use crate::auth::Caller;
use crate::domain::{migration, servers};
use crate::error::{ApiError, ApiResult};
use crate::logs::LogFilter;
use crate::logs::follow::{self, Reader};
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
        crate::kube::check_namespace(state, &rack, env.as_str()).await?;
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
    let placement = migration::observe(store, &environment, state.liveness())
        .await?
        .placement;
    Ok(Json(EnvironmentDetails {
        environment,
        stacks,
        services,
        endpoints,
        placement,
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
    let store = state.store();
    let current = store.get_environment(&name).await?;
    // The list itself first: not empty, no rack twice, every rack known.
    placement(&state, &current.name, &req.racks).await?;
    let live = state.liveness();
    let mut listed = req.racks.clone();
    listed.extend(
        current
            .racks
            .iter()
            .filter(|r| !req.racks.contains(r))
            .cloned(),
    );
    let servers = crate::domain::placement::servers_of(store, &listed).await?;
    let has_live = |rack: &Name| {
        servers.iter().any(|(r, list)| {
            r == rack
                && list
                    .iter()
                    .any(|s| live.state(s) != mesh_types::api::ServerState::Lost)
        })
    };
    // A rack being left counts as it is: putting a healthy one back is fine.
    let observed = migration::observe(store, &current, live).await?;
    let healthy = |rack: &Name| observed.healthy.contains(rack);
    migration::check_racks(&current, &req.racks, has_live, healthy)?;
    let grace = migration::grace_ms(req.drain_grace_s)?;
    let leaving = migration::leaving_after(&current, &req.racks, grace, state.now(), has_live);
    // A rack being left keeps its alias until the environment has left it.
    let mut all = req.racks.clone();
    all.extend(leaving.iter().map(|l| l.rack.clone()));
    let aliases = placement(&state, &current.name, &all).await?;
    let env = store
        .update_environment_racks(&name, &req.racks, &leaving, &aliases, state.now())
        .await?;
    audit(
        &state,
        &caller,
        "environment.update",
        &name,
        &update_detail(&env),
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
    /// How far back: `30s`, `15m`, `1h` (at most the hour kept). Default one minute, or with
    /// `after` every line kept.
    #[serde(default)]
    since: Option<String>,
    /// Only lines stored after the line with this id: a client resuming where it stopped.
    #[serde(default)]
    after: Option<i64>,
    #[serde(default)]
    stack: Option<String>,
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    instance: Option<String>,
    #[serde(default)]
    follow: bool,
}

/// The environment's instance output as newline-delimited JSON, oldest first, each line with
/// its id; with `follow`, new lines keep coming until the client hangs up.
pub async fn logs(
    State(state): State<AppState>,
    Path(name): Path<String>,
    QueryArgs(q): QueryArgs<LogsQuery>,
) -> ApiResult<Response> {
    let env = state.store().get_environment(&name).await?;
    let seconds = match (q.since.as_deref(), q.after) {
        (None, None) => Some(60),
        (None, Some(_)) => None,
        (Some(s), _) => {
            Some(parse_duration(s).map_err(|e| ApiError::invalid(format!("since: {e}")))?)
        }
    };
    if seconds.is_some_and(|s| s * 1000 > crate::logs::MAX_AGE_MS as u64) {
        return Err(ApiError::invalid(
            "since: logs are kept for one hour; ask for 1h or less",
        ));
    }
    if q.after.is_some_and(|a| a < 0) {
        return Err(ApiError::invalid(
            "after: a line id is 0 or more; pass the id of the last line you saw",
        ));
    }
    let reader = Reader {
        env: env.name.to_string(),
        filter: LogFilter {
            stack: q.stack,
            service: q.service,
            instance: q.instance,
        },
        since: seconds.map_or(0, |s| state.now() - s as i64 * 1000),
        after: q.after.unwrap_or(0),
    };
    Ok(ndjson::response(follow::body(state, reader, q.follow)))
}

pub async fn instances(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<Instance>>> {
    let environment = state.store().get_environment(&name).await?;
    let instances = state.store().list_instances(&name).await?;
    // A rack the environment is leaving still runs its instances until it has left.
    let mut racks = environment.racks.clone();
    racks.extend(environment.leaving.iter().map(|l| l.rack.clone()));
    let map = servers::server_map(state.store(), &racks, state.liveness()).await?;
    Ok(Json(servers::instances_view(instances, &map)))
}

fn update_detail(env: &Environment) -> String {
    let leaving: Vec<Name> = env.leaving.iter().map(|l| l.rack.clone()).collect();
    if leaving.is_empty() {
        format!("racks {}", join(&env.racks))
    } else {
        format!("racks {}, leaving {}", join(&env.racks), join(&leaving))
    }
}

fn join(names: &[Name]) -> String {
    names.iter().map(Name::as_str).collect::<Vec<_>>().join(",")
}
