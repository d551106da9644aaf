//! A rack's server: which agent may register, when a server is lost, and how servers look when
//! listed. A rack of the native runtime (the runc agent, every rack today) has one server;
//! several servers in one rack is the Kubernetes runtime's job.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use mesh_store::{Store, StoreError};
use mesh_types::agent::RegisterServer;
use mesh_types::api::{Instance, InstanceState, Rack, Server, ServerState};
use mesh_types::{Name, UnixMs};

/// How long a server may go without a heartbeat before it is lost, unless `--server-lost-after`
/// says otherwise: three heartbeats of an agent that reports every 10 s.
pub const DEFAULT_LOST_AFTER: Duration = Duration::from_secs(30);

/// "Now", and how old a server's last heartbeat may be before it is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    pub now: UnixMs,
    /// In milliseconds.
    pub lost_after: UnixMs,
}

impl Liveness {
    /// The state `server` is in now: lost once its last heartbeat is older than `lost_after`,
    /// else what is stored (a stored `lost` stays lost until a heartbeat).
    pub fn state(&self, server: &Server) -> ServerState {
        if self.now - last_seen(server) > self.lost_after {
            ServerState::Lost
        } else {
            server.state
        }
    }

    /// `servers` as they are now (see [`Liveness::state`]).
    pub fn view(&self, servers: Vec<Server>) -> Vec<Server> {
        servers
            .into_iter()
            .map(|s| Server {
                state: self.state(&s),
                ..s
            })
            .collect()
    }
}

/// When its agent was last heard of: its last heartbeat, else its registration.
pub fn last_seen(server: &Server) -> UnixMs {
    server.last_heartbeat.unwrap_or(server.created_at)
}

/// The state a heartbeat leaves a server in: a lost server is ready again, a draining one stays
/// draining.
pub fn after_heartbeat(state: ServerState) -> ServerState {
    match state {
        ServerState::Lost | ServerState::Ready => ServerState::Ready,
        ServerState::Draining => ServerState::Draining,
    }
}

/// `ms` as a short age: `12s`, `4m`, `3h`, `2d`.
pub fn age(ms: UnixMs) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

fn state_name(state: ServerState) -> &'static str {
    match state {
        ServerState::Ready => "ready",
        ServerState::Draining => "draining",
        ServerState::Lost => "lost",
    }
}

