//! Whether one service of a rollout has taken over, decided rack by rack: a rollout succeeds
//! only when every rack of the environment runs the service's asked instance count of healthy
//! new instances, and fails (rolling back on all racks) as soon as one rack's new instances
//! will not get there. Pure: the rollout's watch loop feeds it what agents report.

use std::collections::BTreeSet;

use mesh_types::api::{Instance, InstanceState, Service};
use mesh_types::{Name, UnixMs};

/// Beyond a service's health grace, time for its image to be fetched and its instance created.
pub const START_SLACK_MS: i64 = 60_000;
/// Restarts of a new instance that end its rollout before its grace period.
pub const CRASHES: u32 = 2;
/// After the first new instance on a rack started, how long past the grace period to wait
/// for the status report that says it is healthy.
const REPORT_SLACK_MS: i64 = 2_000;

/// Where a service's new instances stand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// Every rack runs the asked count of healthy new instances.
    Healthy,
    /// Some rack does not yet, and may still.
    Waiting,
    /// Some rack will not get there in time: why.
    Failed(String),
}

/// The service's new instances (`new`: those of the deployment being rolled out, with their
/// rack filled in) against the environment's `racks`, `now`, for a rollout that `started`.
pub fn standing(
    svc: &Service,
    racks: &[Name],
    new: &[&Instance],
    started: UnixMs,
    now: UnixMs,
) -> Standing {
    let mut waiting = false;
    for rack in racks {
        let here: Vec<&Instance> = new
            .iter()
            .copied()
            .filter(|i| i.rack.as_ref() == Some(rack))
            .collect();
        if healthy(&here) >= svc.instances {
            continue;
        }
        waiting = true;
        let first_start = here.iter().filter_map(|i| i.started_at).min();
        // A new instance that keeps crashing will not get healthy: no need to wait out the
        // grace period.
        let crash_loop = here
            .iter()
            .any(|i| i.restarts >= CRASHES && i.state != InstanceState::Healthy);
        let grace = i64::from(svc.health.grace_s) * 1000;
        let given_up = crash_loop
            || match first_start {
                Some(t) => now > t + grace + REPORT_SLACK_MS,
                None => now > started + grace + START_SLACK_MS,
            };
        if given_up {
            let on = (racks.len() > 1).then_some(rack);
            return Standing::Failed(not_healthy(svc, &here, on));
        }
    }
    if waiting {
        Standing::Waiting
    } else {
        Standing::Healthy
    }
}

fn healthy(instances: &[&Instance]) -> u32 {
    instances
        .iter()
        .filter(|i| i.state == InstanceState::Healthy)
        .count() as u32
}

/// The progress line of a service: healthy new instances against the asked count, per rack
/// when the environment has several.
pub fn progress(svc: &Service, racks: &[Name], new: &[&Instance], old: usize) -> String {
    let counts = match racks {
        [_] => format!("{}/{} new healthy", healthy(new), svc.instances),
        _ => {
            let per_rack: Vec<String> = racks
                .iter()
                .map(|rack| {
                    let here: Vec<&Instance> = new
                        .iter()
                        .copied()
                        .filter(|i| i.rack.as_ref() == Some(rack))
                        .collect();
                    format!("{}/{} on {rack}", healthy(&here), svc.instances)
                })
                .collect();
            format!("new healthy {}", per_rack.join(", "))
        }
    };
    let old = if old > 0 {
        format!(", {old} old running")
    } else {
        String::new()
    };
    format!("       {}: {counts}{old}", svc.name)
}

fn not_healthy(svc: &Service, new: &[&Instance], rack: Option<&Name>) -> String {
    let on = rack.map(|r| format!(" on rack {r}")).unwrap_or_default();
    if new.is_empty() {
        let agent = match rack {
            Some(r) => format!("is an agent running on rack {r}?"),
            None => "is an agent running on the environment's rack?".to_string(),
        };
        return format!(
            "no new instance of {}{on} started within {}s ({agent})",
            svc.name,
            svc.health.grace_s + (START_SLACK_MS / 1000) as u32
        );
    }
    let states: BTreeSet<String> = new
        .iter()
        .map(|i| {
            let mut s = serde_json::to_value(i.state)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            if let Some(code) = i.exit_code {
                s.push_str(&format!(" (exit code {code})"));
            }
            if let Some(m) = &i.message {
                s.push_str(&format!(": {m}"));
            }
            s
        })
        .collect();
    format!(
        "the new instances of {}{on} did not become healthy within {}s: {}",
        svc.name,
        svc.health.grace_s,
        states.into_iter().collect::<Vec<_>>().join("; ")
    )
}

#[cfg(test)]
#[path = "verdict/tests.rs"]
mod tests;
