//! The rollout: point the stack at the new deployment and watch it take over.
//!
//! Promoting writes the new processes into the stack's services (creating the ones the Procfile
//! adds, publishing `web` on the platform alias) and makes the deployment current; agents then
//! start the new instances beside the old ones and stop an old one only once the new ones are
//! healthy (see the agent's plan). Here the control plane watches what agents report: when every
//! service has its healthy new instances on every rack of the environment (`verdict`) and no
//! old ones left, the deployment succeeded. When a service's new instances on any rack are not
//! healthy within its health grace, it puts the previous deployment back, on all racks, so
//! agents drop the new instances and the old ones, never stopped, keep serving.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use mesh_store::{ServiceSpec, StoreError};
use mesh_types::api::{
    DEFAULT_PORT, DeploymentBuild, EndpointKind, HealthCheck, Instance, Route, Service,
};
use mesh_types::{Name, NameError, UnixMs, Version};

use mesh_types::agent::is_oneoff_instance;

use super::log::DeployLog;
use super::run::Job;
use super::verdict::{self, Standing};
use crate::app::AppState;
use crate::domain::servers::{instances_view, server_map};
use crate::domain::services::spec_of;
use crate::logs::LogFilter;

const POLL: Duration = Duration::from_millis(200);
/// How long old instances may take to drain and stop once the new ones are healthy.
const DRAIN_MS: i64 = 120_000;
/// First lines of each service shown at the end of a deployment.
const FIRST_LINES: usize = 5;

/// Why a rollout ended without the new version serving, and what runs instead.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    /// Promoting the new version failed part way; what it changed stays.
    #[error("promoting {version} failed: {source}")]
    Promote { version: Version, source: StepError },
    /// The new version did not take over; the previous one was put back.
    #[error("{reason}; {}", rolled_back_to(*.previous))]
    RolledBack {
        reason: String,
        previous: Option<Version>,
    },
    /// The new version did not take over, and putting the previous one back failed too.
    #[error("{reason}; rolling back failed: {source}")]
    Undo { reason: String, source: StepError },
}

fn rolled_back_to(previous: Option<Version>) -> String {
    match previous {
        Some(v) => format!("rolled back to {v}, which keeps serving"),
        None => "nothing ran before, so nothing runs now".to_string(),
    }
}

/// A change to the stack's services, routes or current deployment that failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Name(#[from] NameError),
}

/// What promotion changed, so a rollback can undo exactly that.
#[derive(Debug, Default)]
struct Promotion {
    previous: Option<Version>,
    previous_commands: BTreeMap<String, Option<String>>,
    created: Vec<String>,
    published: Vec<String>,
}

pub async fn run(
    state: &AppState,
    job: &Job,
    build: &DeploymentBuild,
    log: &DeployLog,
) -> Result<String, RolloutError> {
    let (env, stack, version) = (job.env.as_str(), job.stack.as_str(), job.version);
    let promotion = promote(state, job, build, log)
        .await
        .map_err(|source| RolloutError::Promote { version, source })?;
    match watch(state, env, stack, version, log).await {
        Ok(()) => {
            first_lines(state, env, stack, version, log).await;
            Ok(success_message(state, env, stack, version).await)
        }
        Err(reason) => {
            log.line(format!("       {reason}"));
            match undo(state, env, stack, &promotion).await {
                Ok(()) => Err(RolloutError::RolledBack {
                    reason,
                    previous: promotion.previous,
                }),
                Err(source) => Err(RolloutError::Undo { reason, source }),
            }
        }
    }
}

fn service_name(process: &str) -> Option<Name> {
    process.replace('_', "-").parse().ok()
}

