//! Handlers of `/v1/agent/*`: registration, the desired-state watch stream, status reports and
//! log shipping. Only a rack's join token reaches them (see `auth.rs`), and it speaks for its
//! own rack only.

use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use axum::{Extension, Json};
use futures_util::stream;
use mesh_types::ErrorCode;
use mesh_types::Name;
use mesh_types::agent::{LogAck, LogBatch, RegisterServer, StatusReport};
use mesh_types::api::{Rack, Role, Server, ServerState};
use mesh_types::desired::{DesiredState, WatchEvent};

use super::desired;
use super::scope::{RackScope, Refused};
use crate::app::AppState;
use crate::auth::Caller;
use crate::domain::servers;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::ndjson;

/// How often a watch stream recomputes even without a local change: another control plane
/// sharing the database may have changed something.
const POLL: Duration = Duration::from_secs(5);
/// A line at least this often, so either side notices a dead connection.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub(super) async fn caller_rack(state: &AppState, caller: &Caller) -> ApiResult<Rack> {
    match (&caller.role, &caller.rack) {
        (Role::Agent, Some(rack)) => Ok(state.store().get_rack(rack.as_str()).await?),
        _ => Err(ApiError::new(
            ErrorCode::PermissionDenied,
            "only a rack's join token may use the agent gateway",
        )),
    }
}