/// Why a server may not register.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(
        "rack {rack} already has server {server} ({state}, last seen {seen} ago): a rack of the \
         native runtime has one server, and several servers in one rack is the Kubernetes \
         runtime's job. Join this agent to another rack (`mesh rack create`, then that rack's \
         join token), or stop {server}'s agent: once {server} is lost (no heartbeat for \
         {lost_after}), the next server to register replaces it"
    )]
    RackHasServer {
        rack: Name,
        server: Name,
        state: &'static str,
        seen: String,
        lost_after: String,
    },
    #[error(
        "server name {server} is taken by a server of rack {rack}: instances are listed by \
         their server's name, so each server of the platform needs its own; start this agent \
         with another `--name`"
    )]
    NameTaken { server: Name, rack: Name },
    #[error(
        "router address {0:?} must be the server's own address (as registered) and a port, such as 203.0.113.7:80"
    )]
    BadRouter(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether `name` is free for a server of `rack`, given every other rack's servers (`others`,
/// as (rack, server)): a name a live server of another rack has is not. A lost one's name may
/// be taken over (an agent moved to another rack).
pub fn name_free(
    name: &Name,
    others: &[(Name, Server)],
    live: Liveness,
) -> Result<(), ServerError> {
    match others
        .iter()
        .find(|(_, s)| &s.name == name && live.state(s) != ServerState::Lost)
    {
        Some((rack, _)) => Err(ServerError::NameTaken {
            server: name.clone(),
            rack: rack.clone(),
        }),
        None => Ok(()),
    }
}

/// Whether server `name` may register in `rack`, whose servers are `existing`: the servers it
/// replaces (the lost ones, when it is new), or why not. Its own re-registration (an agent
/// restart) replaces nothing, nor does the new server of a server replacement (`incoming`,
/// see `domain::replacement`), which joins beside the server it replaces.
pub fn admit(
    rack: &Name,
    existing: &[Server],
    name: &Name,
    live: Liveness,
    incoming: bool,
) -> Result<Vec<Name>, ServerError> {
    if incoming || existing.iter().any(|s| &s.name == name) {
        return Ok(Vec::new());
    }
    if let Some(alive) = existing.iter().find(|s| live.state(s) != ServerState::Lost) {
        return Err(ServerError::RackHasServer {
            rack: rack.clone(),
            server: alive.name.clone(),
            state: state_name(live.state(alive)),
            seen: age(live.now - last_seen(alive)),
            lost_after: age(live.lost_after),
        });
    }
    Ok(existing.iter().map(|s| s.name.clone()).collect())
}

/// A server's router address as other racks' routers will dial it: the server's own address
/// (`address`, as it registers) and a port. So a join token cannot point other racks' routers
/// at somewhere else (a cloud metadata address, another network): they forward visitors there.
pub fn check_router(addr: &str, address: &str) -> Result<String, ServerError> {
    let bad = || ServerError::BadRouter(addr.to_string());
    let parsed: std::net::SocketAddr = addr.trim().parse().map_err(|_| bad())?;
    let ip = parsed.ip().to_canonical();
    let own = address.trim().parse::<std::net::IpAddr>().ok();
    let broadcast =
        matches!(ip, std::net::IpAddr::V4(v4) if v4.is_broadcast() || v4.is_link_local());
    let link_local_v6 = matches!(ip, std::net::IpAddr::V6(v6) if v6.is_unicast_link_local());
    if ip.is_unspecified()
        || ip.is_multicast()
        || broadcast
        || link_local_v6
        || parsed.port() == 0
        || own.map(|o| o.to_canonical()) != Some(ip)
    {
        return Err(bad());
    }
    Ok(parsed.to_string())
}

/// Registers (or re-registers) the agent's server in `rack`, replacing a lost server.
pub async fn register(
    store: &dyn Store,
    rack: &Rack,
    req: RegisterServer,
    live: Liveness,
) -> Result<Server, ServerError> {
    let router = req
        .router
        .as_deref()
        .map(|r| check_router(r, &req.address))
        .transpose()?;
    let existing = store.list_servers(rack.name.as_str()).await?;
    let replacement = store.get_replacement(rack.name.as_str()).await?;
    let incoming = super::replacement::admits(replacement.as_ref(), &req.name);
    let replacing = admit(&rack.name, &existing, &req.name, live, incoming)?;
    let mut others = Vec::new();
    for other in store.list_racks().await? {
        if other.name != rack.name {
            for s in store.list_servers(other.name.as_str()).await? {
                others.push((other.name.clone(), s));
            }
        }
    }
    name_free(&req.name, &others, live)?;
    let before = existing.iter().find(|s| s.name == req.name);
    let created_at = before.map_or(live.now, |s| s.created_at);
    // A server being replaced stays draining when its agent registers again.
    let state = before.map_or(ServerState::Ready, |s| after_heartbeat(s.state));
    let server = Server {
        name: req.name,
        rack: rack.name.clone(),
        address: req.address,
        cpus: req.cpus,
        memory_mb: req.memory_mb,
        state,
        last_heartbeat: Some(live.now),
        created_at,
        version: req.version,
        instances: 0,
        router,
    };
    let stored = if incoming && before.is_none() {
        let keeping: Vec<Name> = existing.iter().map(|s| s.name.clone()).collect();
        store.join_server_beside(&server, &keeping).await?
    } else {
        store.claim_server(&server, &replacing).await?
    };
    for old in existing.iter().filter(|s| replacing.contains(&s.name)) {
        tracing::warn!(
            rack = %rack.name,
            lost = %old.name,
            server = %stored.name,
            last_seen_ago = %age(live.now - last_seen(old)),
            "a new server replaced the rack's lost server; the lost server's instances are gone from the listing"
        );
    }
    Ok(stored)
}

/// The servers of some racks as instances are listed: which are lost now, and each one's rack.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ServerMap {
    pub lost: BTreeSet<Name>,
    pub rack_of: BTreeMap<Name, Name>,
}

/// The servers of `racks`: which are lost now, and each one's rack.
pub async fn server_map(
    store: &dyn Store,
    racks: &[Name],
    live: Liveness,
) -> Result<ServerMap, StoreError> {
    let mut map = ServerMap::default();
    for rack in racks {
        for s in store.list_servers(rack.as_str()).await? {
            if live.state(&s) == ServerState::Lost {
                map.lost.insert(s.name.clone());
            }
            map.rack_of.insert(s.name, rack.clone());
        }
    }
    Ok(map)
}

