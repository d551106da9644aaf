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
}

impl Routing {
    /// The routes, certificates and ACME answers of `desired`, with the instances of each
    /// service (by `upstream_key`).
    pub fn new(
        desired: &mesh_types::desired::DesiredState,
        upstreams: std::collections::BTreeMap<String, Vec<Backend>>,
    ) -> Self {
        let envs = &desired.environments;
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
