//! `mesh rack upgrade` and `mesh rack resize`: replacing a rack's server with a new one made by
//! its provider, without downtime. The request starts it; the replace task (`replace.rs`)
//! moves it along; `GET /v1/racks/{rack}/replacement` shows where it stands.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use mesh_types::api::{
    Rack, RackState, ReplaceOptions, Replacement, ReplacementPhase, ResizeRack, Role, ServerState,
    UpgradeRack,
};

use super::{JsonBody, audit};
use crate::app::AppState;
use crate::auth::Caller;
use crate::domain::racks::{check_size, server_token_name};
use crate::domain::replacement::{self, durations, next_server};
use crate::domain::servers::{age, last_seen};
use crate::error::{ApiError, ApiResult};
use crate::{provision, replace, tokens};

/// The mesh version this control plane installs on the servers it makes: its own.
const OURS: &str = env!("CARGO_PKG_VERSION");

/// `POST /v1/racks/{rack}/upgrade`: a new server running this control plane's mesh.
pub async fn upgrade_rack(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<UpgradeRack>,
) -> ApiResult<(StatusCode, Json<Replacement>)> {
    let rack = state.store().get_rack(&name).await?;
    let version = replacement::version(req.version.as_deref(), OURS)?;
    let size = rack.size.clone();
    let r = start(
        &state,
        &rack,
        size,
        version,
        &req.replace,
        RackState::Upgrading,
    )
    .await?;
    let detail = format!(
        "{} replaces {} (mesh {})",
        r.new_server, r.old_server, r.version
    );
    audit(&state, &caller, "rack.upgrade", &name, &detail).await;
    Ok((StatusCode::ACCEPTED, Json(r)))
}

/// `POST /v1/racks/{rack}/resize`: a new server of another size.
pub async fn resize_rack(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<ResizeRack>,
) -> ApiResult<(StatusCode, Json<Replacement>)> {
    let rack = state.store().get_rack(&name).await?;
    check_size(&req.size)?;
    if req.size == rack.size {
        return Err(ApiError::precondition(format!(
            "rack {name} is of size {} already; `mesh rack upgrade {name}` replaces its server with a new one of the same size",
            rack.size
        )));
    }
    let r = start(
        &state,
        &rack,
        req.size.clone(),
        OURS.to_string(),
        &req.replace,
        RackState::Resizing,
    )
    .await?;
    let detail = format!(
        "{} (size {}) replaces {}",
        r.new_server, r.size, r.old_server
    );
    audit(&state, &caller, "rack.resize", &name, &detail).await;
    Ok((StatusCode::ACCEPTED, Json(r)))
}

/// `GET /v1/racks/{rack}/replacement`: the replacement under way.
pub async fn get_replacement(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Replacement>> {
    state
        .store()
        .get_replacement(&name)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("server replacement of rack {name:?}")))
}

