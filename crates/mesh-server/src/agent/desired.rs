//! The desired state of one rack, computed from the store: every environment placed on it,
//! with config resolved for the rack, the routes its router must serve, the certificates it
//! must present and the ACME challenges it must answer. An environment's cron jobs go only to
//! the rack that runs its cron now (`domain::placement::cron_rack`), so each tick runs once.
//!
//! A stack whose config cannot be read because one of its values does not open (sealed for
//! another owner: copied from another row, or damaged) does not hold up the rest of the rack:
//! the stack is rendered as the previous document had it, if there was one, else left out
//! (its instances stop: it cannot run without its config), with an error in the log naming the
//! variable. A wrong master key, under which nothing opens, still fails the whole document, so
//! the agents keep what they run instead of stopping every stack.

use mesh_store::{Store, StoreError, StoreResult};
use mesh_types::Name;
use mesh_types::api::{
    CertificateState, Endpoint, EndpointKind, Environment, Rack, Server, ServerState,
};
use mesh_types::config::resolve;
use mesh_types::desired::{
    AcmeChallengeDoc, CertificateDoc, DesiredState, EnvironmentDoc, RouteDoc, ServiceDoc, StackDoc,
};
use sha2::{Digest, Sha256};

use crate::domain::placement::{cron_rack, servers_of};
use crate::domain::replacement::{self, Role};
use crate::domain::servers::Liveness;

/// The rack's document; `previous` (the document the rack was sent last, if any) stands in for
/// a stack whose config cannot be read; `live` says which servers are lost, for cron.
pub async fn for_rack(
    store: &dyn Store,
    rack: &Rack,
    previous: Option<&DesiredState>,
    live: Liveness,
) -> StoreResult<DesiredState> {
    for_server(store, rack, None, previous, live).await
}

