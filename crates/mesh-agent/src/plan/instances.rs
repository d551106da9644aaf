//! Long-running instances: from what is wanted and what is observed to create, restart and
//! delete.

use std::collections::{BTreeMap, BTreeSet};

use mesh_types::UnixMs;

use super::{Wanted, generation_of, is_oneoff, is_run};

/// What the agent sees of one instance on this server.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub id: String,
    pub environment: String,
    pub hostname: String,
    pub running: bool,
    pub healthy: bool,
    /// When the supervisor may start it again after it ended (backoff), if it ended.
    pub restart_at: Option<UnixMs>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Create(Wanted),
    /// It ended and its backoff has passed: delete it and create it again.
    Restart(Wanted),
    /// Not wanted any more (or an older generation whose replacements are all healthy).
    Delete {
        id: String,
    },
}

/// The actions that move this server from `observed` towards `wanted` at time `now`.
///
/// An instance of an older generation of a service stays until the service's current generation
/// has as many healthy instances as it asks for, so a change never leaves a service with none
/// (and a new version that never gets healthy leaves the old one serving).
pub fn plan(wanted: &[Wanted], observed: &[Observed], now: UnixMs) -> Vec<Action> {
    let by_id: BTreeMap<&str, &Observed> = observed.iter().map(|o| (o.id.as_str(), o)).collect();
    let wanted_ids: BTreeSet<&str> = wanted.iter().map(|w| w.id.as_str()).collect();
    let mut actions = Vec::new();
    for w in wanted {
        match by_id.get(w.id.as_str()) {
            None => actions.push(Action::Create(w.clone())),
            Some(o) if !o.running && o.restart_at.is_some_and(|t| t <= now) => {
                actions.push(Action::Restart(w.clone()))
            }
            Some(_) => {}
        }
    }
    // Per (environment, hostname): how many the current generation wants and has healthy.
    let mut want_count: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for w in wanted {
        *want_count
            .entry((w.environment.as_str(), w.hostname.as_str()))
            .or_default() += 1;
    }
    let healthy_current = |env: &str, host: &str| {
        wanted
            .iter()
            .filter(|w| w.environment.as_str() == env && w.hostname == host)
            .filter(|w| {
                by_id
                    .get(w.id.as_str())
                    .is_some_and(|o| o.running && o.healthy)
            })
            .count()
    };
    for o in observed {
        if wanted_ids.contains(o.id.as_str()) || is_run(&o.id) || is_oneoff(&o.id) {
            continue;
        }
        let replaced = match want_count.get(&(o.environment.as_str(), o.hostname.as_str())) {
            // The service is gone, or scaled so this index is no longer wanted.
            None => true,
            Some(&n) => {
                let same_generation = wanted.iter().any(|w| {
                    w.environment.as_str() == o.environment
                        && w.hostname == o.hostname
                        && generation_of(&w.id) == generation_of(&o.id)
                });
                same_generation || !o.running || healthy_current(&o.environment, &o.hostname) >= n
            }
        };
        if replaced {
            actions.push(Action::Delete { id: o.id.clone() });
        }
    }
    actions
}
