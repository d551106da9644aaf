//! Services as the store takes them.

use mesh_store::ServiceSpec;
use mesh_types::api::Service;

/// The spec a stored service was made from, to change some of it and store it again.
pub fn spec_of(service: &Service) -> ServiceSpec {
    ServiceSpec {
        name: service.name.clone(),
        command: service.command.clone(),
        schedule: service.schedule.clone(),
        port: service.port,
        instances: service.instances,
        size: service.size,
        health: service.health.clone(),
    }
}
