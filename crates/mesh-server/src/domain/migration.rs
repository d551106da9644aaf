//! Moving an environment between racks: which racks it leaves when its list changes, where it
//! stands on each rack, and what happens next to each rack it is leaving. Pure: the API and the
//! retire task (`retire.rs`) feed it what the store says.
//!
//! A rack taken out of the list keeps serving until every remaining rack is healthy (each
//! service's instance count healthy there). Then its router forwards the environment's hosts to
//! the remaining racks' routers for the drain grace (DNS caches still point at it), and then the
//! environment leaves it: its instances stop and its alias goes.

use std::collections::BTreeMap;

use mesh_types::api::{
    Environment, Instance, InstanceState, LeavingRack, PlacementState, RackPlacement, Service,
};
use mesh_types::{Name, UnixMs};

/// Why a rack list cannot be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MigrationError {
    #[error("an environment needs at least one rack")]
    NoRack,
    #[error(
        "none of the racks {racks} has a live server, so the environment would have nowhere to \
         run once it leaves {leaving}: start a rack's agent (`mesh rack servers RACK` shows \
         them), or keep a healthy rack in the list"
    )]
    NoLiveRack { racks: String, leaving: String },
    #[error(
        "{leaving} would stop serving the environment while {racks} is not healthy yet for it: \
         bring it up there first with `mesh env update {env} --rack {both}`, which returns once \
         it is healthy, then take {leaving} out"
    )]
    NotHealthyYet {
        env: String,
        racks: String,
        leaving: String,
        both: String,
    },
    #[error("--drain-grace: at most {max}s (one day); DNS caches rarely keep a record longer")]
    GraceTooLong { max: u64 },
}

/// The racks `env` is leaving once its list is `racks`: those it was leaving and stays away
/// from, then those it was on and is not any more, which start leaving `now` with `grace_ms`.
/// A rack that comes back stops leaving. A rack taken out with no live server (`live(rack)`)
/// serves nothing to drain: the environment leaves it at once.
pub fn leaving_after(
    env: &Environment,
    racks: &[Name],
    grace_ms: UnixMs,
    now: UnixMs,
    live: impl Fn(&Name) -> bool,
) -> Vec<LeavingRack> {
    let mut leaving: Vec<LeavingRack> = env
        .leaving
        .iter()
        .filter(|l| !racks.contains(&l.rack))
        .cloned()
        .collect();
    for rack in env.racks.iter().filter(|r| !racks.contains(r) && live(r)) {
        leaving.push(LeavingRack {
            rack: rack.clone(),
            since: now,
            drain_grace_ms: grace_ms,
            forwarding_since: None,
        });
    }
    leaving
}

/// Checks a new rack list against which racks have a live server (`live(rack)`) and on which
/// the environment is healthy now (`healthy(rack)`). It may not take away the last racks that
/// can run the environment, keeping only racks that cannot (the move would wait for ever), nor
/// its last healthy racks while no remaining rack is healthy yet (bring the new rack up first
/// with both in the list). Where no rack is live, or none healthy, nothing is lost.
pub fn check_racks(
    env: &Environment,
    racks: &[Name],
    live: impl Fn(&Name) -> bool,
    healthy: impl Fn(&Name) -> bool,
) -> Result<(), MigrationError> {
    if racks.is_empty() {
        return Err(MigrationError::NoRack);
    }
    let removed: Vec<&Name> = env.racks.iter().filter(|r| !racks.contains(r)).collect();
    if removed.iter().any(|r| live(r)) && !racks.iter().any(&live) {
        return Err(MigrationError::NoLiveRack {
            racks: join(racks.iter()),
            leaving: join(removed.into_iter()),
        });
    }
    if removed.iter().any(|r| healthy(r)) && !racks.iter().any(&healthy) {
        let mut both: Vec<&Name> = removed.clone();
        both.extend(racks.iter());
        return Err(MigrationError::NotHealthyYet {
            env: env.name.to_string(),
            racks: join(racks.iter()),
            leaving: join(removed.into_iter()),
            both: join(both.into_iter()),
        });
    }
    Ok(())
}

