//! The agent of a Kubernetes rack, shaped like the native agent's controller: it follows the
//! rack's desired state on the watch stream (cached on disk, sealed, so the cluster keeps its
//! objects and the router keeps routing while the control plane is away), reconciles it into
//! the cluster on every change and every tick (`apply.rs`), lists the rack's pods to report them
//! as instances and to feed the edge router, ships their logs (`logs.rs`) and does the one-off
//! work of `mesh run` and `mesh exec` (`tasks.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use crate::cache::StateCache;
use crate::gateway::Gateway;
use crate::routing::Routing;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};
use mesh_types::agent::{AgentRack, RegisterServer, StatusReport};
use mesh_types::api::Instance;
use mesh_types::api::RackRuntime;
use mesh_types::desired::{DesiredState, WatchEvent};
use mesh_types::{Name, UnixMs};
use tokio::sync::watch;

use super::apply::Applier;
use super::objects::{self, Context};
use mesh_kube::{KubeError, names};

/// The file (sealed) of the rack as last seen, with its cluster's kubeconfig.
const RACK_CACHE: &str = "rack";

/// Ended one-off pods are removed after this long (their task removes them after 30 s; this
/// catches those whose agent restarted meanwhile).
const ONEOFF_KEEP_MS: i64 = 60_000;

/// A status report goes out at least this often (it is the agent's heartbeat too).
const HEARTBEAT_MS: UnixMs = 10_000;

#[derive(Debug, Clone)]
pub struct KubeAgentOptions {
    pub api_url: String,
    pub join_token: String,
    /// The agent's own files: the cached desired state and its key, log positions.
    pub data_dir: std::path::PathBuf,
    pub server_name: Name,
    /// Where the rack's router is reached from the cluster's pods' point of view: the address
    /// its requests to pods come from (let in by every namespace's NetworkPolicy).
    pub address: String,
    /// The cluster's kubeconfig (`--kubeconfig`), else the one the control plane keeps for the
    /// rack.
    pub kubeconfig: Option<String>,
    pub tick: Duration,
    /// Seconds a pod gets between SIGTERM and SIGKILL.
    pub stop_grace_s: i64,
    /// Seconds a replaced web pod keeps serving after it left the routers.
    pub drain_s: i64,
}

impl KubeAgentOptions {
    pub fn new(
        api_url: &str,
        join_token: &str,
        data_dir: std::path::PathBuf,
        server_name: Name,
    ) -> Self {
        KubeAgentOptions {
            api_url: api_url.to_string(),
            join_token: join_token.to_string(),
            data_dir,
            server_name,
            address: "127.0.0.1".into(),
            kubeconfig: None,
            tick: Duration::from_millis(500),
            stop_grace_s: 10,
            drain_s: 5,
        }
    }
}

/// What this process is for the rack: its agent (a registered server that reconciles, reports
/// and runs one-off work) or only one of its routers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Agent,
    Router,
}

pub struct KubeAgent {
    pub(crate) opts: KubeAgentOptions,
    pub(crate) gateway: Gateway,
    cache: StateCache,
    pub(crate) client: kube::Client,
    pub(crate) rack: Name,
    routing: watch::Sender<Routing>,
    router: std::sync::OnceLock<std::net::SocketAddr>,
    last_heartbeat: AtomicI64,
}

impl std::fmt::Debug for KubeAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeAgent")
            .field("rack", &self.rack)
            .finish()
    }
}