/// The document of server `server` of the rack (`None`: of the rack as a whole). While the
/// rack replaces its server (`domain::replacement`), its two servers are told apart: the new
/// one's instances get ids of their own, cron runs on the one that takes one-off work, and once
/// traffic moved the old one's router forwards every host to the new one's, which trusts it.
pub async fn for_server(
    store: &dyn Store,
    rack: &Rack,
    server: Option<&Name>,
    previous: Option<&DesiredState>,
    live: Liveness,
) -> StoreResult<DesiredState> {
    let replacement = store.get_replacement(rack.name.as_str()).await?;
    let rack_servers = store.list_servers(rack.name.as_str()).await?;
    let role = server.map_or(Role::Sole, |s| replacement::role(replacement.as_ref(), s));
    let router_of = |name: &Name| {
        rack_servers
            .iter()
            .find(|s| &s.name == name && live.state(s) != ServerState::Lost)
            .and_then(|s| s.router.clone())
    };
    let (mut forward_all, mut trusted) = (Vec::new(), Vec::new());
    if let Some(r) = &replacement {
        match role {
            Role::Outgoing { forwarding: true } => forward_all.extend(router_of(&r.new_server)),
            Role::Incoming { forwarded: true } => trusted.extend(router_of(&r.old_server)),
            _ => {}
        }
    }
    // Cron runs on the server that takes the rack's one-off work (the first ready one).
    let takes_one_off = server.is_none_or(|s| {
        rack_servers
            .iter()
            .find(|x| live.state(x) == ServerState::Ready)
            .is_some_and(|x| &x.name == s)
    });
    let server_salt = match server {
        Some(s) => replacement::salt(
            replacement.as_ref(),
            s,
            store.instance_salt(rack.name.as_str()).await?,
        ),
        None => store.instance_salt(rack.name.as_str()).await?,
    };
    let mut environments = Vec::new();
    for env in store.list_environments().await? {
        let leaving = env.leaving.iter().find(|l| l.rack == rack.name);
        if !env.racks.contains(&rack.name) && leaving.is_none() {
            continue;
        }
        let name = env.name.as_str();
        let remaining = servers_of(store, &env.racks).await?;
        let runs_cron = takes_one_off && cron_rack(&remaining, live).as_ref() == Some(&rack.name);
        // A rack the environment is leaving forwards its hosts once the remaining racks are
        // healthy; with no router address known there, it goes on serving them itself.
        let forward_to = match leaving {
            Some(l) if l.forwarding_since.is_some() => forward_targets(&remaining, live),
            _ => forward_all.clone(),
        };
        // The racks that forward to this one now: its router trusts theirs meanwhile.
        let forwarding: Vec<Name> = match leaving {
            Some(_) => Vec::new(),
            None => env
                .leaving
                .iter()
                .filter(|l| l.forwarding_since.is_some())
                .map(|l| l.rack.clone())
                .collect(),
        };
        let mut forwarded_from = forward_targets(&servers_of(store, &forwarding).await?, live);
        forwarded_from.extend(trusted.iter().cloned());
        let services = store.list_services(name, None).await?;
        let mut stacks = Vec::new();
        for stack in store.list_stacks(name).await? {
            let config = match store.list_config(name, stack.name.as_str()).await {
                Ok(config) => config,
                Err(StoreError::FailedPrecondition(e)) => {
                    let kept = previous
                        .and_then(|p| p.environments.iter().find(|d| d.environment == env.name))
                        .and_then(|d| d.stacks.iter().find(|s| s.name == stack.name));
                    tracing::error!(
                        rack = %rack.name,
                        environment = name,
                        stack = %stack.name,
                        error = %e,
                        kept_previous = kept.is_some(),
                        "the stack's config cannot be read; the rack's other stacks are sent as usual"
                    );
                    if let Some(kept) = kept {
                        stacks.push(kept.clone());
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            let docs = services
                .iter()
                .filter(|s| s.stack == stack.name)
                .filter(|s| runs_cron || s.schedule.is_none())
                .map(|s| {
                    let mut env: std::collections::BTreeMap<String, String> = resolve(
                        &config,
                        s.name.as_str(),
                        rack.name.as_str(),
                        rack.region.as_str(),
                    )
                    .into_iter()
                    .map(|(k, v)| (k, v.value))
                    .collect();
                    env.insert("PORT".into(), s.port.to_string());
                    ServiceDoc {
                        name: s.name.clone(),
                        kind: s.kind,
                        hostname: s.hostname.clone(),
                        command: s.command.clone(),
                        schedule: s.schedule.clone(),
                        port: s.port,
                        instances: s.instances,
                        size: s.size,
                        limits: s.size.limits(),
                        health: s.health.clone(),
                        env,
                    }
                })
                .collect();
            let image = crate::deploy::stack_image(store, &stack).await?;
            stacks.push(StackDoc {
                name: stack.name.clone(),
                deployment: stack.current_deployment,
                image,
                services: docs,
            });
        }
        let mut routes = Vec::new();
        let mut https_redirects = Vec::new();
        for ep in store.list_endpoints(name).await? {
            if ep.kind == EndpointKind::Alias && !serves_alias(&env, &ep, rack) {
                continue;
            }
            if ep.https_redirect {
                https_redirects.push(ep.domain.to_string());
            }
            for r in ep.routes {
                routes.push(RouteDoc {
                    host: ep.domain.to_string(),
                    path: r.path,
                    stack: r.stack,
                    service: r.service,
                });
            }
        }
        let (certificates, acme_challenges) = certificates(store, name).await?;
        environments.push(EnvironmentDoc {
            environment: env.name.clone(),
            stacks,
            routes,
            https_redirects,
            certificates,
            acme_challenges,
            several_racks: env.racks.len() + env.leaving.len() > 1,
            forward_to,
            forwarded_from,
        });
    }
    Ok(DesiredState {
        rack: rack.name.clone(),
        region: rack.region.clone(),
        environments,
        server_salt,
    })
}

/// Whether `rack`'s router serves the alias endpoint `ep` of `env`: the alias of its own
/// domain (`<env>.<rack domain>`, which racks sharing a domain share), and the alias of a rack
/// the environment is leaving, which every rack serves until it has left (DNS caches still
/// send its visitors there, and it forwards them on). A custom domain is served everywhere.
fn serves_alias(env: &Environment, ep: &Endpoint, rack: &Rack) -> bool {
    if ep.rack.as_ref() == Some(&rack.name) {
        return true;
    }
    if ep.domain.as_str() == format!("{}.{}", env.name, rack.domain) {
        return true;
    }
    let owner_leaving = |owner: &Name| env.leaving.iter().any(|l| &l.rack == owner);
    ep.rack.as_ref().is_some_and(owner_leaving)
}

/// The routers of `racks`' live servers, in rack order: those a leaving rack forwards to, or
/// those that forward to a remaining rack.
fn forward_targets(remaining: &[(Name, Vec<Server>)], live: Liveness) -> Vec<String> {
    remaining
        .iter()
        .flat_map(|(_, servers)| servers)
        .filter(|s| live.state(s) != ServerState::Lost)
        .filter_map(|s| s.router.clone())
        .collect()
}

/// The environment's issued certificates, those expiring last listed last (a router keeps the
/// last certificate it reads for a name), and the challenges of its orders in progress.
async fn certificates(
    store: &dyn Store,
    env: &str,
) -> StoreResult<(Vec<CertificateDoc>, Vec<AcmeChallengeDoc>)> {
    let mut listed = store.list_certificates(env).await?;
    listed.sort_by(|a, b| (a.not_after, &a.fingerprint).cmp(&(b.not_after, &b.fingerprint)));
    let mut certs = Vec::new();
    let mut challenges = Vec::new();
    for c in listed {
        let wanted = crate::acme::is_pending_record(&c) || c.state == CertificateState::Issued;
        if !wanted {
            continue;
        }
        let record = match store.get_certificate(env, &c.fingerprint).await {
            Ok(r) => r,
            // Replaced or deleted since the listing: the next document has it right.
            Err(StoreError::NotFound(_)) => continue,
            Err(e) => return Err(e),
        };
        if crate::acme::is_pending_record(&c) {
            challenges.extend(crate::acme::challenges_of(&record));
        } else {
            certs.push(CertificateDoc {
                domains: record.certificate.domains,
                chain_pem: record.chain_pem,
                key_pem: record.key_pem,
            });
        }
    }
    Ok((certs, challenges))
}

/// A digest of the document, so unchanged state is not sent again.
pub fn digest(state: &DesiredState) -> String {
    let bytes = serde_json::to_vec(state).unwrap_or_default();
    hex::encode(Sha256::digest(&bytes))
}

#[cfg(test)]
#[path = "desired/tests.rs"]
mod tests;
