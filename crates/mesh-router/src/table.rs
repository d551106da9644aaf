//! The route table: host -> path prefixes -> upstream, built whole from a `RouterConfig`.
//!
//! A table is immutable once built; the router swaps it whole (arc-swap), so a request sees one
//! consistent table from lookup to its last retry.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use crate::balance::{self, InFlight, InFlightRegistry};
use crate::config::{RouterConfig, ServiceKey};
use crate::error::ConfigError;
use crate::metrics::{Metrics, RouteMetrics};

#[cfg(test)]
mod tests;

/// Routes by host, then longest path prefix.
#[derive(Debug, Default)]
pub struct RouteTable {
    /// Normalized host -> routes sorted by prefix length, longest first.
    hosts: HashMap<String, Vec<Arc<Route>>>,
    upstreams: HashMap<ServiceKey, Arc<Upstream>>,
    https_redirects: HashSet<String>,
    acme_challenges: HashMap<String, String>,
    /// Peer address -> the normalized hosts it forwards here.
    trusted_peers: HashMap<std::net::IpAddr, HashSet<String>>,
}

/// One host + path prefix bound to an upstream.
#[derive(Debug)]
pub struct Route {
    /// The endpoint (normalized host) this route belongs to.
    pub host: Arc<str>,
    /// Normalized prefix: starts with `/`, no trailing `/` unless it is the root.
    pub prefix: String,
    pub upstream: Arc<Upstream>,
    pub(crate) metrics: Arc<RouteMetrics>,
}

/// A service's instances as of this table.
#[derive(Debug)]
pub struct Upstream {
    pub key: ServiceKey,
    /// `environment/stack/service`, precomputed for logs.
    pub name: Arc<str>,
    pub instances: Vec<InstanceAddr>,
}

/// One instance as the balancer sees it.
#[derive(Debug)]
pub struct InstanceAddr {
    pub id: Arc<str>,
    pub addr: SocketAddr,
    pub healthy: bool,
    pub draining: bool,
    /// Shared with every table that lists this id, so counts survive swaps.
    pub(crate) in_flight: Arc<InFlight>,
}

impl InstanceAddr {
    /// May get new requests.
    pub fn eligible(&self) -> bool {
        self.healthy && !self.draining
    }

    /// Requests to this instance not finished yet (across table versions).
    pub fn in_flight(&self) -> usize {
        self.in_flight.get()
    }
}

impl Upstream {
    /// Picks an eligible instance not in `tried` (indexes into `instances`).
    pub fn pick(&self, tried: &[usize]) -> Option<usize> {
        balance::pick(
            &self.instances,
            balance::next_start(),
            balance::random_u64(),
            tried,
        )
    }
}

impl RouteTable {
    /// Builds a table; counters come from `registry` so draining survives swaps.
    /// Warnings name what was accepted but will not route (e.g. a route to a service with no
    /// upstream entry answers 503).
    pub fn build(
        config: &RouterConfig,
        registry: &InFlightRegistry,
        metrics: &Metrics,
    ) -> Result<(RouteTable, Vec<String>), ConfigError> {
        let mut warnings = Vec::new();
        let mut upstreams: HashMap<ServiceKey, Arc<Upstream>> = HashMap::new();
        let mut ids = HashSet::new();
        for up in &config.upstreams {
            let mut instances = Vec::with_capacity(up.instances.len());
            for inst in &up.instances {
                if inst.id.is_empty() {
                    return Err(ConfigError::EmptyInstanceId(up.service.to_string()));
                }
                if !ids.insert(inst.id.as_str()) {
                    return Err(ConfigError::DuplicateInstance(inst.id.clone()));
                }
                instances.push(InstanceAddr {
                    id: Arc::from(inst.id.as_str()),
                    addr: inst.addr,
                    healthy: inst.healthy,
                    draining: inst.draining,
                    in_flight: registry.counter(&inst.id),
                });
            }
            let upstream = Arc::new(Upstream {
                name: Arc::from(up.service.to_string()),
                key: up.service.clone(),
                instances,
            });
            if upstreams.insert(up.service.clone(), upstream).is_some() {
                return Err(ConfigError::DuplicateUpstream(up.service.to_string()));
            }
        }

        let mut hosts: HashMap<String, Vec<Arc<Route>>> = HashMap::new();
        for route in &config.routes {
            let host = normalize_host(&route.host)
                .filter(|h| h.as_str() == route.host.trim_end_matches('.').to_ascii_lowercase())
                .ok_or_else(|| ConfigError::InvalidHost(route.host.clone()))?;
            let prefix = normalize_prefix(&route.path)
                .ok_or_else(|| ConfigError::InvalidPath(route.path.clone()))?;
            let upstream = match upstreams.get(&route.service) {
                Some(up) => up.clone(),
                None => {
                    warnings.push(format!(
                        "route {host}{prefix} points at {} which has no upstream entry",
                        route.service
                    ));
                    let up = Arc::new(Upstream {
                        name: Arc::from(route.service.to_string()),
                        key: route.service.clone(),
                        instances: Vec::new(),
                    });
                    upstreams.insert(route.service.clone(), up.clone());
                    up
                }
            };
            let routes = hosts.entry(host.clone()).or_default();
            if routes.iter().any(|r| r.prefix == prefix) {
                return Err(ConfigError::DuplicateRoute(format!("{host}{prefix}")));
            }
            let host: Arc<str> = Arc::from(host);
            routes.push(Arc::new(Route {
                metrics: metrics.route(&host, &upstream.name),
                host,
                prefix,
                upstream,
            }));
        }
        for routes in hosts.values_mut() {
            routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        }

        let mut https_redirects = HashSet::new();
        for host in &config.https_redirects {
            let h = normalize_host(host).ok_or_else(|| ConfigError::InvalidHost(host.clone()))?;
            https_redirects.insert(h);
        }

        Ok((
            RouteTable {
                hosts,
                upstreams,
                https_redirects,
                acme_challenges: config.acme_challenges.clone(),
                trusted_peers: Self::peers(&config.trusted_peers),
            },
            warnings,
        ))
    }