pub fn now_ms() -> UnixMs {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl KubeAgent {
    /// Connects to the cluster (the kubeconfig given, or the rack's from the control plane) and
    /// checks it grants every right the agent needs.
    pub async fn connect(opts: KubeAgentOptions) -> Result<Arc<Self>, KubeError> {
        let gateway = Gateway::new(&opts.api_url, &opts.join_token)
            .map_err(|e| KubeError::Unreachable(e.to_string()))?;
        let cache = StateCache::open(&opts.data_dir)
            .map_err(|e| KubeError::Kubeconfig(format!("the agent's data directory: {e}")))?;
        // The rack and its cluster, kept sealed so a restart during a control plane outage
        // still reaches the cluster (and the router keeps routing).
        let rack: AgentRack = match gateway.rack().await {
            Ok(r) => {
                if let Err(e) = cache.save_named(RACK_CACHE, &r) {
                    tracing::warn!(error = %e, "cannot keep the rack's cluster on disk");
                }
                r
            }
            Err(e) => match cache.load_named::<AgentRack>(RACK_CACHE) {
                Ok(Some(r)) => {
                    tracing::warn!(error = %e, "control plane unreachable; using the rack's cluster as last seen");
                    r
                }
                _ => {
                    return Err(KubeError::Kubeconfig(format!(
                        "cannot ask the control plane for the rack: {e}"
                    )));
                }
            },
        };
        if rack.runtime != RackRuntime::Kubernetes {
            return Err(KubeError::Kubeconfig(format!(
                "rack {} runs the {} runtime, not kubernetes",
                rack.name, rack.runtime
            )));
        }
        let kubeconfig = match (&opts.kubeconfig, rack.kubeconfig) {
            (Some(k), _) => k.clone(),
            (None, Some(k)) => k,
            (None, None) => {
                return Err(KubeError::Kubeconfig(format!(
                    "rack {} has no kubeconfig at the control plane; pass --kubeconfig FILE",
                    rack.name
                )));
            }
        };
        let client = mesh_kube::client::connect(&kubeconfig).await?;
        let version = mesh_kube::check::preflight(&client).await?;
        tracing::info!(rack = %rack.name, cluster = %version, "connected to the rack's cluster");
        Ok(Arc::new(KubeAgent {
            gateway,
            cache,
            client,
            rack: rack.name,
            routing: watch::channel(Routing::default()).0,
            router: std::sync::OnceLock::new(),
            last_heartbeat: AtomicI64::new(0),
            opts,
        }))
    }

    /// Routes and the pods behind them, for the rack's edge router.
    pub fn routing(&self) -> watch::Receiver<Routing> {
        self.routing.subscribe()
    }

    /// What a starting router serves until the first pass: the cached desired state's routes
    /// with the pods that run now.
    pub async fn initial_routing(&self) -> Routing {
        let Ok(Some(state)) = self.cache.load() else {
            return Routing::default();
        };
        let pods = self.pods().await.unwrap_or_default();
        Routing::new(&state, super::observe::backends(&pods))
    }

    /// The edge router of this agent takes plain HTTP on `bound`; other racks' routers reach it
    /// at [`crate::agent::router_address`] of it.
    pub fn set_router(&self, bound: std::net::SocketAddr) {
        if let Some(addr) = crate::agent::router_address(bound, &self.opts.address) {
            let _ = self.router.set(addr);
        }
    }

    pub(crate) fn context(&self) -> Result<Context, KubeError> {
        Ok(Context {
            registry: mesh_kube::install::registry_host(&self.opts.api_url)?,
            pull_token: self.opts.join_token.clone(),
            router_sources: Vec::new(),
            stop_grace_s: self.opts.stop_grace_s,
            drain_s: self.opts.drain_s,
        })
    }

    /// Where routers reach pods from: this agent's address and every node's internal address
    /// (a router on a node's host network).
    async fn router_sources(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Ok(ip) = self.opts.address.parse::<std::net::Ipv4Addr>() {
            out.push(format!("{ip}/32"));
        }
        match Api::<Node>::all(self.client.clone())
            .list(&ListParams::default())
            .await
        {
            Ok(nodes) => {
                for n in nodes.items {
                    for a in n.status.and_then(|s| s.addresses).unwrap_or_default() {
                        if a.type_ == "InternalIP"
                            && let Ok(ip) = a.address.parse::<std::net::Ipv4Addr>()
                        {
                            out.push(format!("{ip}/32"));
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list the cluster's nodes"),
        }
        out.sort();
        out.dedup();
        out
    }

    fn registration(&self) -> RegisterServer {
        RegisterServer {
            name: self.opts.server_name.clone(),
            address: self.opts.address.clone(),
            cpus: std::thread::available_parallelism()
                .map(|n| n.get() as f64)
                .unwrap_or(1.0),
            memory_mb: 0,
            version: Some(env!("CARGO_PKG_VERSION").to_string()),
            router: self.router.get().map(|a| a.to_string()),
        }
    }

    /// Takes the data directory (waiting for a previous process to hand it over) and follows
    /// the watch stream as `role` from the cached desired state on: the lock to hold, the
    /// desired state as it changes, and the task following the stream. `None` if `shutdown`
    /// came first or the directory cannot be locked.
    async fn follow(
        self: &Arc<Self>,
        shutdown: &mut watch::Receiver<bool>,
        role: Role,
    ) -> Option<(
        crate::handover::DataDirLock,
        watch::Receiver<Option<DesiredState>>,
        tokio::task::JoinHandle<()>,
    )> {
        let lock = tokio::select! {
            lock = crate::handover::DataDirLock::acquire(&self.opts.data_dir) => match lock {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(error = %e, "cannot lock the data directory");
                    return None;
                }
            },
            _ = shutdown.changed() => return None,
        };
        let cached = self.cache.load().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "ignoring the cached desired state");
            None
        });
        let (tx, rx) = watch::channel(cached);
        let watcher = tokio::spawn(self.clone().watch_loop(tx, shutdown.clone(), role));
        Some((lock, rx, watcher))
    }

    /// Waits for the next pass: a change of the desired state or a tick. False once
    /// `shutdown` turned true.
    async fn wait_for_pass(
        &self,
        shutdown: &mut watch::Receiver<bool>,
        desired: &mut watch::Receiver<Option<DesiredState>>,
    ) -> bool {
        tokio::select! {
            _ = shutdown.changed() => return false,
            _ = desired.changed() => {}
            _ = tokio::time::sleep(self.opts.tick) => {}
        }
        !*shutdown.borrow()
    }

    /// Runs until `shutdown` turns true. What it made in the cluster keeps running after.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let Some((_lock, mut rx, watcher)) = self.follow(&mut shutdown, Role::Agent).await else {
            return;
        };
        let shipper = tokio::spawn(super::logs::run(self.clone(), shutdown.clone()));
        let mut applier = Applier::new(self.client.clone(), self.rack.as_str());
        let mut last_report: Option<(Vec<Instance>, UnixMs)> = None;
        let mut sources: (Vec<String>, UnixMs) = (Vec::new(), 0);
        loop {
            let desired = rx.borrow_and_update().clone();
            if let Some(d) = &desired {
                if now_ms() - sources.1 > 30_000 {
                    sources = (self.router_sources().await, now_ms());
                }
                if let Err(e) = self.reconcile(&mut applier, d, &sources.0).await {
                    tracing::warn!(error = %e, "reconcile stopped early; trying again");
                }
            }
            last_report = self.observe(desired.as_ref(), last_report).await;
            if !self.wait_for_pass(&mut shutdown, &mut rx).await {
                break;
            }
        }
        tracing::debug!("reconcile loop stopped");
        let _ = watcher.await;
        tracing::debug!("watch stream closed");
        let _ = shipper.await;
        tracing::debug!("log shipper stopped");
    }

    async fn reconcile(
        &self,
        applier: &mut Applier,
        desired: &DesiredState,
        sources: &[String],
    ) -> Result<(), KubeError> {
        let mut ctx = self.context()?;
        ctx.router_sources = sources.to_vec();
        let mut runnable = desired.clone();
        for env in &mut runnable.environments {
            for stack in &mut env.stacks {
                if let Some(why) = objects::unservable(stack) {
                    tracing::warn!(environment = %env.environment, "{why}");
                    stack.image = None;
                }
            }
        }
        let done = applier.pass(objects::wanted(&runnable, &ctx)).await?;
        for (env, why) in &done.refused {
            tracing::error!(environment = %env, "{why}");
        }
        if done.applied + done.deleted > 0 {
            tracing::debug!(applied = done.applied, deleted = done.deleted, "reconciled");
        }
        Ok(())
    }

    /// The rack's pods: every one this rack made, in every namespace.
    pub(crate) async fn pods(&self) -> Result<Vec<Pod>, KubeError> {
        Ok(Api::<Pod>::all(self.client.clone())
            .list(&ListParams::default().labels(&names::owned_selector(self.rack.as_str())))
            .await
            .map_err(|e| KubeError::api("listing the rack's pods", e))?
            .items)
    }

    /// The routes of `desired` to the ready ones of `pods`, for the router of this process.
    fn publish_routing(&self, desired: &DesiredState, pods: &[Pod]) {
        let routing = Routing::with_own_router(
            desired,
            super::observe::backends(pods),
            self.router.get().copied(),
        );
        self.routing.send_if_modified(|r| {
            let changed = *r != routing;
            *r = routing;
            changed
        });
    }

    /// Runs a router's half only until `shutdown` turns true: follows the rack's routes and
    /// pods and publishes them to this process's router, registering no server and changing
    /// nothing in the cluster (`mesh router --routes-only`: a router on each of the cluster's
    /// nodes, beside the rack's one agent).
    pub async fn route(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let Some((_lock, mut rx, watcher)) = self.follow(&mut shutdown, Role::Router).await else {
            return;
        };
        loop {
            let desired = rx.borrow_and_update().clone();
            if let Some(d) = &desired {
                match self.pods().await {
                    Ok(pods) => self.publish_routing(d, &pods),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot list pods; routing stays as it was")
                    }
                }
            }
            if !self.wait_for_pass(&mut shutdown, &mut rx).await {
                break;
            }
        }
        let _ = watcher.await;
    }

    /// Lists the pods, publishes the routing, and reports the instances when they changed
    /// (or every ten seconds: the heartbeat).
    async fn observe(
        &self,
        desired: Option<&DesiredState>,
        last: Option<(Vec<Instance>, UnixMs)>,
    ) -> Option<(Vec<Instance>, UnixMs)> {
        let pods = match self.pods().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list pods; routing stays as it was");
                return last;
            }
        };
        if let Some(d) = desired {
            self.publish_routing(d, &pods);
        }
        let now = now_ms();
        for (ns, name) in super::observe::expired_oneoffs(&pods, now, ONEOFF_KEEP_MS) {
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
            if let Err(e) = api
                .delete(&name, &kube::api::DeleteParams::background())
                .await
            {
                tracing::debug!(pod = %name, error = %e, "cannot remove an ended one-off pod yet");
            }
        }
        // Until the first desired state there is nothing to say which pods are the rack's now.
        let Some(desired) = desired else {
            return last;
        };
        let mut instances: Vec<Instance> = crate::report::placed(
            pods.iter()
                .filter_map(|p| super::observe::instance(p, &self.opts.server_name, now))
                .collect(),
            desired,
        );
        instances.sort_by(|a, b| a.id.cmp(&b.id));
        let strip = |v: &[Instance]| {
            v.iter()
                .map(|i| Instance {
                    updated_at: 0,
                    ..i.clone()
                })
                .collect::<Vec<_>>()
        };
        let quiet = now - self.last_heartbeat.load(Ordering::Relaxed) < HEARTBEAT_MS;
        if quiet
            && last
                .as_ref()
                .is_some_and(|(prev, _)| strip(prev) == strip(&instances))
        {
            return last;
        }
        let report = StatusReport {
            server: self.opts.server_name.clone(),
            instances: instances.clone(),
        };
        match self.gateway.status(&report).await {
            Ok(()) => {
                self.last_heartbeat.store(now, Ordering::Relaxed);
                Some((instances, now))
            }
            Err(e) => {
                tracing::debug!(error = %e, "status report not delivered");
                last
            }
        }
    }

    /// Registers (the agent), then follows the watch stream, reconnecting with backoff.
    async fn watch_loop(
        self: Arc<Self>,
        tx: watch::Sender<Option<DesiredState>>,
        mut shutdown: watch::Receiver<bool>,
        role: Role,
    ) {
        let mut backoff: Option<Duration> = None;
        loop {
            let session = async {
                let mut stream = match role {
                    Role::Agent => {
                        self.gateway.register(&self.registration()).await?;
                        self.last_heartbeat.store(now_ms(), Ordering::Relaxed);
                        self.gateway.watch(&self.opts.server_name).await?
                    }
                    Role::Router => self.gateway.watch_rack().await?,
                };
                backoff = None;
                while let Some(event) = stream.next().await? {
                    match event {
                        WatchEvent::Snapshot { state, .. } => {
                            if let Err(e) = self.cache.save(&state) {
                                tracing::warn!(error = %e, "cannot cache the desired state");
                            }
                            tx.send_replace(Some(state));
                        }
                        // One-off work is the agent's; a router leaves it alone.
                        WatchEvent::Task { task } if role == Role::Agent => {
                            tokio::spawn(self.clone().handle_task(task));
                        }
                        WatchEvent::Task { .. } => {}
                        WatchEvent::KeepAlive => {}
                    }
                }
                Ok::<(), crate::gateway::GatewayError>(())
            };
            tokio::select! {
                _ = shutdown.changed() => return,
                r = session => match r {
                    Ok(()) => tracing::info!("watch stream ended; reconnecting"),
                    Err(e) => tracing::warn!(error = %e, "control plane unreachable; the cluster keeps running"),
                },
            }
            let wait = crate::agent::policy::reconnect_after(backoff);
            backoff = Some(wait);
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}
