//! The rack's edge router inside an agent process: every `Routing` the agent publishes after a
//! reconcile becomes one `RouterConfig`, applied whole.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use mesh_agent::Routing;
use mesh_agent::routing::upstream_key;
use mesh_router::{
    CertificateConfig, InstanceConfig, RouteConfig, Router, RouterConfig, RouterError,
    RouterOptions, ServiceKey, UpstreamConfig,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long in-flight requests get to finish when the router stops.
const DRAIN: Duration = Duration::from_secs(5);

/// Builds the router's document from the agent's: routes of every environment, the instances
/// of every routed service, the certificates and the ACME answers.
pub fn router_config(routing: &Routing) -> RouterConfig {
    let instances: HashMap<&str, &[mesh_agent::routing::Backend]> = routing
        .upstreams
        .iter()
        .map(|u| (u.key.as_str(), u.instances.as_slice()))
        .collect();
    let mut routes = Vec::new();
    let mut seen = BTreeSet::new();
    let mut services = BTreeMap::new();
    for env in &routing.routes {
        for r in &env.routes {
            // Domains are unique platform-wide, so this only guards against a damaged document:
            // one bad pair must not make the whole update fail.
            if !seen.insert((r.host.to_ascii_lowercase(), r.path.clone())) {
                tracing::warn!(host = %r.host, path = %r.path, "router: duplicate route left out");
                continue;
            }
            let key = ServiceKey::new(&env.environment, r.stack.as_str(), r.service.as_str());
            let upstream = upstream_key(&env.environment, r.stack.as_str(), r.service.as_str());
            services.entry(key.clone()).or_insert(upstream);
            routes.push(RouteConfig {
                host: r.host.clone(),
                path: r.path.clone(),
                service: key,
            });
        }
    }
    // A routed service without running instances still gets an (empty) upstream: it answers
    // 503 "no healthy instance" rather than looking unknown.
    let mut taken = BTreeSet::new();
    let upstreams = services
        .into_iter()
        .map(|(service, key)| UpstreamConfig {
            instances: instances
                .get(key.as_str())
                .copied()
                .unwrap_or_default()
                .iter()
                // Two services whose `<stack>-<service>` names collide (stack `a-b` service
                // `web`, stack `a` service `b-web`) share an agent key; an instance may serve
                // one of them only, or the router would refuse the whole update.
                .filter(|b| {
                    let first = taken.insert(b.id.clone());
                    if !first {
                        tracing::warn!(service = %service, instance = %b.id, "router: instance already routed for a service of the same hostname");
                    }
                    first
                })
                .map(|b| InstanceConfig {
                    id: b.id.clone(),
                    addr: b.addr,
                    healthy: b.healthy,
                    draining: b.draining,
                })
                .collect(),
            service,
        })
        .collect();
    RouterConfig {
        routes,
        upstreams,
        certificates: routing
            .certificates
            .iter()
            .map(|c| CertificateConfig {
                domains: c.domains.clone(),
                chain_pem: c.chain_pem.clone(),
                key_pem: c.key_pem.clone(),
            })
            .collect(),
        https_redirects: routing
            .routes
            .iter()
            .flat_map(|e| e.https_redirects.iter().cloned())
            .collect(),
        acme_challenges: routing
            .acme_challenges
            .iter()
            .map(|c| (c.token.clone(), c.key_authorization.clone()))
            .collect(),
        default_certificate: None,
        trusted_peers: routing
            .trusted_peers
            .iter()
            .map(|p| mesh_router::TrustedPeer {
                ip: p.ip,
                hosts: p.hosts.clone(),
            })
            .collect(),
    }
}

/// A router bound to its listeners and fed by an agent.
pub struct Edge {
    http_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    router: std::sync::Weak<Router>,
    /// Turns true once a new router process has taken this one's sockets over.
    handed_over: watch::Receiver<bool>,
}

/// Where a router hands its sockets to the next router process, and what it starts with when
/// it takes them over from the previous one.
pub struct Handover {
    pub path: std::path::PathBuf,
    /// The routing to serve from the first accepted connection (the agent's cached state).
    pub initial: Routing,
    /// What the previous process handed over (`take`), if one was serving.
    pub taken: Option<Taken>,
    /// More listening sockets of this process to hand the next one (`mesh up`'s API).
    pub offer_also: Vec<std::net::TcpListener>,
}

/// The sockets a previous process handed over: its router's, its other listeners (claimed by
/// address, see `claim`), and the promise to tell it when this one serves.
pub struct Taken {
    listeners: mesh_router::Listeners,
    pub others: Vec<std::net::TcpListener>,
    serving: mesh_router::handover::Taken,
}

/// Takes the sockets of the process offering them at `path`, if one does.
pub async fn take(path: &std::path::Path) -> Option<Taken> {
    let (listeners, others, serving) = mesh_router::handover::take_with(path).await.ok()?;
    Some(Taken {
        listeners,
        others,
        serving,
    })
}

/// The handed-over listener bound to `addr` (port 0: to any port of its address but those in
/// `taken_by_others`), if there is one (removed from `others`).
pub fn claim(
    others: &mut Vec<std::net::TcpListener>,
    addr: SocketAddr,
    taken_by_others: &[SocketAddr],
) -> Option<std::net::TcpListener> {
    let i = others.iter().position(|l| {
        l.local_addr().is_ok_and(|a| {
            a == addr || (addr.port() == 0 && a.ip() == addr.ip() && !taken_by_others.contains(&a))
        })
    })?;
    Some(others.swap_remove(i))
}

impl Edge {
    /// Binds the listeners (or uses those `handover.taken` holds: nothing queued on them is
    /// lost), then applies every routing snapshot the agent publishes; serves the router's
    /// `/metrics` on `metrics` if given. With a `handover`, offers this router's sockets (and
    /// the metrics listener, and `offer_also`) to the next process at `handover.path`.
    pub async fn start_with_handover(
        http: SocketAddr,
        https: Option<SocketAddr>,
        metrics: Option<SocketAddr>,
        options: RouterOptions,
        routing: watch::Receiver<Routing>,
        mut handover: Option<Handover>,
    ) -> Result<Edge, RouterError> {
        let mut taken = handover.as_mut().and_then(|h| h.taken.take());
        let metrics_listener = match metrics {
            Some(addr) => {
                let bind_err = |e| RouterError::Bind { addr, source: e };
                let inherited = taken.as_mut().and_then(|t| claim(&mut t.others, addr, &[]));
                Some(match inherited {
                    Some(l) => {
                        l.set_nonblocking(true).map_err(bind_err)?;
                        tokio::net::TcpListener::from_std(l).map_err(bind_err)?
                    }
                    None => tokio::net::TcpListener::bind(addr)
                        .await
                        .map_err(bind_err)?,
                })
            }
            None => None,
        };
        // What the next process gets: the metrics listener too, and what the caller adds.
        let mut offer_also = Vec::new();
        if let Some(l) = &metrics_listener {
            use std::os::fd::AsFd;
            if let Ok(fd) = l.as_fd().try_clone_to_owned() {
                offer_also.push(std::net::TcpListener::from(fd));
            }
        }
        if let Some(h) = handover.as_mut() {
            offer_also.append(&mut h.offer_also);
        }
        let mut serving = None;
        let router = match (&handover, taken) {
            (Some(h), Some(t)) => {
                let (router, _) =
                    Router::take_over(t.listeners, options, router_config(&h.initial))?;
                tracing::info!(path = %h.path.display(), "took the router's sockets over from the previous process");
                serving = Some(t.serving);
                router
            }
            // Nobody offered: the first router on this server.
            _ => Router::bind_with(http, https, options).await?,
        };
        let http_addr = router.http_addr();
        let router = std::sync::Arc::new(router);
        let (stop, stopped) = watch::channel(false);
        if let Some(listener) = metrics_listener {
            let handle = router.metrics();
            let mut until = stopped.clone();
            tokio::spawn(async move {
                let stop = async move {
                    let _ = until.wait_for(|s| *s).await;
                };
                if let Err(e) = mesh_router::serve_metrics(listener, handle, stop).await {
                    tracing::warn!(error = %e, "router metrics listener stopped");
                }
            });
        }
        let (handed, handed_over) = watch::channel(false);
        let offer_at = handover.as_ref().map(|h| (h.path.clone(), offer_also));
        let took_over = serving.is_some();
        let edge = Edge {
            http_addr,
            stop,
            router: std::sync::Arc::downgrade(&router),
            task: tokio::spawn(feed(router, routing, stopped, offer_at, took_over, handed)),
            handed_over,
        };
        if let Some(t) = serving {
            // The previous router stops accepting and drains once it hears this.
            if let Err(e) = t.serving().await {
                tracing::warn!(error = %e, "could not tell the previous router this one serves");
            }
        }
        Ok(edge)
    }

    /// Where the router takes plain HTTP, as bound.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Resolves once a new router process has taken this one's sockets over.
    pub async fn handed_over(&self) {
        let mut rx = self.handed_over.clone();
        let _ = rx.wait_for(|h| *h).await;
    }

    /// How many requests the router has in flight to an instance: what the agent waits on
    /// before it stops a replaced instance. Zero once the router is gone.
    pub fn in_flight(&self) -> mesh_agent::InFlight {
        let router = self.router.clone();
        std::sync::Arc::new(move |id: &str| router.upgrade().map_or(0, |r| r.in_flight(id)))
    }

    /// Stops accepting, lets requests in flight finish (bounded), then closes.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn feed(
    router: std::sync::Arc<Router>,
    mut routing: watch::Receiver<Routing>,
    mut stop: watch::Receiver<bool>,
    offer_at: Option<(std::path::PathBuf, Vec<std::net::TcpListener>)>,
    took_over: bool,
    handed: watch::Sender<bool>,
) {
    {
        // Offers this router's sockets to the next process, for as long as this one serves.
        let offer = async {
            match &offer_at {
                Some((path, also)) => mesh_router::handover::offer_with(path, &router, also).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(offer);
        // A router that took over keeps the config it started with until the agent has published
        // its own (the agent's first snapshot is empty until it has reconciled).
        let mut skip = took_over;
        loop {
            if skip {
                skip = false;
            } else {
                apply(&router, &routing.borrow_and_update());
            }
            tokio::select! {
                changed = routing.changed() => if changed.is_err() { break },
                _ = stop.wait_for(|s| *s) => break,
                offered = &mut offer => {
                    match offered {
                        Ok(()) => {
                            tracing::info!("a new router process took the sockets over; draining");
                            let _ = handed.send(true);
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot offer the router's sockets to a successor"),
                    }
                    break;
                }
            }
        }
    }
    // The agent's in-flight probe holds the router only for the moment of a call.
    let mut router = router;
    let router = loop {
        match std::sync::Arc::try_unwrap(router) {
            Ok(r) => break r,
            Err(shared) => {
                router = shared;
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
    };
    let report = router.shutdown(DRAIN).await;
    if !report.clean {
        tracing::warn!(
            forced = report.forced,
            "router: connections closed with requests in flight"
        );
    }
}

fn apply(router: &Router, routing: &Routing) {
    match router.update(router_config(routing)) {
        Ok(report) => {
            for e in &report.certificate_errors {
                tracing::warn!(error = %e, "router: certificate left out");
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "router: the new routes were refused; the previous ones stay")
        }
    }
}

#[cfg(test)]
#[path = "edge/tests.rs"]
mod tests;