async fn promote(
    state: &AppState,
    job: &Job,
    build: &DeploymentBuild,
    log: &DeployLog,
) -> Result<Promotion, StepError> {
    let (env, stack, version) = (job.env.as_str(), job.stack.as_str(), job.version);
    let store = state.store();
    let mut promotion = Promotion {
        previous: job.previous,
        ..Promotion::default()
    };
    let services = store.list_services(env, Some(stack)).await?;
    let by_name: HashMap<String, &Service> =
        services.iter().map(|s| (s.name.to_string(), s)).collect();
    let mut wanted: Vec<(Name, Option<String>)> = build
        .processes
        .iter()
        .filter(|(p, _)| p.as_str() != "release")
        .filter_map(|(p, c)| service_name(p).map(|n| (n, Some(c.clone()))))
        .collect();
    // An image with no Procfile runs its own command as `web` on a fresh stack.
    if wanted.is_empty() && services.is_empty() {
        wanted.push(("web".parse()?, None));
    }
    let now = state.now();
    for (name, command) in wanted {
        match by_name.get(name.as_str()) {
            Some(s) if s.command == command => {}
            Some(s) => {
                promotion
                    .previous_commands
                    .insert(name.to_string(), s.command.clone());
                let spec = ServiceSpec {
                    command: command.clone(),
                    ..spec_of(s)
                };
                store.update_service(env, stack, &spec, now).await?;
                log.line(format!(
                    "       service {name}: {}",
                    command.as_deref().unwrap_or("(the image's command)")
                ));
            }
            None => {
                let spec = ServiceSpec {
                    name: name.clone(),
                    command: command.clone(),
                    schedule: None,
                    port: DEFAULT_PORT,
                    instances: 1,
                    size: Default::default(),
                    health: HealthCheck::default(),
                };
                store.create_service(env, stack, &spec, now).await?;
                promotion.created.push(name.to_string());
                log.line(format!(
                    "       new service {name}: {}",
                    command.as_deref().unwrap_or("(the image's command)")
                ));
            }
        }
    }
    if store.get_service(env, stack, "web").await.is_ok() {
        promotion.published = publish_web(state, env, stack, log).await?;
    }
    store
        .set_current_deployment(env, stack, Some(version), now)
        .await?;
    state.notify_change();
    Ok(promotion)
}

/// Publishes `web` at `/` on the environment's platform aliases that have nothing at `/`.
async fn publish_web(
    state: &AppState,
    env: &str,
    stack: &str,
    log: &DeployLog,
) -> Result<Vec<String>, StepError> {
    let store = state.store();
    let mut published = Vec::new();
    for ep in store.list_endpoints(env).await? {
        if ep.kind != EndpointKind::Alias || ep.routes.iter().any(|r| r.path == "/") {
            continue;
        }
        let mut routes = ep.routes.clone();
        routes.push(Route {
            path: "/".into(),
            stack: stack.parse()?,
            service: "web".parse()?,
        });
        store.set_routes(env, ep.domain.as_str(), &routes).await?;
        log.line(format!("       web published on http://{}/", ep.domain));
        published.push(ep.domain.to_string());
    }
    Ok(published)
}

/// Puts back what [`promote`] changed.
async fn undo(state: &AppState, env: &str, stack: &str, p: &Promotion) -> Result<(), StepError> {
    let store = state.store();
    let now = state.now();
    store
        .set_current_deployment(env, stack, p.previous, now)
        .await?;
    for (name, command) in &p.previous_commands {
        if let Ok(s) = store.get_service(env, stack, name).await {
            let spec = ServiceSpec {
                command: command.clone(),
                ..spec_of(&s)
            };
            store.update_service(env, stack, &spec, now).await?;
        }
    }
    for domain in &p.published {
        if let Ok(ep) = store.get_endpoint(env, domain).await {
            let routes: Vec<Route> = ep
                .routes
                .into_iter()
                .filter(|r| {
                    !(r.path == "/" && r.stack.as_str() == stack && r.service.as_str() == "web")
                })
                .collect();
            let _ = store.set_routes(env, domain, &routes).await;
        }
    }
    for name in &p.created {
        let _ = store.delete_service(env, stack, name).await;
    }
    state.notify_change();
    Ok(())
}