/// The drain grace asked for, in milliseconds.
pub fn grace_ms(asked_s: Option<u64>) -> Result<UnixMs, MigrationError> {
    use mesh_types::api::{DEFAULT_DRAIN_GRACE_S, MAX_DRAIN_GRACE_S};
    let s = asked_s.unwrap_or(DEFAULT_DRAIN_GRACE_S);
    if s > MAX_DRAIN_GRACE_S {
        return Err(MigrationError::GraceTooLong {
            max: MAX_DRAIN_GRACE_S,
        });
    }
    Ok(s as UnixMs * 1000)
}

/// What happens next to a rack the environment is leaving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The remaining racks are not all healthy: it keeps serving.
    Wait,
    /// They are: it starts forwarding now.
    StartForwarding,
    /// It forwards until the drain grace ends.
    Forward,
    /// The drain grace is over: the environment leaves it.
    Finish,
}

/// The next step of `leaving`, the remaining racks being all healthy or not, at `now`. Once
/// forwarding started it goes on even if a remaining rack falters: the old instances may be
/// stale by then, and the remaining racks' own rollouts answer for their health.
pub fn step(leaving: &LeavingRack, remaining_healthy: bool, now: UnixMs) -> Step {
    match leaving.until() {
        None if remaining_healthy => Step::StartForwarding,
        None => Step::Wait,
        Some(until) if now >= until => Step::Finish,
        Some(_) => Step::Forward,
    }
}

/// Where the environment stands on `rack`: lost if its server is, healthy once every service
/// that is not a cron job runs its instance count healthy there (`instances` as listed, with
/// their rack), else starting, with what is missing.
pub fn rack_state(
    rack: &Name,
    lost: bool,
    services: &[Service],
    instances: &[Instance],
) -> (PlacementState, String) {
    if lost {
        return (
            PlacementState::Lost,
            "no live server: lost, or none registered yet".into(),
        );
    }
    let missing = missing_healthy(
        services,
        instances.iter().filter(|i| i.rack.as_ref() == Some(rack)),
    );
    if missing.is_empty() {
        (PlacementState::Healthy, String::new())
    } else {
        (PlacementState::Starting, missing.join(", "))
    }
}

/// The services (not cron jobs) of `services` that lack their instance count of healthy
/// instances among `instances`, each as `<stack>-<service> <healthy>/<count> healthy`.
pub fn missing_healthy<'a>(
    services: &[Service],
    instances: impl Iterator<Item = &'a Instance>,
) -> Vec<String> {
    let mut healthy: BTreeMap<(&str, &str), u32> = BTreeMap::new();
    for i in instances.filter(|i| i.state == InstanceState::Healthy) {
        *healthy
            .entry((i.stack.as_str(), i.service.as_str()))
            .or_default() += 1;
    }
    services
        .iter()
        .filter(|s| s.schedule.is_none() && s.instances > 0)
        .filter_map(|s| {
            let n = healthy
                .get(&(s.stack.as_str(), s.name.as_str()))
                .copied()
                .unwrap_or(0);
            (n < s.instances).then(|| format!("{}-{} {n}/{} healthy", s.stack, s.name, s.instances))
        })
        .collect()
}