/// `GET /v1/agent/rack`: the caller's rack as its agent needs it: the runtime, and a Kubernetes
/// rack's kubeconfig (opened from its seal; only the rack's own join token gets it).
pub async fn rack(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<mesh_types::agent::AgentRack>> {
    let rack = caller_rack(&state, &caller).await?;
    let kubeconfig = state.store().rack_kubeconfig(rack.name.as_str()).await?;
    Ok(Json(mesh_types::agent::AgentRack {
        name: rack.name,
        runtime: rack.runtime,
        kubeconfig,
    }))
}

/// Registers the agent's server, or records its heartbeat when it registers again. A rack has
/// one server (see `domain::servers`): another agent is refused unless the server is lost.
pub async fn register(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(req): JsonBody<RegisterServer>,
) -> ApiResult<Json<Server>> {
    let rack = caller_rack(&state, &caller).await?;
    let server =
        servers::register(state.store(), &rack, req, &caller.name, state.liveness()).await?;
    // A rack with a server again may take back work that runs once (cron).
    state.notify_change();
    Ok(Json(server))
}

fn refused(r: Refused) -> ApiError {
    match r {
        Refused::Invalid(m) => ApiError::invalid(m),
        Refused::Forbidden(m) => ApiError::new(ErrorCode::PermissionDenied, m),
    }
}

/// What the store says about `rack`, for [`scope`]'s decisions: its environments and servers,
/// and if asked, the instances known in those environments and the layers it may fetch.
pub(super) async fn rack_scope(
    state: &AppState,
    rack: &Rack,
    instances: bool,
    blobs: bool,
) -> ApiResult<RackScope> {
    let store = state.store();
    let mut scope = RackScope {
        rack: rack.name.to_string(),
        ..Default::default()
    };
    for s in store.list_servers(rack.name.as_str()).await? {
        scope.servers.insert(s.name.to_string());
    }
    if blobs {
        // Without a previous document, a stack whose config does not open is left out; its
        // images are still allowed below through its deployments.
        let doc = desired::for_rack(store, rack, None, state.liveness()).await?;
        scope.allow_desired(&doc);
    }
    for env in store.list_environments().await? {
        // A rack the environment is leaving still runs (and reports) its instances.
        let leaving = env.leaving.iter().any(|l| l.rack == rack.name);
        if !env.racks.contains(&rack.name) && !leaving {
            continue;
        }
        let name = env.name.as_str();
        scope.environments.insert(name.to_string());
        if instances {
            scope.know_instances(&store.list_instances(name).await?);
        }
        if blobs {
            // A release command or a rollout runs a deployment before it is current.
            for stack in store.list_stacks(name).await? {
                for d in store.list_deployments(name, stack.name.as_str()).await? {
                    if let Some(image) = &d.image {
                        scope.allow_image(image);
                    }
                }
            }
        }
    }
    Ok(scope)
}

/// The reporting server, registered in the caller's rack.
async fn own_server(state: &AppState, rack: &Rack, server: &Name) -> ApiResult<Server> {
    let servers = state.store().list_servers(rack.name.as_str()).await?;
    servers
        .into_iter()
        .find(|s| &s.name == server)
        .ok_or_else(|| {
            ApiError::precondition(format!(
                "server {server} is not registered in rack {}: register it first",
                rack.name
            ))
        })
}

pub async fn status(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(mut report): JsonBody<StatusReport>,
) -> ApiResult<Json<serde_json::Value>> {
    let rack = caller_rack(&state, &caller).await?;
    let server = own_server(&state, &rack, &report.server).await?;
    rack_scope(&state, &rack, false, false)
        .await?
        .check_status(&report.instances)
        .map_err(refused)?;
    for i in &mut report.instances {
        i.server = Some(report.server.clone());
    }
    state
        .store()
        .replace_server_instances(report.server.as_str(), &report.instances)
        .await?;
    // A status report is a heartbeat: a lost server is ready again (the old server of a
    // replacement stays draining).
    let replacement = state.store().get_replacement(rack.name.as_str()).await?;
    state
        .store()
        .heartbeat_server(
            rack.name.as_str(),
            report.server.as_str(),
            state.now(),
            crate::domain::replacement::heartbeat_state(
                replacement.as_ref(),
                &server.name,
                server.state,
            ),
        )
        .await?;
    if state.liveness().state(&server) == ServerState::Lost {
        // Back from lost: cron may move back to this rack.
        state.notify_change();
    }
    Ok(Json(
        serde_json::json!({"instances": report.instances.len()}),
    ))
}

pub async fn logs(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(batch): JsonBody<LogBatch>,
) -> ApiResult<Json<LogAck>> {
    let rack = caller_rack(&state, &caller).await?;
    rack_scope(&state, &rack, true, false)
        .await?
        .check_logs(&batch.lines)
        .map_err(refused)?;
    // The rack is the token's, whatever the agent wrote.
    let mut lines = batch.lines;
    for l in &mut lines {
        l.rack = Some(rack.name.clone());
    }
    let ack = state.logs().ingest(lines, state.now()).await?;
    state.metrics().log_lines.inc_by(ack.accepted);
    state.metrics().log_duplicates.inc_by(ack.duplicates);
    Ok(Json(ack))
}

struct Watch {
    state: AppState,
    rack: Rack,
    /// The watching server, when it said which (`?server=`).
    server: Option<Name>,
    changes: tokio::sync::watch::Receiver<u64>,
    tasks: tokio::sync::broadcast::Receiver<mesh_types::agent::Task>,
    last: Option<String>,
    /// The document sent last, for stacks whose config cannot be read now.
    previous: Option<DesiredState>,
}

impl Watch {
    /// The next line to send: a snapshot when the rack's state changed, else a keep-alive.
    async fn next(&mut self) -> Option<WatchEvent> {
        let mut quiet = Duration::ZERO;
        loop {
            if self.last.is_some() {
                let wait = POLL.min(KEEP_ALIVE - quiet);
                let started = tokio::time::Instant::now();
                tokio::select! {
                    _ = self.state.shutting_down() => return None,
                    changed = self.changes.changed() => if changed.is_err() { return None },
                    task = self.tasks.recv() => match task {
                        Ok(task) => return Some(WatchEvent::Task { task }),
                        Err(e) => tracing::warn!(rack = %self.rack.name, error = %e, "tasks missed by a watch stream"),
                    },
                    _ = tokio::time::sleep(wait) => {}
                }
                quiet += started.elapsed();
            }
            match desired::for_server(
                self.state.store(),
                &self.rack,
                self.server.as_ref(),
                self.previous.as_ref(),
                self.state.liveness(),
            )
            .await
            {
                Ok(doc) => {
                    let digest = desired::digest(&doc);
                    if self.last.as_deref() != Some(digest.as_str()) {
                        self.last = Some(digest.clone());
                        self.previous = Some(doc.clone());
                        return Some(WatchEvent::Snapshot { digest, state: doc });
                    }
                }
                Err(e) => {
                    tracing::warn!(rack = %self.rack.name, error = %e, "cannot compute desired state")
                }
            }
            if quiet >= KEEP_ALIVE {
                return Some(WatchEvent::KeepAlive);
            }
        }
    }
}

/// A stream of newline-delimited JSON: the rack's full desired state at once, then again every
/// time it changes, with keep-alive lines between.
/// `?server=NAME`: the watching server of the rack (registered first).
#[derive(Debug, serde::Deserialize)]
pub struct WatchQuery {
    #[serde(default)]
    server: Option<String>,
}

pub async fn watch(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    crate::extract::QueryArgs(query): crate::extract::QueryArgs<WatchQuery>,
) -> ApiResult<Response> {
    let rack = caller_rack(&state, &caller).await?;
    let server = match query.server {
        Some(s) => {
            let name =
                Name::parse_as("server name", &s).map_err(|e| ApiError::invalid(e.to_string()))?;
            Some(own_server(&state, &rack, &name).await?.name)
        }
        None => None,
    };
    let changes = state.subscribe_changes();
    let tasks = state.tasks().subscribe(rack.name.as_str());
    let w = Watch {
        state,
        rack,
        server,
        changes,
        tasks,
        last: None,
        previous: None,
    };
    let body = stream::unfold(w, |mut w| async move {
        w.next().await.map(|ev| (ndjson::line(&ev), w))
    });
    Ok(ndjson::response(Body::from_stream(body)))
}

pub async fn task_result(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    axum::extract::Path(task): axum::extract::Path<String>,
    JsonBody(result): JsonBody<mesh_types::agent::TaskResult>,
) -> ApiResult<axum::http::StatusCode> {
    caller_rack(&state, &caller).await?;
    if state.tasks().complete(&task, result) {
        Ok(axum::http::StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "task {task:?} (it ended, or nobody waits for it any more)"
        )))
    }
}

/// `GET /v1/agent/blobs/{digest}`: an image layer, streamed; only a layer of an image the
/// caller's rack runs or may run (see [`super::scope`]). Source archives are never served here.
pub async fn blob(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    axum::extract::Path(digest): axum::extract::Path<String>,
) -> ApiResult<Response> {
    let rack = caller_rack(&state, &caller).await?;
    if mesh_build::blobs::digest_hex(&digest).is_none() {
        return Err(ApiError::invalid(format!(
            "{digest:?} is not a sha256:<hex> digest"
        )));
    }
    rack_scope(&state, &rack, false, true)
        .await?
        .check_blob(&digest)
        .map_err(refused)?;
    let opts = state
        .deploys()
        .options()
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("blob {digest}")))?;
    let path = opts
        .blobs
        .path(&digest)
        .ok_or_else(|| ApiError::invalid(format!("{digest:?} is not a sha256:<hex> digest")))?;
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|_| ApiError::not_found(format!("blob {digest}")))?;
    let len = file.metadata().await.map(|m| m.len()).ok();
    Ok(super::file_stream::octet_stream(file, len))
}