/// Checks that `rack`'s server can be replaced, records the replacement and starts making the
/// new server.
async fn start(
    state: &AppState,
    rack: &Rack,
    size: String,
    version: String,
    opts: &ReplaceOptions,
    rack_state: RackState,
) -> ApiResult<Replacement> {
    let store = state.store();
    let name = rack.name.as_str();
    if let Some(r) = store.get_replacement(name).await? {
        return Err(ApiError::precondition(format!(
            "rack {name} is replacing server {} with {} already ({}): follow it with `mesh rack show {name}`",
            r.old_server,
            r.new_server,
            r.phase.as_str()
        )));
    }
    if rack.runtime == mesh_types::api::RackRuntime::Kubernetes {
        return Err(ApiError::precondition(format!(
            "rack {name} runs on Kubernetes: replacing a cluster's servers one by one (drain a node, join a new one) is not built yet; move its environments to a new rack instead (`mesh env update ENV --rack ...`)"
        )));
    }
    let (drain_grace_ms, timeout_ms) = durations(opts.drain_grace_s, opts.timeout_s)?;
    let (p, driver) = provision::rack_driver(state, rack.provider.as_str())
        .await?
        .ok_or_else(|| {
            ApiError::precondition(format!(
                "the servers of rack {name} are not made by the platform (provider {} makes none: an ssh provider needs a pool, `--server`): replace its server by hand, starting a new agent with the rack's join token once the old one is stopped",
                rack.provider
            ))
        })?;
    let live = state.liveness();
    let servers = store.list_servers(name).await?;
    let old = match servers.as_slice() {
        [] => {
            return Err(ApiError::precondition(format!(
                "rack {name} has no server yet: there is nothing to replace"
            )));
        }
        [one] if live.state(one) == ServerState::Lost => {
            return Err(ApiError::precondition(format!(
                "server {} of rack {name} is lost (last seen {} ago): a replacement moves traffic from a serving server; start its agent again first",
                one.name,
                age(live.now - last_seen(one))
            )));
        }
        [one] => one.name.clone(),
        more => {
            return Err(ApiError::precondition(format!(
                "rack {name} has {} servers ({}): a native rack has one, so one of them is left over; see `mesh rack servers {name}`",
                more.len(),
                more.iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    };
    let made = driver.list().await.map_err(provision::api_error)?;
    if !made
        .iter()
        .any(|m| m.name == old.as_str() && m.rack == name)
    {
        return Err(ApiError::precondition(format!(
            "server {old} of rack {name} was not made by provider {} (its agent was started by hand): the platform can only replace servers it made",
            rack.provider
        )));
    }
    let mut taken: Vec<&str> = made.iter().map(|m| m.name.as_str()).collect();
    taken.extend(servers.iter().map(|s| s.name.as_str()));
    let new = mesh_types::Name::parse(&next_server(name, &taken))?;
    let token = tokens::generate();
    let token_name = server_token_name(name, new.as_str());
    // Left by an attempt that crashed before it ended (the name is reused once undone).
    match store.delete_token(&token_name).await {
        Ok(()) | Err(mesh_store::StoreError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    state.tokens().evict_name(&token_name);
    store
        .create_token(
            &token_name,
            Role::Agent,
            Some(&rack.name),
            &tokens::hash(&token),
        )
        .await?;
    let now = state.now();
    let r = Replacement {
        rack: rack.name.clone(),
        old_server: old,
        new_server: new,
        size,
        version,
        phase: ReplacementPhase::Making,
        since: now,
        phase_since: now,
        drain_grace_ms,
        timeout_ms,
        message: Some(format!("provider {} makes the new server", rack.provider)),
    };
    if let Err(e) = store.start_replacement(&r, rack_state).await {
        let _ = store.delete_token(&token_name).await;
        return Err(e.into());
    }
    // In a task of its own: the request returns at once, and a client hanging up does not
    // stop it. A failure undoes the replacement (the replace task deletes what was made, once
    // this task has ended).
    state.set_making(name, r.since, true);
    tokio::spawn({
        let (state, rack, r) = (state.clone(), rack.clone(), r.clone());
        async move {
            let t = std::time::Instant::now();
            let made = provision::make_server(
                &p,
                driver.as_ref(),
                &rack,
                r.new_server.as_str(),
                &r.size,
                &token,
                None,
            )
            .await;
            let store = state.store();
            let (to, message) = match &made {
                Ok(m) => (
                    ReplacementPhase::Starting,
                    format!(
                        "{} made on {} in {:.1}s: waiting for its agent to join",
                        m.name,
                        m.address,
                        t.elapsed().as_secs_f64()
                    ),
                ),
                Err(e) => (
                    ReplacementPhase::Undoing,
                    format!("making server {} failed: {e}", r.new_server),
                ),
            };
            let moved = store
                .advance_replacement(
                    rack.name.as_str(),
                    r.since,
                    ReplacementPhase::Making,
                    to,
                    state.now(),
                    Some(&message),
                    None,
                )
                .await;
            match moved {
                Ok(true) => {
                    let action = if made.is_ok() {
                        "rack.replace.made"
                    } else {
                        "rack.replace.undoing"
                    };
                    replace::event(&state, action, rack.name.as_str(), &message).await;
                    state.notify_change();
                }
                // Moved on meanwhile: its agent joined first (fine: it was made), or it was
                // undone (it took longer than the timeout) or the rack deleted: what was made
                // goes.
                Ok(false) | Err(_) => {
                    let current = store.get_replacement(rack.name.as_str()).await;
                    let goes_on = matches!(
                        &current,
                        Ok(Some(c)) if c.since == r.since && c.phase != ReplacementPhase::Undoing
                    );
                    if made.is_ok() && goes_on {
                        replace::event(&state, "rack.replace.made", rack.name.as_str(), &message)
                            .await;
                    } else if made.is_ok()
                        && let Err(e) = driver.delete(r.new_server.as_str()).await
                    {
                        tracing::warn!(rack = %rack.name, server = %r.new_server, error = %e, "cannot delete a server made after its replacement was undone");
                    }
                }
            }
            state.set_making(rack.name.as_str(), r.since, false);
        }
    });
    Ok(r)
}
