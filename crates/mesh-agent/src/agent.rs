//! The agent, shaped like a controller: the runner (`runner.rs`) keeps the desired state current
//! (watch stream, cached on disk) and reconciles (`reconcile.rs`) on every change and whenever
//! the [`policy`] says to look again; a pass observes, lets the pure planner ([`crate::plan`])
//! decide, and carries the actions out (`instances.rs`, `networks.rs`); then the agent publishes
//! routing, log sources and status (`publish.rs`). Its mutable state (`state.rs`) sits behind one
//! lock.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mesh_runtime::{Ipv4Net, Runtime};
use mesh_types::{Name, UnixMs};
use tokio::sync::watch;

use crate::cache::StateCache;
use crate::gateway::Gateway;
use crate::images::Images;
use crate::networks::Subnets;

mod heartbeat;
mod instances;
mod networks;
pub mod policy;
mod publish;
mod reconcile;
mod runner;
mod state;

pub use reconcile::ReconcileError;
pub(crate) use state::NetworkPin;
use state::State;

#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub api_url: String,
    pub join_token: String,
    /// The agent's own files: the cached desired state and its key, subnets, log positions,
    /// images.
    pub data_dir: PathBuf,
    pub server_name: Name,
    /// How the control plane and routers reach this server.
    pub address: String,
    /// Environments get /24s from this pool.
    pub subnet_pool: Ipv4Net,
    pub tick: Duration,
    /// How long an instance gets between SIGTERM and SIGKILL.
    pub stop_grace: Duration,
    /// Serve `<stack>-<service>` by DNS on each environment's gateway.
    pub dns: bool,
    /// Let instances reach outside their environment through NAT (the host must forward).
    pub egress: bool,
}

impl AgentOptions {
    pub fn new(api_url: &str, join_token: &str, data_dir: PathBuf, server_name: Name) -> Self {
        AgentOptions {
            api_url: api_url.to_string(),
            join_token: join_token.to_string(),
            data_dir,
            server_name,
            address: "127.0.0.1".into(),
            subnet_pool: Ipv4Net::new(Ipv4Addr::new(10, 231, 0, 0), 16)
                .unwrap_or_else(|e| panic!("{e}")),
            tick: Duration::from_millis(500),
            stop_grace: Duration::from_secs(10),
            dns: true,
            egress: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("agent state in {path}: {message}")]
    State { path: PathBuf, message: String },
}

/// How many requests the router has in flight to an instance (by id).
pub type InFlight = Arc<dyn Fn(&str) -> usize + Send + Sync>;

/// `<stack>-<service>` to addresses, per environment: what DNS answers.
type Names = HashMap<String, BTreeMap<String, Vec<Ipv4Addr>>>;

pub struct Agent {
    opts: AgentOptions,
    runtime: Arc<dyn Runtime>,
    gateway: Gateway,
    cache: StateCache,
    images: Images,
    /// Published after every reconcile: each environment's DNS responder reads it.
    names: watch::Sender<Names>,
    /// Published after every reconcile: the rack's edge router follows it.
    routing: watch::Sender<crate::routing::Routing>,
    /// Everything else that changes; see [`Agent::state`].
    state: Mutex<State>,
    /// When the control plane last took a heartbeat (registration or status report), in ms.
    last_heartbeat: AtomicI64,
    /// Where this server's edge router takes plain HTTP, once it runs (`set_router`).
    router: std::sync::OnceLock<std::net::SocketAddr>,
    /// The registration changed (the router started): register again at the next heartbeat.
    reregister: std::sync::atomic::AtomicBool,
}

/// Where other racks' routers reach a router bound to `bound` on a server reached at `address`
/// (`--address`, an IP address): that address with the router's port, when the router listens
/// there (bound to it, or to every address). None otherwise: a router bound to loopback on a
/// server others reach at a public address is not reachable from other racks.
pub fn router_address(bound: std::net::SocketAddr, address: &str) -> Option<std::net::SocketAddr> {
    let ip: std::net::IpAddr = address.trim().parse().ok()?;
    if ip.is_unspecified() || !(bound.ip().is_unspecified() || bound.ip() == ip) {
        return None;
    }
    Some(std::net::SocketAddr::new(ip, bound.port()))
}

pub fn now_ms() -> UnixMs {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Agent {
    pub fn new(opts: AgentOptions, runtime: Arc<dyn Runtime>) -> Result<Arc<Self>, AgentError> {
        let state_err = |message: String| AgentError::State {
            path: opts.data_dir.clone(),
            message,
        };
        let cache = StateCache::open(&opts.data_dir).map_err(|e| state_err(e.to_string()))?;
        let subnets = Subnets::open(&opts.data_dir, opts.subnet_pool)
            .map_err(|e| state_err(e.to_string()))?;
        let gateway =
            Gateway::new(&opts.api_url, &opts.join_token).map_err(|e| state_err(e.to_string()))?;
        Ok(Arc::new(Agent {
            images: Images::new(
                opts.data_dir.join("images"),
                Some(Arc::new(gateway.clone()) as Arc<dyn crate::images::BlobSource>),
            ),
            gateway,
            cache,
            names: watch::channel(Names::new()).0,
            routing: watch::channel(crate::routing::Routing::default()).0,
            state: Mutex::new(State::new(subnets)),
            last_heartbeat: AtomicI64::new(0),
            router: std::sync::OnceLock::new(),
            reregister: std::sync::atomic::AtomicBool::new(false),
            runtime,
            opts,
        }))
    }

    /// The edge router of this server takes plain HTTP on `bound`; other racks' routers reach
    /// it at [`router_address`] of it, which the next heartbeat registers.
    pub fn set_router(&self, bound: std::net::SocketAddr) {
        if let Some(addr) = router_address(bound, &self.opts.address)
            && self.router.set(addr).is_ok()
        {
            self.reregister
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    pub(crate) fn cache(&self) -> &StateCache {
        &self.cache
    }

    pub(crate) fn runtime(&self) -> &Arc<dyn Runtime> {
        &self.runtime
    }

    pub(crate) fn server_name(&self) -> &Name {
        &self.opts.server_name
    }

    pub(crate) async fn prepare_network(&self, env: &str) -> Result<(), String> {
        self.ensure_network(env).await
    }

    /// Keeps `env`'s network until the guard is dropped.
    pub(crate) fn pin_network(self: &Arc<Self>, env: &str) -> NetworkPin {
        NetworkPin::new(self, env)
    }

    pub(crate) async fn remove_instance(&self, id: &str) {
        self.remove(id).await
    }

    /// Lets the agent ask the router how many requests an instance still has, so a replaced
    /// instance is stopped only once they are done.
    pub fn set_in_flight(&self, probe: InFlight) {
        self.state().in_flight = Some(probe);
    }

    /// Routes and the instances behind them, for the rack's edge router; updated after every
    /// reconcile.
    pub fn routing(&self) -> watch::Receiver<crate::routing::Routing> {
        self.routing.subscribe()
    }

    pub fn data_dir(&self) -> &std::path::Path {
        &self.opts.data_dir
    }
}
