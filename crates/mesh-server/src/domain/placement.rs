//! Where an environment's one-off work (`mesh run`, a release command) goes: its first rack,
//! on that rack's first server with an agent registered.

use mesh_store::{Store, StoreError};
use mesh_types::Name;
use mesh_types::api::{Rack, Server, ServerState};

/// Why one-off work has nowhere to run.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error("the environment is on no rack")]
    NoRack,
    #[error(
        "no server of rack {rack} has an agent registered; is `mesh up` or `mesh agent` running?"
    )]
    NoReadyServer { rack: Name },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The rack and server an environment on `racks` runs its one-off work on.
pub async fn place(store: &dyn Store, racks: &[Name]) -> Result<(Rack, Name), PlaceError> {
    let rack_name = racks.first().ok_or(PlaceError::NoRack)?;
    let rack = store.get_rack(rack_name.as_str()).await?;
    let servers = store.list_servers(rack_name.as_str()).await?;
    let server = first_ready(servers).ok_or_else(|| PlaceError::NoReadyServer {
        rack: rack_name.clone(),
    })?;
    Ok((rack, server))
}

/// The first server of a rack whose agent is registered and ready.
fn first_ready(servers: Vec<Server>) -> Option<Name> {
    servers
        .into_iter()
        .find(|s| s.state == ServerState::Ready)
        .map(|s| s.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(name: &str, state: ServerState) -> Server {
        Server {
            name: name.parse().unwrap(),
            rack: "local".parse().unwrap(),
            address: "127.0.0.1".into(),
            cpus: 1.0,
            memory_mb: 1024,
            state,
            last_heartbeat: None,
            created_at: 1,
        }
    }

    #[test]
    fn the_first_ready_server_takes_the_work() {
        let servers = vec![
            server("a", ServerState::Draining),
            server("b", ServerState::Ready),
            server("c", ServerState::Ready),
        ];
        assert_eq!(first_ready(servers).unwrap().as_str(), "b");
    }

    #[test]
    fn a_rack_without_a_ready_server_has_no_place() {
        assert_eq!(first_ready(vec![server("a", ServerState::Draining)]), None);
        assert_eq!(first_ready(Vec::new()), None);
        let e = PlaceError::NoReadyServer {
            rack: "local".parse().unwrap(),
        };
        assert_eq!(
            e.to_string(),
            "no server of rack local has an agent registered; is `mesh up` or `mesh agent` running?"
        );
    }
}
