//! What the desired state asks of this server: the instances to keep running and the cron jobs,
//! and the shape of instance ids (readable, with the generation of what shapes them).

use std::collections::BTreeMap;

use mesh_types::api::{HealthCheck, ServiceKind};
use mesh_types::desired::{DesiredState, ImageRef};
use mesh_types::size::SizeLimits;
use mesh_types::{Name, Version};
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

/// The generation of a service's instances: a digest of what they run. For an environment on
/// several racks, `rack` (this one) is part of it, so the same service on two racks gets
/// distinct instance ids (the control plane keeps one row per id in an environment); on one
/// rack it is left out, so ids stay what they were. Likewise `server_salt`, on a server that
/// replaced another of its rack, keeps its ids apart from the replaced server's.
fn generation(
    env: &str,
    stack: &str,
    svc: &mesh_types::desired::ServiceDoc,
    image: &ImageRef,
    deployment: Option<Version>,
    rack: Option<&str>,
    server_salt: Option<&str>,
) -> String {
    let mut shape = serde_json::json!({
        "env": env, "stack": stack, "service": svc.name, "image": image, "deployment": deployment,
        "command": svc.command, "vars": svc.env, "limits": svc.limits, "port": svc.port,
    });
    if let (Some(rack), Some(obj)) = (rack, shape.as_object_mut()) {
        obj.insert("rack".into(), rack.into());
    }
    if let (Some(salt), Some(obj)) = (server_salt, shape.as_object_mut()) {
        obj.insert("server".into(), salt.into());
    }
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
                    env.several_racks.then_some(state.rack.as_str()),
                    state.server_salt.as_deref(),
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
