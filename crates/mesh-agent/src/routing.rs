//! What the rack's edge router needs from this agent: the routes of every environment here, for
//! each service its instances with their address and health, the certificates to serve and the
//! ACME challenges to answer. Published after every reconcile; the router takes it whole.

use std::net::SocketAddr;

use mesh_types::desired::{AcmeChallengeDoc, CertificateDoc, RouteDoc};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Routing {
    pub routes: Vec<RoutedEnv>,
    pub upstreams: Vec<Upstream>,
    /// Every environment's issued certificates, as the desired state lists them.
    pub certificates: Vec<CertificateDoc>,
    /// Every environment's HTTP-01 answers.
    pub acme_challenges: Vec<AcmeChallengeDoc>,
    /// Routers of racks being left that forward here now: trusted like proxies meanwhile, for
    /// the hosts of the environments they forward.
    pub trusted_peers: Vec<Peer>,
}

/// A router that forwards an environment's hosts here while a rack is being left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub ip: std::net::IpAddr,
    pub hosts: Vec<String>,
}

impl Routing {
    /// The routes, certificates and ACME answers of `desired`, with the instances of each
    /// service (by `upstream_key`).
    pub fn new(
        desired: &mesh_types::desired::DesiredState,
        upstreams: std::collections::BTreeMap<String, Vec<Backend>>,
    ) -> Self {
        Self::with_own_router(desired, upstreams, None)
    }

    /// [`Routing::new`] for a server whose own router takes plain HTTP at `own`: a rack being
    /// left never forwards to itself (a stale or mistaken address), it serves instead.
    pub fn with_own_router(
        desired: &mesh_types::desired::DesiredState,
        mut upstreams: std::collections::BTreeMap<String, Vec<Backend>>,
        own: Option<SocketAddr>,
    ) -> Self {
        let envs = &desired.environments;
        for env in envs.iter().filter(|e| !e.forward_to.is_empty()) {
            let mut to = forward_backends(&env.forward_to);
            to.retain(|b| Some(b.addr) != own);
            if to.is_empty() {
                continue;
            }
            for r in &env.routes {
                let key = upstream_key(
                    env.environment.as_str(),
                    r.stack.as_str(),
                    r.service.as_str(),
                );
                upstreams.insert(key, to.clone());
            }
        }
        Self {
            routes: envs
                .iter()
                .map(|e| RoutedEnv {
                    environment: e.environment.to_string(),
                    routes: e.routes.clone(),
                    https_redirects: e.https_redirects.clone(),
                })
                .collect(),
            upstreams: upstreams
                .into_iter()
                .map(|(key, instances)| Upstream { key, instances })
                .collect(),
            certificates: envs
                .iter()
                .flat_map(|e| e.certificates.iter().cloned())
                .collect(),
            acme_challenges: envs
                .iter()
                .flat_map(|e| e.acme_challenges.iter().cloned())
                .collect(),
            trusted_peers: peers(envs),
        }
    }
}

/// The routes of one environment.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutedEnv {
    pub environment: String,
    pub routes: Vec<RouteDoc>,
    /// Hosts whose plain HTTP requests go to HTTPS.
    pub https_redirects: Vec<String>,
}

/// The instances of one service: `key` is `<environment>/<stack>-<service>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Upstream {
    pub key: String,
    pub instances: Vec<Backend>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Backend {
    pub id: String,
    pub addr: SocketAddr,
    pub healthy: bool,
    /// Being replaced: finish what it has, take nothing new.
    pub draining: bool,
}

/// The upstream key of a service.
pub fn upstream_key(environment: &str, stack: &str, service: &str) -> String {
    format!("{environment}/{stack}-{service}")
}

/// The routers that forward to this rack, once each, with the hosts of the environments they
/// forward here.
fn peers(envs: &[mesh_types::desired::EnvironmentDoc]) -> Vec<Peer> {
    let mut by_ip: std::collections::BTreeMap<std::net::IpAddr, Vec<String>> =
        std::collections::BTreeMap::new();
    for e in envs {
        for ip in e
            .forwarded_from
            .iter()
            .filter_map(|a| a.parse::<SocketAddr>().ok())
            .map(|a| a.ip())
        {
            let hosts = by_ip.entry(ip).or_default();
            hosts.extend(e.routes.iter().map(|r| r.host.clone()));
            hosts.sort();
            hosts.dedup();
        }
    }
    by_ip
        .into_iter()
        .map(|(ip, hosts)| Peer { ip, hosts })
        .collect()
}