/// Where the environment stands on each of its racks, then on each rack it is leaving;
/// `lost(rack)` says whether a rack's server is lost.
pub fn placement(
    env: &Environment,
    services: &[Service],
    instances: &[Instance],
    lost: impl Fn(&Name) -> bool,
) -> Vec<RackPlacement> {
    let mut out: Vec<RackPlacement> = env
        .racks
        .iter()
        .map(|rack| {
            let (state, detail) = rack_state(rack, lost(rack), services, instances);
            RackPlacement {
                rack: rack.clone(),
                state,
                detail,
                until: None,
            }
        })
        .collect();
    let remaining = remaining_healthy(&out);
    for l in &env.leaving {
        let (state, detail, until) = match l.until() {
            Some(until) => (
                PlacementState::Forwarding,
                format!("forwarding to {}", join(env.racks.iter())),
                Some(until),
            ),
            None if remaining => (
                PlacementState::Leaving,
                "the remaining racks are healthy; forwarding starts in a moment".into(),
                None,
            ),
            None => (
                PlacementState::Leaving,
                format!("serving until {} is healthy", join(env.racks.iter())),
                None,
            ),
        };
        out.push(RackPlacement {
            rack: l.rack.clone(),
            state,
            detail,
            until,
        });
    }
    out
}

/// Whether every rack the environment is on (the first entries of a [`placement`], before the
/// leaving ones) is healthy.
pub fn remaining_healthy(placement: &[RackPlacement]) -> bool {
    placement
        .iter()
        .filter(|p| {
            !matches!(
                p.state,
                PlacementState::Leaving | PlacementState::Forwarding
            )
        })
        .all(|p| p.state == PlacementState::Healthy)
}

fn join<'a>(names: impl Iterator<Item = &'a Name>) -> String {
    names.map(Name::as_str).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
#[path = "migration/tests.rs"]
mod tests;

/// Where an environment stands now: per rack as `mesh env show` prints it, and the racks (those
/// it is leaving included) where every service runs healthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub placement: Vec<RackPlacement>,
    pub healthy: Vec<Name>,
}

/// The racks of `env`, those it is leaving included, where it is healthy now.
pub fn healthy_racks(
    env: &Environment,
    services: &[Service],
    instances: &[Instance],
    lost: impl Fn(&Name) -> bool,
) -> Vec<Name> {
    env.racks
        .iter()
        .chain(env.leaving.iter().map(|l| &l.rack))
        .filter(|r| rack_state(r, lost(r), services, instances).0 == PlacementState::Healthy)
        .cloned()
        .collect()
}

/// The services of environment `env` that run somewhere: those of a stack with nothing to run
/// (no image, no deployment) run nowhere, so they hold no move up.
pub async fn runnable_services(
    store: &dyn mesh_store::Store,
    env: &str,
) -> Result<Vec<Service>, mesh_store::StoreError> {
    let runnable: Vec<Name> = store
        .list_stacks(env)
        .await?
        .into_iter()
        .filter(|s| s.image.is_some() || s.current_deployment.is_some())
        .map(|s| s.name)
        .collect();
    Ok(store
        .list_services(env, None)
        .await?
        .into_iter()
        .filter(|s| runnable.contains(&s.stack))
        .collect())
}

/// Reads where `env` stands on each of its racks and each rack it is leaving, now: the one
/// effect of this module, shared by `mesh env show`, `mesh env update` and the retire task.
pub async fn observe(
    store: &dyn mesh_store::Store,
    env: &Environment,
    live: super::servers::Liveness,
) -> Result<Observed, mesh_store::StoreError> {
    let mut racks = env.racks.clone();
    racks.extend(env.leaving.iter().map(|l| l.rack.clone()));
    let name = env.name.as_str();
    let services = runnable_services(store, name).await?;
    let map = super::servers::server_map(store, &racks, live).await?;
    let instances = super::servers::instances_view(store.list_instances(name).await?, &map);
    let mut lost: BTreeMap<Name, (usize, usize)> = BTreeMap::new();
    for (server, rack) in &map.rack_of {
        let e = lost.entry(rack.clone()).or_default();
        e.0 += 1;
        if map.lost.contains(server) {
            e.1 += 1;
        }
    }
    // A rack with no server, or only lost ones, cannot run anything.
    let is_lost = |rack: &Name| lost.get(rack).is_none_or(|(all, gone)| all == gone);
    Ok(Observed {
        placement: placement(env, &services, &instances, is_lost),
        healthy: healthy_racks(env, &services, &instances, is_lost),
    })
}
