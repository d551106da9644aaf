//! Replacing a rack's server (`mesh rack upgrade`, `mesh rack resize`): what happens next and
//! what each of the two servers is told meanwhile. Pure: the API and the replace task
//! (`replace.rs`) feed it what the store says.
//!
//! One server at a time: the provider makes the new server (`making`); its agent joins the rack
//! and runs the rack's instances while the old server serves (`starting`); once every service
//! runs its instance count healthy on the new server, the rack's address becomes the new
//! server's and the old server's router forwards every host to the new one for the drain grace
//! (`forwarding`: DNS caches still send visitors to the old address); then the old server is
//! deleted (`removing`). If the new server is not healthy within the timeout, it is deleted and
//! the old one serves on (`undoing`).

use mesh_types::api::{Replacement, ReplacementPhase};
use mesh_types::{Name, UnixMs};

/// Default drain grace: DNS caches of the old address (5 minutes, as for a rack migration).
pub const DEFAULT_DRAIN_GRACE_S: u64 = mesh_types::api::DEFAULT_DRAIN_GRACE_S;
/// Default time the new server has to run the rack's instances healthy.
pub const DEFAULT_TIMEOUT_S: u64 = 15 * 60;
/// Longest timeout: two hours.
pub const MAX_TIMEOUT_S: u64 = 2 * 3600;

/// Why a replacement cannot start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplaceError {
    #[error("--drain-grace: at most {max}s (one day); DNS caches rarely keep a record longer")]
    GraceTooLong { max: u64 },
    #[error("--timeout: from 1s to {max}s (two hours)")]
    BadTimeout { max: u64 },
    #[error(
        "this control plane installs mesh {ours} only (its own binary on made servers): upgrade \
         the control plane to {asked} first, then run `mesh rack upgrade` again"
    )]
    OtherVersion { ours: String, asked: String },
}

/// The drain grace and the timeout asked for, in milliseconds.
pub fn durations(
    grace_s: Option<u64>,
    timeout_s: Option<u64>,
) -> Result<(UnixMs, UnixMs), ReplaceError> {
    let max = mesh_types::api::MAX_DRAIN_GRACE_S;
    let grace = grace_s.unwrap_or(DEFAULT_DRAIN_GRACE_S);
    if grace > max {
        return Err(ReplaceError::GraceTooLong { max });
    }
    let timeout = timeout_s.unwrap_or(DEFAULT_TIMEOUT_S);
    if timeout == 0 || timeout > MAX_TIMEOUT_S {
        return Err(ReplaceError::BadTimeout { max: MAX_TIMEOUT_S });
    }
    Ok((grace as UnixMs * 1000, timeout as UnixMs * 1000))
}

/// The version the new server runs: the control plane's own (`ours`); asking for another is
/// refused, as it has no other binary to install.
pub fn version(asked: Option<&str>, ours: &str) -> Result<String, ReplaceError> {
    match asked.map(|v| v.trim().trim_start_matches('v')) {
        None => Ok(ours.to_string()),
        Some(v) if v == ours => Ok(ours.to_string()),
        Some(v) => Err(ReplaceError::OtherVersion {
            ours: ours.to_string(),
            asked: v.to_string(),
        }),
    }
}

/// The name of the next server of `rack`, after every number `taken` (names of the servers
/// the rack has and the provider made): `<rack>-<highest + 1>`.
pub fn next_server(rack: &str, taken: &[&str]) -> String {
    let highest = taken
        .iter()
        .filter_map(|n| n.strip_prefix(rack)?.strip_prefix('-')?.parse::<u32>().ok())
        .max()
        .unwrap_or(0);
    crate::provision::server_name(rack, highest + 1)
}

/// Where the new server stands, as the store says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewServer {
    /// Its agent has not registered yet.
    Absent,
    /// Registered, but its heartbeats stopped.
    Lost,
    /// Registered; these services lack healthy instances on it (empty: healthy).
    Running { missing: Vec<String> },
}

/// What happens next to a replacement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing yet; the message says what it waits for (None: unchanged).
    Wait(Option<String>),
    /// The new server is healthy: move the rack's traffic to it.
    Switch,
    /// The drain grace is over: delete the old server.
    Remove,
    /// The new server did not become healthy in time: delete it, saying why.
    Undo(String),
    /// Delete the server that goes (the old one when removing, the new one when undoing),
    /// then end the replacement.
    Delete,
}

/// The next step of `r` at `now`, with the new server as `new`.
pub fn step(r: &Replacement, new: &NewServer, now: UnixMs) -> Step {
    let late = now - r.since > r.timeout_ms;
    let timeout = || format!("{}s", r.timeout_ms / 1000);
    match r.phase {
        ReplacementPhase::Making if late => Step::Undo(format!(
            "server {} was not made within {}",
            r.new_server,
            timeout()
        )),
        ReplacementPhase::Making => Step::Wait(None),
        ReplacementPhase::Starting => {
            let waiting = match new {
                NewServer::Running { missing } if missing.is_empty() => return Step::Switch,
                NewServer::Running { missing } => {
                    format!(
                        "{} runs {} of the rack's instances",
                        r.new_server,
                        missing.join(", ")
                    )
                }
                NewServer::Absent => format!("the agent of {} has not joined yet", r.new_server),
                NewServer::Lost => format!("{} is lost (no heartbeat)", r.new_server),
            };
            if late {
                Step::Undo(format!(
                    "{} did not become healthy within {}: {waiting}",
                    r.new_server,
                    timeout()
                ))
            } else {
                Step::Wait(Some(waiting))
            }
        }
        ReplacementPhase::Forwarding if now - r.phase_since >= r.drain_grace_ms => Step::Remove,
        ReplacementPhase::Forwarding => Step::Wait(None),
        ReplacementPhase::Removing | ReplacementPhase::Undoing => Step::Delete,
    }
}

/// What a server of a rack is told while the rack replaces one of its servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// No replacement concerns it: the rack's only server.
    Sole,
    /// The server being replaced; once `forwarding`, its router forwards every host to the new
    /// server's.
    Outgoing { forwarding: bool },
    /// The new server; once `forwarded`, its router trusts the old one's, which forwards to it.
    Incoming { forwarded: bool },
}

/// The role of `server` in its rack's replacement `r`.
pub fn role(r: Option<&Replacement>, server: &Name) -> Role {
    let Some(r) = r else { return Role::Sole };
    let switched = matches!(
        r.phase,
        ReplacementPhase::Forwarding | ReplacementPhase::Removing
    );
    if &r.old_server == server {
        Role::Outgoing {
            forwarding: switched,
        }
    } else if &r.new_server == server {
        Role::Incoming {
            forwarded: switched,
        }
    } else {
        Role::Sole
    }
}

/// The instance salt of `server`: its own name while it is the new server of a replacement
/// (so its instance ids differ from the old server's), else the rack's (`rack_salt`: the name
/// of the server that last replaced another, which keeps its ids once alone).
pub fn salt(r: Option<&Replacement>, server: &Name, rack_salt: Option<String>) -> Option<String> {
    match role(r, server) {
        Role::Incoming { .. } => Some(server.to_string()),
        _ => rack_salt,
    }
}

/// Whether server `name` may join its rack as the new server of `r`.
pub fn admits(r: Option<&Replacement>, name: &Name) -> bool {
    r.is_some_and(|r| {
        &r.new_server == name
            && matches!(
                r.phase,
                ReplacementPhase::Making | ReplacementPhase::Starting
            )
    })
}

#[cfg(test)]
#[path = "replacement/tests.rs"]
mod tests;
