//! The replace task: moves each server replacement along (`domain::replacement::step`): once
//! the new server runs the rack's instances healthy, traffic moves to it and the old server's
//! router forwards to it; after the drain grace the old server is deleted; a new server that is
//! not healthy in time is deleted instead. Each change wakes the agents' watch streams. Several
//! control planes may run it on one database: each step is a conditional write that one of
//! them wins, and deleting a server that is gone already is not an error.

use std::time::Duration;

use mesh_store::StoreError;
use mesh_types::api::{Replacement, ReplacementPhase, ServerState};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::AppState;
use crate::domain::migration::{missing_healthy, runnable_services};
use crate::domain::racks::server_token_name;
use crate::domain::replacement::{NewServer, Step, step};
use crate::domain::servers::Liveness;
use crate::error::ApiError;
use crate::provision;

/// Often enough that traffic follows the new server's health within about a second.
const EVERY: Duration = Duration::from_secs(1);

/// Who the task's events are from.
pub(crate) const ACTOR: &str = "platform";

pub(crate) fn spawn(state: AppState, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(EVERY) => {}
            }
            for r in match state.store().list_replacements().await {
                Ok(list) => list,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the server replacements; trying again");
                    continue;
                }
            } {
                match advance(&state, &r).await {
                    Ok(true) => state.notify_change(),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(
                        rack = %r.rack,
                        phase = r.phase.as_str(),
                        error = %e.message,
                        "cannot move the server replacement along; trying again"
                    ),
                }
            }
        }
    })
}

/// Records an event of the replacement of `rack`.
pub(crate) async fn event(state: &AppState, action: &str, rack: &str, detail: &str) {
    if let Err(e) = state
        .store()
        .record_event(ACTOR, action, rack, detail, state.now())
        .await
    {
        tracing::error!(error = %e, action, rack, "could not write the event log");
    }
}

/// Where the new server of `r` stands: registered, live, and running the instances of every
/// environment on the rack.
async fn new_server(
    state: &AppState,
    r: &Replacement,
    live: Liveness,
) -> Result<NewServer, StoreError> {
    let store = state.store();
    let servers = store.list_servers(r.rack.as_str()).await?;
    let Some(server) = servers.iter().find(|s| s.name == r.new_server) else {
        return Ok(NewServer::Absent);
    };
    if live.state(server) == ServerState::Lost {
        return Ok(NewServer::Lost);
    }
    let mut missing = Vec::new();
    for env in store.list_environments().await? {
        if !env.racks.contains(&r.rack) && !env.leaving.iter().any(|l| l.rack == r.rack) {
            continue;
        }
        let services = runnable_services(store, env.name.as_str()).await?;
        let instances = store.list_instances(env.name.as_str()).await?;
        let on_new = instances
            .iter()
            .filter(|i| i.server.as_ref() == Some(&r.new_server));
        missing.extend(
            missing_healthy(&services, on_new)
                .into_iter()
                .map(|m| format!("{}/{m}", env.name)),
        );
    }
    Ok(NewServer::Running { missing })
}

/// One step of `r`: true if anything changed.
async fn advance(state: &AppState, r: &Replacement) -> Result<bool, ApiError> {
    let store = state.store();
    let live = state.liveness();
    let rack = r.rack.as_str();
    let new = new_server(state, r, live).await?;
    match step(r, &new, live.now) {
        Step::Wait(None) => Ok(false),
        Step::Wait(Some(message)) => {
            if r.message.as_deref() == Some(message.as_str()) {
                return Ok(false);
            }
            // The same phase, a new message: when it began stays.
            Ok(store
                .advance_replacement(
                    rack,
                    r.since,
                    r.phase,
                    r.phase,
                    r.phase_since,
                    Some(&message),
                    None,
                )
                .await?)
        }
        Step::Switch => {
            let servers = store.list_servers(rack).await?;
            let Some(new) = servers.iter().find(|s| s.name == r.new_server) else {
                return Ok(false);
            };
            let message = format!(
                "{} serves the rack at {}; {} forwards to it for {}s",
                r.new_server,
                new.address,
                r.old_server,
                r.drain_grace_ms / 1000
            );
            let moved = store
                .advance_replacement(
                    rack,
                    r.since,
                    ReplacementPhase::Starting,
                    ReplacementPhase::Forwarding,
                    live.now,
                    Some(&message),
                    Some(&new.address),
                )
                .await?;
            if moved {
                tracing::info!(rack, old = %r.old_server, new = %r.new_server, address = %new.address, "the new server is healthy: the rack's traffic moves to it and the old server forwards to it");
                event(state, "rack.replace.forwarding", rack, &message).await;
            }
            Ok(moved)
        }
        Step::Remove => {
            let message = format!("drain grace over: deleting {}", r.old_server);
            let moved = store
                .advance_replacement(
                    rack,
                    r.since,
                    ReplacementPhase::Forwarding,
                    ReplacementPhase::Removing,
                    live.now,
                    Some(&message),
                    None,
                )
                .await?;
            if moved {
                event(state, "rack.replace.removing", rack, &message).await;
                let mut r = r.clone();
                r.phase = ReplacementPhase::Removing;
                delete(state, &r).await?;
            }
            Ok(moved)
        }
        Step::Undo(why) => {
            let moved = store
                .advance_replacement(
                    rack,
                    r.since,
                    r.phase,
                    ReplacementPhase::Undoing,
                    live.now,
                    Some(&why),
                    None,
                )
                .await?;
            if moved {
                tracing::warn!(rack, new = %r.new_server, why, "the server replacement is undone: the new server goes, the old one serves on");
                event(state, "rack.replace.undoing", rack, &why).await;
                let mut r = r.clone();
                r.phase = ReplacementPhase::Undoing;
                r.message = Some(why);
                delete(state, &r).await?;
            }
            Ok(moved)
        }
        Step::Delete => delete(state, r).await,
    }
}

/// Deletes the server that goes (the old one when removing, the new one when undoing) with the
/// provider, then ends the replacement. A failed delete is tried again on the next pass.
async fn delete(state: &AppState, r: &Replacement) -> Result<bool, ApiError> {
    let store = state.store();
    let rack = r.rack.as_str();
    let (going, action) = match r.phase {
        ReplacementPhase::Removing => (&r.old_server, "rack.replace.done"),
        // The new server is still being made here: its task deletes it when done.
        ReplacementPhase::Undoing if state.is_making(rack, r.since) => return Ok(false),
        ReplacementPhase::Undoing => (&r.new_server, "rack.replace.undone"),
        _ => return Ok(false),
    };
    let provider = store.get_rack(rack).await?.provider;
    if let Some((_, driver)) = provision::rack_driver(state, provider.as_str()).await? {
        match driver.delete(going.as_str()).await {
            Ok(()) | Err(mesh_provider::ProviderError::NotFound(_)) => {}
            Err(e) => return Err(provision::api_error(e)),
        }
    }
    if !store.end_replacement(rack, r.since, r.phase).await? {
        return Ok(false);
    }
    let token = server_token_name(rack, going.as_str());
    match store.delete_token(&token).await {
        Ok(()) | Err(StoreError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    state.tokens().evict_name(&token);
    let detail = match r.phase {
        ReplacementPhase::Removing => format!(
            "{} replaced {} (size {}, mesh {})",
            r.new_server, r.old_server, r.size, r.version
        ),
        _ => format!(
            "{} deleted; {} serves on: {}",
            r.new_server,
            r.old_server,
            r.message.as_deref().unwrap_or("undone")
        ),
    };
    tracing::info!(rack, server = %going, "{detail}");
    event(state, action, rack, &detail).await;
    Ok(true)
}
