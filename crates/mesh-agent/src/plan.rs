//! Reconcile, as a pure function: from the desired state and what is observed on this server to
//! the actions that close the gap. Level-triggered: running it twice on the same input gives the
//! same actions, and an action that failed is simply planned again next time.

use std::collections::{BTreeMap, BTreeSet};

use mesh_types::api::{HealthCheck, ServiceKind};
use mesh_types::desired::{DesiredState, ImageRef};
use mesh_types::size::SizeLimits;
use mesh_types::{Name, UnixMs, Version};
use sha2::{Digest, Sha256};

/// Longest part of an instance id taken from the service's hostname.
const ID_HOSTNAME_MAX: usize = 40;

/// One instance the desired state asks this server to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Wanted {
    pub id: String,
    pub environment: Name,
    pub stack: Name,
    pub service: Name,
    pub deployment: Option<Version>,
    /// A digest of everything that shapes the instance: a change means new instances.
    pub generation: String,
    pub kind: ServiceKind,
    pub hostname: String,
    pub image: ImageRef,
    pub command: Option<String>,
    pub env: BTreeMap<String, String>,
    pub limits: SizeLimits,
    pub port: u16,
    pub health: HealthCheck,
}

/// A cron service: its runs are started by the scheduler, not kept running.
#[derive(Debug, Clone, PartialEq)]
pub struct CronJob {
    pub template: Wanted,
    pub schedule: mesh_types::Schedule,
}

/// `<hostname>-<generation>-<suffix>`: readable, unique on the server, a DNS label.
pub fn instance_id(hostname: &str, generation: &str, suffix: &str) -> String {
    let mut host: String = hostname.chars().take(ID_HOSTNAME_MAX).collect();
    while host.ends_with('-') {
        host.pop();
    }
    format!("{host}-{generation}-{suffix}")
}

/// The generation part of an instance id, if it has the agent's shape.
pub fn generation_of(id: &str) -> Option<&str> {
    let mut parts = id.rsplitn(3, '-');
    let _suffix = parts.next()?;
    let generation = parts.next()?;
    parts.next()?;
    (generation.len() == 8 && generation.bytes().all(|b| b.is_ascii_hexdigit()))
        .then_some(generation)
}

/// Whether an id is a one-off run of `mesh run` (`...-x<hex>`): never planned, never deleted by
/// reconcile; its task removes it.
pub fn is_oneoff(id: &str) -> bool {
    mesh_types::agent::is_oneoff_instance(id)
}

/// Whether an id is a cron run (`...-r<unix seconds>`).
pub fn is_run(id: &str) -> bool {
    id.rsplit('-').next().is_some_and(|s| {
        s.starts_with('r') && s.len() > 1 && s[1..].bytes().all(|b| b.is_ascii_digit())
    })
}

fn generation(
    env: &str,
    stack: &str,
    svc: &mesh_types::desired::ServiceDoc,
    image: &ImageRef,
    deployment: Option<Version>,
) -> String {
    let shape = serde_json::json!({
        "env": env, "stack": stack, "service": svc.name, "image": image, "deployment": deployment,
        "command": svc.command, "vars": svc.env, "limits": svc.limits, "port": svc.port,
    });
    let digest = Sha256::digest(shape.to_string().as_bytes());
    hex::encode(&digest[..4])
}

/// Every instance the desired state asks for, and every cron job.
pub fn wanted(state: &DesiredState) -> (Vec<Wanted>, Vec<CronJob>) {
    let mut out = Vec::new();
    let mut cron = Vec::new();
    for env in &state.environments {
        for stack in &env.stacks {
            // A stack with nothing to run (no image yet) runs nothing.
            let Some(image) = &stack.image else { continue };
            for svc in &stack.services {
                let generation = generation(
                    env.environment.as_str(),
                    stack.name.as_str(),
                    svc,
                    image,
                    stack.deployment,
                );
                let template = Wanted {
                    id: String::new(),
                    environment: env.environment.clone(),
                    stack: stack.name.clone(),
                    service: svc.name.clone(),
                    deployment: stack.deployment,
                    generation: generation.clone(),
                    kind: svc.kind,
                    hostname: svc.hostname.clone(),
                    image: image.clone(),
                    command: svc.command.clone(),
                    env: svc.env.clone(),
                    limits: svc.limits,
                    port: svc.port,
                    health: svc.health.clone(),
                };
                if let Some(schedule) = &svc.schedule {
                    cron.push(CronJob {
                        template,
                        schedule: schedule.clone(),
                    });
                    continue;
                }
                for i in 0..svc.instances {
                    let id = instance_id(&svc.hostname, &generation, &i.to_string());
                    out.push(Wanted {
                        id,
                        ..template.clone()
                    });
                }
            }
        }
    }
    (out, cron)
}

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

#[cfg(test)]
#[path = "plan/tests.rs"]
mod tests;