/// Waits until every long-running service of the stack runs only healthy instances of
/// `version`, on every rack of the environment, or says which did not get there in time.
async fn watch(
    state: &AppState,
    env: &str,
    stack: &str,
    version: Version,
    log: &DeployLog,
) -> Result<(), String> {
    let started = state.now();
    let mut healthy_at: HashMap<String, UnixMs> = HashMap::new();
    let mut last_progress: HashMap<String, String> = HashMap::new();
    loop {
        let now = state.now();
        let store = state.store();
        let racks = store
            .get_environment(env)
            .await
            .map_err(|e| e.to_string())?
            .racks;
        let services: Vec<Service> = store
            .list_services(env, Some(stack))
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|s| s.schedule.is_none() && s.instances > 0)
            .collect();
        // Each instance with its rack; those of a lost server are unknown, not healthy.
        let servers = server_map(store, &racks, state.liveness())
            .await
            .map_err(|e| e.to_string())?;
        let listed = store.list_instances(env).await.map_err(|e| e.to_string())?;
        let instances: Vec<Instance> = instances_view(listed, &servers)
            .into_iter()
            // One-offs (`mesh run`, a release) are not part of a rollout.
            .filter(|i| i.stack.as_str() == stack && !is_oneoff_instance(&i.id))
            .collect();
        let mut done = true;
        for svc in &services {
            let name = svc.name.to_string();
            let mine: Vec<&Instance> = instances.iter().filter(|i| i.service == svc.name).collect();
            let new: Vec<&Instance> = mine
                .iter()
                .copied()
                .filter(|i| i.deployment == Some(version))
                .collect();
            let old = mine.len() - new.len();
            let progress = verdict::progress(svc, &racks, &new, old);
            if last_progress.get(&name) != Some(&progress) {
                log.line(progress.clone());
                last_progress.insert(name.clone(), progress);
            }
            match verdict::standing(svc, &racks, &new, started, now) {
                Standing::Healthy => {
                    let at = *healthy_at.entry(name.clone()).or_insert(now);
                    if old > 0 && now - at < DRAIN_MS {
                        done = false;
                    }
                }
                Standing::Waiting => done = false,
                Standing::Failed(reason) => return Err(reason),
            }
        }
        if done {
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Copies the first lines each service's new instances printed into the deployment's log.
async fn first_lines(state: &AppState, env: &str, stack: &str, version: Version, log: &DeployLog) {
    let Ok(instances) = state.store().list_instances(env).await else {
        return;
    };
    let since = instances
        .iter()
        .filter(|i| i.deployment == Some(version))
        .filter_map(|i| i.started_at)
        .min()
        .unwrap_or(0);
    let filter = LogFilter {
        stack: Some(stack.to_string()),
        ..LogFilter::default()
    };
    let ids: BTreeSet<&str> = instances
        .iter()
        .filter(|i| i.stack.as_str() == stack && i.deployment == Some(version))
        .map(|i| i.id.as_str())
        .collect();
    let mut shown: BTreeMap<String, usize> = BTreeMap::new();
    let Ok(lines) = state.logs().query(env, since, &filter).await else {
        return;
    };
    for l in lines {
        if !ids.contains(l.instance.as_str()) {
            continue;
        }
        let n = shown.entry(l.service.to_string()).or_default();
        if *n < FIRST_LINES {
            *n += 1;
            log.line(format!("       {} {}: {}", l.service, l.instance, l.text));
        }
    }
}

async fn success_message(state: &AppState, env: &str, stack: &str, version: Version) -> String {
    let mut urls = Vec::new();
    if let Ok(eps) = state.store().list_endpoints(env).await {
        for ep in eps {
            for r in &ep.routes {
                if r.stack.as_str() == stack && r.service.as_str() == "web" {
                    let scheme = if ep.kind == EndpointKind::Alias {
                        "http"
                    } else {
                        "https"
                    };
                    urls.push(format!("{scheme}://{}{}", ep.domain, r.path));
                }
            }
        }
    }
    match urls.first() {
        Some(url) => format!("{version} is live; web answers at {url}"),
        None => format!("{version} is live"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_rollout_says_why_and_what_runs_now() {
        let e = RolloutError::RolledBack {
            reason: "the new instances of web did not become healthy within 30s: failed".into(),
            previous: Some(Version(2)),
        };
        assert_eq!(
            e.to_string(),
            "the new instances of web did not become healthy within 30s: failed; rolled back to v2, which keeps serving"
        );
        let e = RolloutError::RolledBack {
            reason: "no new instance".into(),
            previous: None,
        };
        assert_eq!(
            e.to_string(),
            "no new instance; nothing ran before, so nothing runs now"
        );
        let e = RolloutError::Undo {
            reason: "no new instance".into(),
            source: StepError::Store(StoreError::Invalid("bad".into())),
        };
        assert_eq!(e.to_string(), "no new instance; rolling back failed: bad");
        let e = RolloutError::Promote {
            version: Version(3),
            source: StepError::Store(StoreError::NotFound("stack \"app\"".into())),
        };
        assert_eq!(
            e.to_string(),
            "promoting v3 failed: stack \"app\" not found"
        );
    }
}
