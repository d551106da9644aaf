//! The router's input: one serde document the agent derives from the desired state.
//!
//! A new `RouterConfig` replaces the previous one whole (see `Router::update`); nothing here is
//! merged with what came before, except the per-instance in-flight counters (keyed by instance id).

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// Everything the router routes, serves and answers, as one replaceable document.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterConfig {
    /// Host + path prefix -> service.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// The instances of every service a route points at.
    #[serde(default)]
    pub upstreams: Vec<UpstreamConfig>,
    /// TLS certificates, chosen by SNI.
    #[serde(default)]
    pub certificates: Vec<CertificateConfig>,
    /// Hosts whose plain-HTTP requests are redirected to HTTPS (ACME challenges excepted).
    #[serde(default)]
    pub https_redirects: Vec<String>,
    /// HTTP-01 challenge answers: token -> key authorization.
    #[serde(default)]
    pub acme_challenges: HashMap<String, String>,
    /// A domain of one of `certificates`, served to TLS clients that send no usable SNI
    /// (old clients, or a bare IP address). Without it such handshakes fail.
    #[serde(default)]
    pub default_certificate: Option<String>,
    /// Other routers of the platform that forward to this one now (a rack an environment is
    /// leaving): trusted like `RouterOptions::trusted_proxies` while they are listed, for the
    /// hosts they forward only, so the visitor's address and HTTPS-ness carry over.
    #[serde(default)]
    pub trusted_peers: Vec<TrustedPeer>,
}

/// A router that forwards some hosts to this one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedPeer {
    pub ip: std::net::IpAddr,
    /// The hosts (endpoint domains) it forwards here; its forwarding headers count for these.
    pub hosts: Vec<String>,
}

/// One routing rule of an endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The endpoint's domain, without port (matched case-insensitively).
    pub host: String,
    /// Path prefix, matched on segment boundaries: `/api` matches `/api` and `/api/x`, not `/apix`.
    #[serde(default = "root_path")]
    pub path: String,
    /// The service that answers.
    pub service: ServiceKey,
}

fn root_path() -> String {
    "/".to_owned()
}

/// Names a service platform-wide: environment, stack, service.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceKey {
    pub environment: String,
    pub stack: String,
    pub service: String,
}

impl ServiceKey {
    pub fn new(environment: &str, stack: &str, service: &str) -> Self {
        Self {
            environment: environment.to_owned(),
            stack: stack.to_owned(),
            service: service.to_owned(),
        }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.environment, self.stack, self.service)
    }
}

/// A service and its instances as the agent last saw them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    pub service: ServiceKey,
    #[serde(default)]
    pub instances: Vec<InstanceConfig>,
}

/// One instance: where it listens and whether it may get new requests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceConfig {
    /// Stable across config updates: in-flight counts are kept by this id.
    pub id: String,
    pub addr: SocketAddr,
    /// Passing its health check; unhealthy instances get no requests.
    #[serde(default = "yes")]
    pub healthy: bool,
    /// Being stopped: no new requests, in-flight ones finish.
    #[serde(default)]
    pub draining: bool,
}

fn yes() -> bool {
    true
}

/// A certificate chain and its private key, PEM, for the listed domains.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateConfig {
    /// Exact names (`shop.example.com`) or one-label wildcards (`*.example.com`).
    pub domains: Vec<String>,
    /// Leaf first, then intermediates.
    pub chain_pem: String,
    pub key_pem: String,
}

impl fmt::Debug for CertificateConfig {
    // Keeps private keys out of logs and panics.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateConfig")
            .field("domains", &self.domains)
            .field("chain_pem", &format_args!("{} bytes", self.chain_pem.len()))
            .field("key_pem", &"<redacted>")
            .finish()
    }
}
