//! Where an environment's work that must run once goes: `mesh run`, a release command and its
//! cron jobs run on the first rack of the environment's list that is healthy (has a server that
//! is ready: registered and not lost), moving down the list when that rack's server is lost.
//! `mesh run --rack R` picks the rack itself.

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
        "rack {rack} is not one of the environment's racks ({racks}); pick one of them, or \
         add it with `mesh env update ENV --rack ...`"
    )]
    NotOnRack { rack: Name, racks: String },
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

/// Each rack of `racks`, in order, with its servers.
pub async fn servers_of(
    store: &dyn Store,
    racks: &[Name],
) -> Result<Vec<(Name, Vec<Server>)>, StoreError> {
    let mut out = Vec::with_capacity(racks.len());
    for rack in racks {
        out.push((rack.clone(), store.list_servers(rack.as_str()).await?));
    }
    Ok(out)
}

/// The rack (and its server) that work which must run once goes to: the first rack in the
/// environment's list with a ready server, or when none has one, why the first rack cannot
/// take it.
pub fn first_healthy(
    racks: &[(Name, Vec<Server>)],
    live: Liveness,
) -> Result<(Name, Name), PlaceError> {
    let mut first_error = None;
    for (rack, servers) in racks {
        match first_ready(rack, servers, live) {
            Ok(server) => return Ok((rack.clone(), server)),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or(PlaceError::NoRack))
}

/// The rack that runs the environment's cron jobs now, so each schedule tick runs once for the
/// whole environment: the first healthy rack (see [`first_healthy`]); none while no rack is.
pub fn cron_rack(racks: &[(Name, Vec<Server>)], live: Liveness) -> Option<Name> {
    first_healthy(racks, live).ok().map(|(rack, _)| rack)
}

/// Where one-off work goes when the caller named rack `wanted`: that rack's ready server, or
/// why not (not one of the environment's racks, or no live server there).
pub fn on_rack(
    racks: &[(Name, Vec<Server>)],
    wanted: &Name,
    live: Liveness,
) -> Result<(Name, Name), PlaceError> {
    let Some((rack, servers)) = racks.iter().find(|(r, _)| r == wanted) else {
        return Err(PlaceError::NotOnRack {
            rack: wanted.clone(),
            racks: racks
                .iter()
                .map(|(r, _)| r.as_str())
                .collect::<Vec<_>>()
                .join(","),
        });
    };
    Ok((rack.clone(), first_ready(rack, servers, live)?))
}

/// The rack and server an environment on `racks` runs its one-off work on: rack `wanted` if
/// given, else the first healthy one.
pub async fn place(
    store: &dyn Store,
    racks: &[Name],
    wanted: Option<&Name>,
    live: Liveness,
) -> Result<(Rack, Name), PlaceError> {
    let servers = servers_of(store, racks).await?;
    let (rack, server) = match wanted {
        Some(w) => on_rack(&servers, w, live)?,
        None => first_healthy(&servers, live)?,
    };
    Ok((store.get_rack(rack.as_str()).await?, server))
}

/// The first server of a rack that is ready now, or why there is none.
fn first_ready(rack: &Name, servers: &[Server], live: Liveness) -> Result<Name, PlaceError> {
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
            router: None,
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
            first_ready(&local(), &servers, live(T)).unwrap().as_str(),
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
            first_ready(&local(), &servers, live(T)).unwrap().as_str(),
            "b"
        );
    }

    #[test]
    fn a_rack_whose_only_server_is_lost_says_when_it_was_seen() {
        let quiet = Server {
            last_heartbeat: Some(T - 125_000),
            ..server("box-1", ServerState::Ready)
        };
        let e = first_ready(&local(), &[quiet], live(T)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "server box-1 of rack local is lost: last seen 2m ago (no heartbeat for more than \
             30s); start its agent again (`mesh up` or `mesh agent`), then retry"
        );
    }

    #[test]
    fn a_rack_without_a_ready_server_has_no_place() {
        assert!(matches!(
            first_ready(&local(), &[server("a", ServerState::Draining)], live(T)),
            Err(PlaceError::NoReadyServer { .. })
        ));
        let e = first_ready(&local(), &[], live(T)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no server of rack local has an agent registered; is `mesh up` or `mesh agent` running?"
        );
    }

    fn n(s: &str) -> Name {
        s.parse().unwrap()
    }

    fn lost(name: &str) -> Server {
        Server {
            last_heartbeat: Some(T - 60_000),
            ..server(name, ServerState::Ready)
        }
    }

    #[test]
    fn cron_runs_on_the_first_healthy_rack() {
        let racks = vec![
            (n("local"), vec![server("a", ServerState::Ready)]),
            (n("east"), vec![server("b", ServerState::Ready)]),
        ];
        assert_eq!(cron_rack(&racks, live(T)), Some(n("local")));
    }

    #[test]
    fn cron_skips_a_rack_whose_server_is_lost() {
        let racks = vec![
            (n("local"), vec![lost("a")]),
            (n("east"), vec![server("b", ServerState::Ready)]),
        ];
        assert_eq!(cron_rack(&racks, live(T)), Some(n("east")));
        // A rack no agent joined yet is skipped too.
        let racks = vec![
            (n("local"), Vec::new()),
            (n("east"), vec![server("b", ServerState::Ready)]),
        ];
        assert_eq!(cron_rack(&racks, live(T)), Some(n("east")));
    }

    #[test]
    fn cron_runs_nowhere_when_no_rack_is_healthy() {
        let racks = vec![
            (n("local"), vec![lost("a")]),
            (n("east"), vec![server("b", ServerState::Lost)]),
        ];
        assert_eq!(cron_rack(&racks, live(T)), None);
        assert_eq!(cron_rack(&[], live(T)), None);
    }

    #[test]
    fn one_off_work_goes_to_the_first_healthy_rack() {
        let racks = vec![
            (n("local"), vec![lost("a")]),
            (n("east"), vec![server("b", ServerState::Ready)]),
        ];
        let (rack, server) = first_healthy(&racks, live(T)).unwrap();
        assert_eq!((rack.as_str(), server.as_str()), ("east", "b"));
        // With no healthy rack, the first rack's reason is given.
        let e = first_healthy(&racks[..1], live(T)).unwrap_err();
        assert!(matches!(e, PlaceError::ServerLost { .. }), "{e}");
        assert!(matches!(
            first_healthy(&[], live(T)),
            Err(PlaceError::NoRack)
        ));
    }

    #[test]
    fn a_named_rack_must_be_the_environments_and_live() {
        let racks = vec![
            (n("local"), vec![server("a", ServerState::Ready)]),
            (n("east"), vec![lost("b")]),
        ];
        let (rack, server) = on_rack(&racks, &n("local"), live(T)).unwrap();
        assert_eq!((rack.as_str(), server.as_str()), ("local", "a"));
        let e = on_rack(&racks, &n("west"), live(T)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "rack west is not one of the environment's racks (local,east); pick one of them, or \
             add it with `mesh env update ENV --rack ...`"
        );
        // Named, a rack with no live server is refused rather than passed over.
        let e = on_rack(&racks, &n("east"), live(T)).unwrap_err();
        assert!(matches!(e, PlaceError::ServerLost { .. }), "{e}");
    }
}