    /// Peer address -> normalized hosts; hosts that do not normalize are left out.
    fn peers(list: &[crate::config::TrustedPeer]) -> HashMap<std::net::IpAddr, HashSet<String>> {
        let mut out: HashMap<std::net::IpAddr, HashSet<String>> = HashMap::new();
        for p in list {
            out.entry(p.ip.to_canonical())
                .or_default()
                .extend(p.hosts.iter().filter_map(|h| normalize_host(h)));
        }
        out
    }

    /// The route for a normalized host (see `normalize_host`) and a request path.
    pub fn lookup(&self, host: &str, path: &str) -> Option<&Route> {
        self.route(host, path).map(|r| &**r)
    }

    /// `lookup`, as a handle a request keeps after the table is swapped.
    pub(crate) fn route(&self, host: &str, path: &str) -> Option<&Arc<Route>> {
        self.hosts
            .get(host)?
            .iter()
            .find(|r| prefix_matches(&r.prefix, path))
    }

    /// Whether plain-HTTP requests for this normalized host are redirected to HTTPS.
    pub fn redirects_to_https(&self, host: &str) -> bool {
        self.https_redirects.contains(host)
    }

    /// Whether `ip` is a router of the platform forwarding some hosts to this one now.
    pub fn has_peer(&self, ip: std::net::IpAddr) -> bool {
        !self.trusted_peers.is_empty() && self.trusted_peers.contains_key(&ip.to_canonical())
    }

    /// Whether `ip` is a router of the platform forwarding the normalized `host` here now.
    pub fn trusts_peer(&self, ip: std::net::IpAddr, host: &str) -> bool {
        self.has_peer(ip)
            && self
                .trusted_peers
                .get(&ip.to_canonical())
                .is_some_and(|hosts| hosts.contains(host))
    }

    /// The key authorization for an HTTP-01 token.
    pub fn acme_answer(&self, token: &str) -> Option<&str> {
        self.acme_challenges.get(token).map(String::as_str)
    }

    /// The upstream of a service, if the table lists it.
    pub fn upstream(&self, key: &ServiceKey) -> Option<&Arc<Upstream>> {
        self.upstreams.get(key)
    }

    /// Every instance id this table lists.
    pub fn instance_ids(&self) -> impl Iterator<Item = &str> {
        self.upstreams
            .values()
            .flat_map(|u| u.instances.iter().map(|i| &*i.id))
    }
}

/// `Host` header or URI authority -> lowercase name without port or trailing dot.
/// `None` for something that is not a plausible host name or IP literal.
pub fn normalize_host(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let name = if let Some(rest) = raw.strip_prefix('[') {
        // IPv6 literal, with or without a port.
        let end = rest.find(']')?;
        let tail = &rest[end + 1..];
        if !(tail.is_empty() || valid_port(tail.strip_prefix(':')?)) {
            return None;
        }
        &raw[..end + 2]
    } else {
        match raw.rsplit_once(':') {
            Some((name, port)) if valid_port(port) => name,
            Some(_) => return None,
            None => raw,
        }
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'*' | b'[' | b']' | b':')
        });
    ok.then(|| name.to_ascii_lowercase())
}

fn valid_port(port: &str) -> bool {
    !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit())
}

/// `/api/` -> `/api`; `` -> `/`; `None` unless it starts with `/`.
fn normalize_prefix(path: &str) -> Option<String> {
    if path.is_empty() {
        return Some("/".to_owned());
    }
    if !path.starts_with('/') || path.contains(['?', '#']) {
        return None;
    }
    let trimmed = path.trim_end_matches('/');
    Some(if trimmed.is_empty() { "/" } else { trimmed }.to_owned())
}

/// Prefix match on path-segment boundaries.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}
