//! Where an environment's one-off work (`mesh run`, a release command) goes: its first rack,
//! on that rack's first server that is ready (registered and not lost).

use mesh_store::{Store, StoreError};
use mesh_types::Name;
use mesh_types::api::{Rack, Server, ServerState};

use super::servers::{Liveness, age, last_seen};

/// Why one-off work has nowhere to run.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error("the environment is on no rack")]
    NoRack,
    #[error(
        "no server of rack {rack} has an agent registered; is `mesh up` or `mesh agent` running?"
    )]
    NoReadyServer { rack: Name },
    #[error(
        "server {server} of rack {rack} is lost: last seen {seen} ago (no heartbeat for more \
         than {lost_after}); start its agent again (`mesh up` or `mesh agent`), then retry"
    )]
    ServerLost {
        rack: Name,
        server: Name,
        seen: String,
        lost_after: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The rack and server an environment on `racks` runs its one-off work on.
pub async fn place(
    store: &dyn Store,
    racks: &[Name],
    live: Liveness,
) -> Result<(Rack, Name), PlaceError> {
    let rack_name = racks.first().ok_or(PlaceError::NoRack)?;
    let rack = store.get_rack(rack_name.as_str()).await?;
    let servers = store.list_servers(rack_name.as_str()).await?;
    let server = first_ready(rack_name, servers, live)?;
    Ok((rack, server))
}

/// The first server of a rack that is ready now, or why there is none.
fn first_ready(rack: &Name, servers: Vec<Server>, live: Liveness) -> Result<Name, PlaceError> {
    if let Some(s) = servers.iter().find(|s| live.state(s) == ServerState::Ready) {
        return Ok(s.name.clone());
    }
    match servers.iter().find(|s| live.state(s) == ServerState::Lost) {
        Some(lost) => Err(PlaceError::ServerLost {
            rack: rack.clone(),
            server: lost.name.clone(),
            seen: age(live.now - last_seen(lost)),
            lost_after: age(live.lost_after),
        }),
        None => Err(PlaceError::NoReadyServer { rack: rack.clone() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_700_000_000_000;

    fn server(name: &str, state: ServerState) -> Server {
        Server {
            name: name.parse().unwrap(),
            rack: "local".parse().unwrap(),
            address: "127.0.0.1".into(),
            cpus: 1.0,
            memory_mb: 1024,
            state,
            last_heartbeat: Some(T),
            created_at: 1,
            version: None,
            instances: 0,
        }
    }

    fn live(now: i64) -> Liveness {
        Liveness {
            now,
            lost_after: 30_000,
        }
    }

    fn local() -> Name {
        "local".parse().unwrap()
    }

    #[test]
    fn the_first_ready_server_takes_the_work() {
        let servers = vec![
            server("a", ServerState::Draining),
            server("b", ServerState::Ready),
            server("c", ServerState::Ready),
        ];
        assert_eq!(
            first_ready(&local(), servers, live(T)).unwrap().as_str(),
            "b"
        );
    }

    #[test]
    fn placement_skips_lost_servers() {
        let quiet = Server {
            last_heartbeat: Some(T - 60_000),
            ..server("a", ServerState::Ready)
        };
        let servers = vec![
            server("a0", ServerState::Lost),
            quiet,
            server("b", ServerState::Ready),
        ];
        assert_eq!(
            first_ready(&local(), servers, live(T)).unwrap().as_str(),
            "b"
        );
    }

    #[test]
    fn a_rack_whose_only_server_is_lost_says_when_it_was_seen() {
        let quiet = Server {
            last_heartbeat: Some(T - 125_000),
            ..server("box-1", ServerState::Ready)
        };
        let e = first_ready(&local(), vec![quiet], live(T)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "server box-1 of rack local is lost: last seen 2m ago (no heartbeat for more than \
             30s); start its agent again (`mesh up` or `mesh agent`), then retry"
        );
    }

    #[test]
    fn a_rack_without_a_ready_server_has_no_place() {
        assert!(matches!(
            first_ready(&local(), vec![server("a", ServerState::Draining)], live(T)),
            Err(PlaceError::NoReadyServer { .. })
        ));
        let e = first_ready(&local(), Vec::new(), live(T)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no server of rack local has an agent registered; is `mesh up` or `mesh agent` running?"
        );
    }
}