/// `instances` as listed: each with its server's rack, and those of a lost server `unknown`,
/// whatever it last reported.
pub fn instances_view(instances: Vec<Instance>, servers: &ServerMap) -> Vec<Instance> {
    instances
        .into_iter()
        .map(|i| {
            let rack = i
                .server
                .as_ref()
                .and_then(|s| servers.rack_of.get(s))
                .cloned();
            let state = match &i.server {
                Some(s) if servers.lost.contains(s) => InstanceState::Unknown,
                _ => i.state,
            };
            Instance { rack, state, ..i }
        })
        .collect()
}

/// Marks lost every server whose heartbeats stopped; returns them as (rack, server). Safe to
/// run from several control planes at once: each server is marked (and logged) once, and a
/// heartbeat that comes meanwhile wins.
pub async fn sweep(store: &dyn Store, live: Liveness) -> Result<Vec<(Name, Name)>, StoreError> {
    let mut marked = Vec::new();
    for rack in store.list_racks().await? {
        for s in store.list_servers(rack.name.as_str()).await? {
            if s.state == ServerState::Lost || live.state(&s) != ServerState::Lost {
                continue;
            }
            if store
                .mark_server_lost(rack.name.as_str(), s.name.as_str(), last_seen(&s))
                .await?
            {
                tracing::warn!(
                    rack = %rack.name,
                    server = %s.name,
                    last_seen_ago = %age(live.now - last_seen(&s)),
                    "server lost: no heartbeat; its instances show as unknown and one-off work goes elsewhere"
                );
                marked.push((rack.name.clone(), s.name.clone()));
            }
        }
    }
    Ok(marked)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: UnixMs = 1_700_000_000_000;

    fn n(s: &str) -> Name {
        s.parse().unwrap()
    }

    fn server(name: &str, last_heartbeat: UnixMs) -> Server {
        Server {
            name: n(name),
            rack: n("local"),
            address: "127.0.0.1".into(),
            cpus: 2.0,
            memory_mb: 1024,
            state: ServerState::Ready,
            last_heartbeat: Some(last_heartbeat),
            created_at: T,
            version: None,
            instances: 0,
            router: None,
        }
    }

    fn live(now: UnixMs) -> Liveness {
        Liveness {
            now,
            lost_after: 30_000,
        }
    }

    #[test]
    fn a_server_is_lost_only_after_the_threshold() {
        let s = server("a", T);
        assert_eq!(live(T + 30_000).state(&s), ServerState::Ready);
        assert_eq!(live(T + 30_001).state(&s), ServerState::Lost);
        // Without a heartbeat, its registration counts.
        let never = Server {
            last_heartbeat: None,
            ..server("b", 0)
        };
        assert_eq!(live(T + 1000).state(&never), ServerState::Ready);
        assert_eq!(live(T + 60_000).state(&never), ServerState::Lost);
        // Stored lost stays lost, however recent the row looks, until a heartbeat.
        let marked = Server {
            state: ServerState::Lost,
            ..server("c", T)
        };
        assert_eq!(live(T).state(&marked), ServerState::Lost);
        let viewed = live(T + 40_000).view(vec![server("d", T), server("e", T + 20_000)]);
        let states: Vec<_> = viewed.iter().map(|s| s.state).collect();
        assert_eq!(states, [ServerState::Lost, ServerState::Ready]);
    }

    #[test]
    fn a_heartbeat_makes_a_lost_server_ready_again() {
        assert_eq!(after_heartbeat(ServerState::Lost), ServerState::Ready);
        assert_eq!(after_heartbeat(ServerState::Ready), ServerState::Ready);
        assert_eq!(
            after_heartbeat(ServerState::Draining),
            ServerState::Draining
        );
    }

    #[test]
    fn the_first_server_and_its_restarts_are_admitted() {
        assert!(
            admit(&n("local"), &[], &n("a"), live(T), false)
                .unwrap()
                .is_empty()
        );
        let existing = [server("a", T - 100_000)];
        // Even lost, its own agent comes back as itself.
        assert!(
            admit(&n("local"), &existing, &n("a"), live(T), false)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_second_server_is_refused_while_the_first_is_alive() {
        let existing = [server("a", T - 2_000)];
        let e = admit(&n("local"), &existing, &n("b"), live(T), false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "rack local already has server a (ready, last seen 2s ago): a rack of the native \
             runtime has one server, and several servers in one rack is the Kubernetes \
             runtime's job. Join this agent to another rack (`mesh rack create`, then that \
             rack's join token), or stop a's agent: once a is lost (no heartbeat for 30s), the \
             next server to register replaces it"
        );
        // The new server of a replacement joins beside it, replacing nothing.
        assert!(
            admit(&n("local"), &existing, &n("b"), live(T), true)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_server_name_is_the_platforms_own() {
        let others = [(n("east"), server("box", T - 1_000))];
        let e = name_free(&n("box"), &others, live(T)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "server name box is taken by a server of rack east: instances are listed by their \
             server's name, so each server of the platform needs its own; start this agent with \
             another `--name`"
        );
        assert!(name_free(&n("other"), &others, live(T)).is_ok());
        // A lost server's name is free again.
        let lost = [(n("east"), server("box", T - 60_000))];
        assert!(name_free(&n("box"), &lost, live(T)).is_ok());
    }

    #[test]
    fn a_lost_server_is_replaced() {
        let existing = [server("a", T - 31_000)];
        assert_eq!(
            admit(&n("local"), &existing, &n("b"), live(T), false).unwrap(),
            [n("a")]
        );
        // Marked lost by a sweeper, even with a recent-looking row.
        let marked = [Server {
            state: ServerState::Lost,
            ..server("a", T)
        }];
        assert_eq!(
            admit(&n("local"), &marked, &n("b"), live(T), false).unwrap(),
            [n("a")]
        );
    }

    #[test]
    fn instances_show_their_rack_and_those_of_a_lost_server_are_unknown() {
        let instance = |id: &str, server: Option<&str>| Instance {
            id: id.into(),
            environment: n("shop"),
            stack: n("app"),
            service: n("web"),
            deployment: None,
            server: server.map(n),
            rack: None,
            state: InstanceState::Healthy,
            address: None,
            restarts: 0,
            exit_code: None,
            message: None,
            started_at: None,
            updated_at: T,
        };
        let servers = ServerMap {
            lost: BTreeSet::from([n("a")]),
            rack_of: BTreeMap::from([(n("a"), n("local")), (n("b"), n("east"))]),
        };
        let view = instances_view(
            vec![
                instance("1", Some("a")),
                instance("2", Some("b")),
                instance("3", None),
            ],
            &servers,
        );
        let states: Vec<_> = view.iter().map(|i| i.state).collect();
        assert_eq!(
            states,
            [
                InstanceState::Unknown,
                InstanceState::Healthy,
                InstanceState::Healthy
            ]
        );
        // Each shows its server's rack; one without a server has none.
        let racks: Vec<_> = view.iter().map(|i| i.rack.clone()).collect();
        assert_eq!(racks, [Some(n("local")), Some(n("east")), None]);
    }

    #[test]
    fn ages_are_short() {
        assert_eq!(age(0), "0s");
        assert_eq!(age(59_999), "59s");
        assert_eq!(age(60_000), "1m");
        assert_eq!(age(7_200_000), "2h");
        assert_eq!(age(3 * 86_400_000), "3d");
        assert_eq!(age(-5), "0s");
    }

    #[test]
    fn a_router_address_is_the_servers_own_with_a_port() {
        assert_eq!(
            check_router("203.0.113.7:80", "203.0.113.7").unwrap(),
            "203.0.113.7:80"
        );
        assert_eq!(
            check_router("127.0.0.1:8080", "127.0.0.1").unwrap(),
            "127.0.0.1:8080"
        );
        for (router, address) in [
            ("169.254.169.254:80", "169.254.169.254"), // cloud metadata
            ("10.0.0.9:80", "203.0.113.7"),            // somewhere else
            ("127.0.0.1:80", "203.0.113.7"),           // the old rack's own loopback
            ("0.0.0.0:80", "0.0.0.0"),
            ("203.0.113.7:0", "203.0.113.7"),
            ("[fe80::1]:80", "fe80::1"),
            ("224.0.0.1:80", "224.0.0.1"),
            ("box.example:80", "box.example"),
            ("203.0.113.7:80", "box.example"),
        ] {
            let e = check_router(router, address).unwrap_err();
            assert!(
                e.to_string().contains("the server's own address"),
                "{router} for {address}: {e}"
            );
        }
    }
}
