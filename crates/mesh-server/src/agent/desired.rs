//! The desired state of one rack, computed from the store: every environment placed on it,
//! with config resolved for the rack and the routes its router must serve.

use mesh_store::{Store, StoreResult};
use mesh_types::api::{EndpointKind, Rack};
use mesh_types::config::resolve;
use mesh_types::desired::{DesiredState, EnvironmentDoc, ImageRef, RouteDoc, ServiceDoc, StackDoc};
use sha2::{Digest, Sha256};

pub async fn for_rack(store: &dyn Store, rack: &Rack) -> StoreResult<DesiredState> {
    let mut environments = Vec::new();
    for env in store.list_environments().await? {
        if !env.racks.contains(&rack.name) {
            continue;
        }
        let name = env.name.as_str();
        let services = store.list_services(name, None).await?;
        let mut stacks = Vec::new();
        for stack in store.list_stacks(name).await? {
            let config = store.list_config(name, stack.name.as_str()).await?;
            let docs = services
                .iter()
                .filter(|s| s.stack == stack.name)
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
            // An image name the API accepted is always a known one; an unknown one runs nothing.
            let image = stack.image.as_deref().and_then(|i| ImageRef::parse(i).ok());
            stacks.push(StackDoc {
                name: stack.name.clone(),
                deployment: stack.current_deployment,
                image,
                services: docs,
            });
        }
        let mut routes = Vec::new();
        for ep in store.list_endpoints(name).await? {
            // An alias belongs to one rack; a custom domain is served by every rack of the env.
            if ep.kind == EndpointKind::Alias && ep.rack.as_ref() != Some(&rack.name) {
                continue;
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
        environments.push(EnvironmentDoc {
            environment: env.name.clone(),
            stacks,
            routes,
        });
    }
    Ok(DesiredState {
        rack: rack.name.clone(),
        region: rack.region.clone(),
        environments,
    })
}

/// A digest of the document, so unchanged state is not sent again.
pub fn digest(state: &DesiredState) -> String {
    let bytes = serde_json::to_vec(state).unwrap_or_default();
    hex::encode(Sha256::digest(&bytes))
}