/// The routers a rack the environment is leaving forwards to, as backends (`forward:ADDR`):
/// the remote router routes by the request's host as the local one would have. Addresses that
/// do not parse are left out (the control plane checks them when servers register).
fn forward_backends(to: &[String]) -> Vec<Backend> {
    to.iter()
        .filter_map(|a| a.parse::<SocketAddr>().ok())
        .map(|addr| Backend {
            id: format!("forward:{addr}"),
            addr,
            healthy: true,
            draining: false,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use mesh_types::desired::{DesiredState, EnvironmentDoc};

    use super::*;

    fn env(name: &str, forward_to: &[&str]) -> EnvironmentDoc {
        EnvironmentDoc {
            environment: name.parse().unwrap(),
            stacks: Vec::new(),
            routes: vec![RouteDoc {
                host: format!("{name}.test"),
                path: "/".into(),
                stack: "app".parse().unwrap(),
                service: "web".parse().unwrap(),
            }],
            https_redirects: Vec::new(),
            certificates: Vec::new(),
            acme_challenges: Vec::new(),
            several_racks: true,
            forward_to: forward_to.iter().map(|s| s.to_string()).collect(),
            forwarded_from: Vec::new(),
        }
    }

    fn local(id: &str) -> Backend {
        Backend {
            id: id.into(),
            addr: "10.1.0.2:5000".parse().unwrap(),
            healthy: true,
            draining: false,
        }
    }

    #[test]
    fn a_forwarding_environment_routes_to_the_remaining_racks_routers() {
        let desired = DesiredState {
            rack: "local".parse().unwrap(),
            region: "here".parse().unwrap(),
            server_salt: None,
            environments: vec![
                env("shop", &["127.0.0.1:8081", "not an address"]),
                env("blog", &[]),
            ],
        };
        let upstreams = BTreeMap::from([
            ("shop/app-web".to_string(), vec![local("shop-1")]),
            ("blog/app-web".to_string(), vec![local("blog-1")]),
        ]);
        let routing = Routing::new(&desired, upstreams);
        let of = |key: &str| {
            routing
                .upstreams
                .iter()
                .find(|u| u.key == key)
                .map(|u| u.instances.clone())
                .unwrap()
        };
        let shop = of("shop/app-web");
        assert_eq!(shop.len(), 1, "{shop:?}");
        assert_eq!(shop[0].id, "forward:127.0.0.1:8081");
        assert_eq!(shop[0].addr, "127.0.0.1:8081".parse().unwrap());
        assert!(shop[0].healthy && !shop[0].draining);
        // Others keep their own instances.
        assert_eq!(of("blog/app-web"), vec![local("blog-1")]);
        assert!(routing.trusted_peers.is_empty());
    }

    #[test]
    fn routers_forwarding_here_are_trusted_once_each() {
        let mut shop = env("shop", &[]);
        shop.forwarded_from = vec!["127.0.0.2:80".into(), "bad".into()];
        let mut blog = env("blog", &[]);
        blog.forwarded_from = vec!["127.0.0.2:8080".into(), "[2001:db8::1]:80".into()];
        let desired = DesiredState {
            rack: "east".parse().unwrap(),
            region: "here".parse().unwrap(),
            server_salt: None,
            environments: vec![shop, blog],
        };
        let routing = Routing::new(&desired, BTreeMap::new());
        assert_eq!(
            routing.trusted_peers,
            vec![
                Peer {
                    ip: "127.0.0.2".parse().unwrap(),
                    hosts: vec!["blog.test".into(), "shop.test".into()]
                },
                Peer {
                    ip: "2001:db8::1".parse().unwrap(),
                    hosts: vec!["blog.test".into()]
                },
            ]
        );
    }

    #[test]
    fn a_rack_never_forwards_to_its_own_router() {
        let desired = DesiredState {
            rack: "local".parse().unwrap(),
            region: "here".parse().unwrap(),
            server_salt: None,
            environments: vec![env("shop", &["127.0.0.1:8080"])],
        };
        let upstreams = BTreeMap::from([("shop/app-web".to_string(), vec![local("shop-1")])]);
        let own = Some("127.0.0.1:8080".parse().unwrap());
        let routing = Routing::with_own_router(&desired, upstreams, own);
        assert_eq!(routing.upstreams[0].instances, vec![local("shop-1")]);
    }

    #[test]
    fn with_no_usable_address_the_rack_keeps_serving_itself() {
        let desired = DesiredState {
            rack: "local".parse().unwrap(),
            region: "here".parse().unwrap(),
            server_salt: None,
            environments: vec![env("shop", &["nowhere"])],
        };
        let upstreams = BTreeMap::from([("shop/app-web".to_string(), vec![local("shop-1")])]);
        let routing = Routing::new(&desired, upstreams);
        assert_eq!(routing.upstreams[0].instances, vec![local("shop-1")]);
    }
}
