//! The agent's loop: keep the desired state current (watch stream, cached on disk), reconcile it
//! into instances every tick and whenever it changes, and report what runs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures_util::StreamExt;
use mesh_runtime::{HostEntry, InstanceSpec, Ipv4Net, NetworkSpec, Runtime, Status, User};
use mesh_types::agent::{RegisterServer, StatusReport};
use mesh_types::api::{Instance, ServiceKind};
use mesh_types::desired::{DesiredState, WatchEvent};
use mesh_types::{Name, UnixMs};
use tokio::sync::watch;

use crate::cache::StateCache;
use crate::gateway::Gateway;
use crate::health;
use crate::images::Images;
use crate::networks::Subnets;
use crate::plan::{self, Action, Observed, Wanted};
use crate::supervise::{Record, WORKER_SETTLE_MS};

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

/// Instances started at once: creating one is mostly waiting on runc and the kernel.
const STARTS_AT_ONCE: usize = 4;
/// Instances stopped at once; each may take its whole grace period.
const REMOVALS_AT_ONCE: usize = 16;
/// The reconcile interval while an instance is starting.
const STARTING_TICK: Duration = Duration::from_millis(100);
/// How long after its start an unhealthy instance keeps the reconcile interval short.
const STARTING_WINDOW_MS: i64 = 30_000;
/// How long the router gets to apply a routing change before in-flight counts are trusted.
const DRAIN_SETTLE: Duration = Duration::from_millis(150);
/// Longest a replaced instance is given to finish its requests before it is stopped anyway.
const DRAIN_MAX: Duration = Duration::from_secs(30);

/// Held while a one-off run uses an environment's network.
pub(crate) struct NetworkPin {
    agent: Arc<Agent>,
    env: String,
}

impl Drop for NetworkPin {
    fn drop(&mut self) {
        let mut pinned = lock(&self.agent.pinned);
        if let Some(n) = pinned.get_mut(&self.env) {
            *n -= 1;
            if *n == 0 {
                pinned.remove(&self.env);
            }
        }
    }
}

/// How many requests the router has in flight to an instance (by id).
pub type InFlight = Arc<dyn Fn(&str) -> usize + Send + Sync>;

/// `<stack>-<service>` to addresses, per environment: what DNS answers.
type Names = Arc<RwLock<HashMap<String, BTreeMap<String, Vec<Ipv4Addr>>>>>;

pub struct Agent {
    opts: AgentOptions,
    runtime: Arc<dyn Runtime>,
    gateway: Gateway,
    cache: StateCache,
    images: Images,
    subnets: Mutex<Subnets>,
    records: Mutex<HashMap<String, Record>>,
    networks: Mutex<BTreeSet<String>>,
    hosts: Mutex<HashMap<String, Vec<HostEntry>>>,
    names: Names,
    dns: Mutex<HashMap<String, watch::Sender<bool>>>,
    next_runs: Mutex<HashMap<String, UnixMs>>,
    pub(crate) log_sources: Mutex<Vec<crate::logship::Source>>,
    routing: watch::Sender<crate::routing::Routing>,
    /// Requests the rack's router has in flight to an instance, when a router runs here.
    in_flight: Mutex<Option<InFlight>>,
    /// Environments a one-off run is using right now: their network stays even when the
    /// desired state this server last saw does not place them here (yet).
    pinned: Mutex<HashMap<String, usize>>,
    /// Instances being created right now (the runtime lists them before their record exists):
    /// a reconcile must not take a one-off among them for one an earlier agent left behind.
    creating: Mutex<std::collections::HashSet<String>>,
}

/// An instance on the agent's `creating` list for as long as this lives.
struct Creating<'a> {
    agent: &'a Agent,
    id: String,
}

impl<'a> Creating<'a> {
    fn new(agent: &'a Agent, id: &str) -> Self {
        lock(&agent.creating).insert(id.to_string());
        Self {
            agent,
            id: id.to_string(),
        }
    }
}

impl Drop for Creating<'_> {
    fn drop(&mut self) {
        lock(&self.agent.creating).remove(&self.id);
    }
}

/// A mutex's contents even if a panicking thread poisoned it: the agent's maps stay usable
/// (each update is whole), and a stuck agent is worse than a retried action.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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
            subnets: Mutex::new(subnets),
            records: Mutex::new(HashMap::new()),
            networks: Mutex::new(BTreeSet::new()),
            hosts: Mutex::new(HashMap::new()),
            names: Arc::default(),
            dns: Mutex::new(HashMap::new()),
            next_runs: Mutex::new(HashMap::new()),
            log_sources: Mutex::new(Vec::new()),
            routing: watch::channel(crate::routing::Routing::default()).0,
            in_flight: Mutex::new(None),
            pinned: Mutex::new(HashMap::new()),
            creating: Mutex::new(std::collections::HashSet::new()),
            runtime,
            opts,
        }))
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
        *lock(&self.pinned).entry(env.to_string()).or_default() += 1;
        NetworkPin {
            agent: self.clone(),
            env: env.to_string(),
        }
    }

    /// Starts one instance; the error says why it could not start.
    pub(crate) async fn start_instance(&self, w: &Wanted, run: bool) -> Result<(), String> {
        self.start(w, run).await;
        match self.records().get(&w.id).and_then(|r| r.error.clone()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    pub(crate) async fn remove_instance(&self, id: &str) {
        self.remove(id).await
    }

    /// Lets the agent ask the router how many requests an instance still has, so a replaced
    /// instance is stopped only once they are done.
    pub fn set_in_flight(&self, probe: InFlight) {
        *lock(&self.in_flight) = Some(probe);
    }

    /// Takes a web instance out of the router and waits (bounded) for its requests to finish.
    async fn drain(&self, ids: &[String]) {
        let Some(probe) = lock(&self.in_flight).clone() else {
            return;
        };
        // The router applies a routing change asynchronously: give it a moment, so a request
        // it picked the instance for just before is counted.
        tokio::time::sleep(DRAIN_SETTLE).await;
        let deadline = tokio::time::Instant::now() + DRAIN_MAX;
        while ids.iter().any(|id| probe(id) > 0) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Routes and the instances behind them, for the rack's edge router; updated after every
    /// reconcile.
    pub fn routing(&self) -> watch::Receiver<crate::routing::Routing> {
        self.routing.subscribe()
    }

    pub fn data_dir(&self) -> &std::path::Path {
        &self.opts.data_dir
    }

    /// Runs until `shutdown` turns true. Instances keep running after it returns. Holds the
    /// data directory's lock while it runs: a second agent on it waits for this one to stop.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let _lock = tokio::select! {
            lock = crate::handover::DataDirLock::acquire(&self.opts.data_dir) => match lock {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(error = %e, "cannot lock the agent's data directory");
                    return;
                }
            },
            _ = shutdown.changed() => return,
        };
        let cached = match self.cache.load() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring the cached desired state");
                None
            }
        };
        let (tx, mut rx) = watch::channel(cached);
        let watcher = tokio::spawn(self.clone().watch_loop(tx, shutdown.clone()));
        let shipper = tokio::spawn(crate::logship::run(self.clone(), shutdown.clone()));
        let mut last_report: Option<(Vec<Instance>, UnixMs)> = None;
        loop {
            let desired = rx.borrow_and_update().clone();
            if let Some(d) = &desired {
                self.reconcile(d).await;
            }
            last_report = self.report(last_report).await;
            // While an instance is starting, look again soon: a rollout waits on its health.
            let wait = if self.any_starting() {
                self.opts.tick.min(STARTING_TICK)
            } else {
                self.opts.tick
            };
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = rx.changed() => {}
                _ = tokio::time::sleep(wait) => {}
            }
            if *shutdown.borrow() {
                break;
            }
        }
        for (_, stop) in lock(&self.dns).drain() {
            let _ = stop.send(true);
        }
        let _ = watcher.await;
        let _ = shipper.await;
    }

    /// Registers, then follows the watch stream, reconnecting with backoff; every snapshot is
    /// cached on disk and handed to the loop.
    async fn watch_loop(
        self: Arc<Self>,
        tx: watch::Sender<Option<DesiredState>>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut backoff = Duration::from_millis(250);
        loop {
            let session = async {
                let reg = RegisterServer {
                    name: self.opts.server_name.clone(),
                    address: self.opts.address.clone(),
                    cpus: std::thread::available_parallelism()
                        .map(|n| n.get() as f64)
                        .unwrap_or(1.0),
                    memory_mb: memory_mb(),
                };
                self.gateway.register(&reg).await?;
                let mut stream = self.gateway.watch().await?;
                while let Some(event) = stream.next().await? {
                    match event {
                        WatchEvent::Snapshot { state, .. } => {
                            if let Err(e) = self.cache.save(&state) {
                                tracing::warn!(error = %e, "cannot cache the desired state");
                            }
                            tx.send_replace(Some(state));
                        }
                        WatchEvent::Task { task } => {
                            tokio::spawn(self.clone().handle_task(task));
                        }
                        WatchEvent::KeepAlive => {}
                    }
                }
                Ok::<(), crate::gateway::GatewayError>(())
            };
            tokio::select! {
                _ = shutdown.changed() => return,
                r = session => match r {
                    Ok(()) => tracing::info!("watch stream ended; reconnecting"),
                    Err(e) => tracing::warn!(error = %e, "control plane unreachable; instances keep running"),
                },
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }

    /// Whether a long-running instance started in the last half minute and is not healthy yet
    /// (nor ended).
    fn any_starting(&self) -> bool {
        let now = now_ms();
        self.records().values().any(|r| {
            !r.run
                && !r.healthy
                && r.restart_at.is_none()
                && r.started_at.is_some_and(|s| now - s < STARTING_WINDOW_MS)
        })
    }

    fn records(&self) -> std::sync::MutexGuard<'_, HashMap<String, Record>> {
        lock(&self.records)
    }

    /// One level-triggered pass: observe, probe, plan, act.
    pub async fn reconcile(&self, desired: &DesiredState) {
        let now = now_ms();
        let (wanted, cron) = plan::wanted(desired);
        let wanted_by_id: HashMap<&str, &Wanted> =
            wanted.iter().map(|w| (w.id.as_str(), w)).collect();
        let envs: BTreeSet<String> = wanted
            .iter()
            .chain(cron.iter().map(|c| &c.template))
            .map(|w| w.environment.to_string())
            .collect();
        for env in &envs {
            if let Err(e) = self.ensure_network(env).await {
                tracing::warn!(environment = %env, error = %e, "cannot set up the environment's network");
            }
        }
        let listed = match self.runtime.list().await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list instances");
                return;
            }
        };
        // Adopt what runs but is unknown (an agent restart), and note what ended.
        let mut observed = Vec::new();
        let mut probes = Vec::new();
        let mut orphans = Vec::new();
        {
            let mut records = self.records();
            for inst in &listed {
                let rec = match records.get_mut(&inst.id) {
                    Some(r) => r,
                    None => {
                        let template = wanted_by_id.get(inst.id.as_str()).copied().or_else(|| {
                            cron.iter()
                                .find(|c| {
                                    plan::is_run(&inst.id)
                                        && plan::generation_of(&inst.id)
                                            == Some(c.template.generation.as_str())
                                })
                                .map(|c| &c.template)
                        });
                        if plan::is_oneoff(&inst.id)
                            && !inst.status.is_running()
                            && !lock(&self.creating).contains(&inst.id)
                        {
                            // A one-off whose task is gone with an earlier agent: its output
                            // was shipped; nothing else will remove it.
                            orphans.push(inst.id.clone());
                            continue;
                        }
                        let Some(t) = template else {
                            // Nothing wants it: plan deletes it. A record only for the report.
                            observed.push(Observed {
                                id: inst.id.clone(),
                                environment: inst.environment.clone(),
                                hostname: inst.hostname.clone(),
                                running: inst.status.is_running(),
                                healthy: false,
                                restart_at: None,
                            });
                            continue;
                        };
                        let mut r = Record::new(t, plan::is_run(&inst.id));
                        r.started(inst.address, now);
                        records.entry(inst.id.clone()).or_insert(r)
                    }
                };
                rec.address = Some(inst.address);
                match &inst.status {
                    Status::Running { .. } => {
                        if rec.kind == ServiceKind::Web || rec.health.http_path.is_some() {
                            probes.push((
                                inst.id.clone(),
                                inst.address,
                                rec.port,
                                rec.health.http_path.clone(),
                            ));
                        } else {
                            rec.healthy =
                                rec.started_at.is_some_and(|s| now - s >= WORKER_SETTLE_MS);
                        }
                    }
                    Status::Exited(exit) if !rec.end_seen => {
                        rec.ended(*exit, now);
                        let why = rec.state(false, now).1.unwrap_or_default();
                        self.system_line(&inst.id, &format!("instance {} {why}", inst.id));
                    }
                    Status::Exited(_) => {}
                }
                observed.push(Observed {
                    id: inst.id.clone(),
                    environment: inst.environment.clone(),
                    hostname: inst.hostname.clone(),
                    running: inst.status.is_running(),
                    healthy: rec.healthy,
                    restart_at: rec.restart_at,
                });
            }
        }
        let results = futures_util::future::join_all(probes.iter().map(
            |(id, addr, port, path)| async move {
                (
                    id.clone(),
                    health::probe(*addr, *port, path.as_deref()).await,
                )
            },
        ))
        .await;
        {
            let mut records = self.records();
            for (id, ok) in results {
                if let Some(r) = records.get_mut(&id) {
                    r.healthy = ok;
                }
                if let Some(o) = observed.iter_mut().find(|o| o.id == id) {
                    o.healthy = ok;
                }
            }
        }
        let mut removals = orphans;
        let mut starts = Vec::new();
        for action in plan::plan(&wanted, &observed, now) {
            match action {
                Action::Create(w) => starts.push((w, false)),
                Action::Restart(w) => starts.push((w, true)),
                Action::Delete { id } => removals.push(id),
            }
        }
        futures_util::stream::iter(starts)
            .for_each_concurrent(STARTS_AT_ONCE, |(w, again)| async move {
                if again {
                    let _ = self.runtime.delete(&w.id).await;
                }
                self.start(&w, false).await;
            })
            .await;
        // Replaced instances first leave the router (new healthy ones join it), finish what
        // they have in flight, then stop.
        if !removals.is_empty() {
            let draining: std::collections::HashSet<&str> =
                removals.iter().map(String::as_str).collect();
            if self.publish_routing_draining(desired, &listed, &draining) {
                self.drain(&removals).await;
            }
        }
        // Stops wait out each instance's grace period: overlap them, within reason.
        futures_util::stream::iter(removals)
            .for_each_concurrent(REMOVALS_AT_ONCE, |id| async move { self.remove(&id).await })
            .await;
        self.schedule_cron(&cron, &listed, now).await;
        self.refresh_names(&envs, &listed).await;
        self.forget_networks(&envs, &listed).await;
        self.refresh_log_sources(&listed);
        self.publish_routing(desired, &listed);
    }

    fn publish_routing(&self, desired: &DesiredState, listed: &[mesh_runtime::InstanceState]) {
        self.publish_routing_draining(desired, listed, &Default::default());
    }

    /// Publishes the routing with the `draining` instances marked so; whether any routed
    /// instance is draining.
    fn publish_routing_draining(
        &self,
        desired: &DesiredState,
        listed: &[mesh_runtime::InstanceState],
        draining: &std::collections::HashSet<&str>,
    ) -> bool {
        use crate::routing::{Backend, Routing, upstream_key};
        let mut any_draining = false;
        let records = self.records().clone();
        let mut upstreams: BTreeMap<String, Vec<Backend>> = BTreeMap::new();
        for inst in listed
            .iter()
            .filter(|i| i.status.is_running() && !plan::is_run(&i.id) && !plan::is_oneoff(&i.id))
        {
            let Some(r) = records.get(&inst.id) else {
                continue;
            };
            let key = upstream_key(r.environment.as_str(), r.stack.as_str(), r.service.as_str());
            let drains = draining.contains(inst.id.as_str());
            any_draining |= drains;
            upstreams.entry(key).or_default().push(Backend {
                id: inst.id.clone(),
                addr: std::net::SocketAddr::from((inst.address, r.port)),
                healthy: r.healthy,
                draining: drains,
            });
        }
        let routing = Routing::new(desired, upstreams);
        self.routing.send_if_modified(|old| {
            let changed = *old != routing;
            if changed {
                *old = routing;
            }
            changed
        });
        any_draining
    }

    async fn ensure_network(&self, env: &str) -> Result<(), String> {
        if lock(&self.networks).contains(env) {
            return Ok(());
        }
        let subnet = lock(&self.subnets)
            .get_or_assign(env)
            .map_err(|e| e.to_string())?;
        let mut spec = NetworkSpec::new(env, subnet);
        spec.egress = self.opts.egress;
        if self.opts.dns {
            spec.dns = Some(subnet.gateway());
        }
        let info = self
            .runtime
            .ensure_network(&spec)
            .await
            .map_err(|e| e.to_string())?;
        if self.opts.dns {
            self.start_dns(env, info.gateway).await;
        }
        lock(&self.networks).insert(env.to_string());
        Ok(())
    }

    async fn start_dns(&self, env: &str, gateway: Ipv4Addr) {
        let socket = match tokio::net::UdpSocket::bind((gateway, 53)).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(environment = %env, error = %e, "cannot serve DNS on {gateway}:53; /etc/hosts still names peers");
                return;
            }
        };
        let (stop, rx) = watch::channel(false);
        let names = self.names.clone();
        let env_name = env.to_string();
        let lookup: Arc<crate::dns::Lookup> = Arc::new(move |name: &str| {
            let names = names.read().unwrap_or_else(|e| e.into_inner());
            names.get(&env_name).and_then(|m| m.get(name).cloned())
        });
        tokio::spawn(async move {
            if let Err(e) = crate::dns::serve(socket, lookup, rx).await {
                tracing::warn!(error = %e, "dns server stopped");
            }
        });
        if let Some(old) = lock(&self.dns).insert(env.to_string(), stop) {
            let _ = old.send(true);
        }
    }

    async fn start(&self, w: &Wanted, run: bool) {
        let now = now_ms();
        let image = match self.images.get(&w.image).await {
            Ok(i) => i,
            Err(e) => return self.failed(w, run, e, now),
        };
        let hosts = lock(&self.hosts)
            .get(w.environment.as_str())
            .cloned()
            .unwrap_or_default();
        let (command, env) = crate::images::shape(&w.image, w.command.clone(), &w.env);
        let spec = InstanceSpec {
            id: w.id.clone(),
            environment: w.environment.to_string(),
            hostname: w.hostname.clone(),
            image,
            command,
            env,
            limits: w.limits,
            user: User::default(),
            address: None,
            hosts,
        };
        // Off the list (on drop) only once the record exists (`failed` writes one too).
        let _creating = Creating::new(self, &w.id);
        match self.runtime.create(&spec).await {
            Ok(handle) => {
                let mut records = self.records();
                let rec = records
                    .entry(w.id.clone())
                    .or_insert_with(|| Record::new(w, run));
                rec.started(handle.address, now);
                let line = format!(
                    "instance {} started at {} (restart {})",
                    w.id, handle.address, rec.restarts
                );
                drop(records);
                self.system_line(&w.id, &line);
            }
            Err(e) => self.failed(w, run, e.to_string(), now),
        }
    }

    /// A create that failed is retried with the same backoff as a crash.
    fn failed(&self, w: &Wanted, run: bool, error: String, now: UnixMs) {
        tracing::warn!(instance = %w.id, error = %error, "cannot start instance");
        let mut records = self.records();
        let rec = records
            .entry(w.id.clone())
            .or_insert_with(|| Record::new(w, run));
        rec.ended(mesh_runtime::ExitStatus::UNKNOWN, now);
        rec.error = Some(format!("cannot start: {error}"));
    }

    async fn remove(&self, id: &str) {
        if let Err(e) = self.runtime.stop(id, self.opts.stop_grace).await {
            tracing::debug!(instance = %id, error = %e, "stop");
        }
        match self.runtime.delete(id).await {
            Ok(()) => {
                self.records().remove(id);
            }
            Err(e) => tracing::warn!(instance = %id, error = %e, "cannot delete instance"),
        }
    }

    /// Starts due cron runs (never two of one job at once) and clears old finished runs.
    async fn schedule_cron(
        &self,
        jobs: &[plan::CronJob],
        listed: &[mesh_runtime::InstanceState],
        now: UnixMs,
    ) {
        /// Finished runs kept (with their output) per job.
        const KEEP_RUNS: usize = 5;
        for job in jobs {
            let key = format!("{}/{}", job.template.environment, job.template.hostname);
            let runs: Vec<&mesh_runtime::InstanceState> = listed
                .iter()
                .filter(|i| {
                    i.environment == job.template.environment.as_str()
                        && i.hostname == job.template.hostname
                        && plan::is_run(&i.id)
                })
                .collect();
            let due = {
                let mut next = lock(&self.next_runs);
                let at = *next
                    .entry(key.clone())
                    .or_insert_with(|| job.schedule.next_after(now).unwrap_or(i64::MAX));
                if at <= now {
                    next.insert(key, job.schedule.next_after(now).unwrap_or(i64::MAX));
                    true
                } else {
                    false
                }
            };
            if due {
                if runs.iter().any(|r| r.status.is_running()) {
                    tracing::info!(job = %job.template.hostname, "skipping a cron run: the last one still runs");
                } else {
                    let id = plan::instance_id(
                        &job.template.hostname,
                        &job.template.generation,
                        &format!("r{}", now / 1000),
                    );
                    self.start(
                        &plan::Wanted {
                            id,
                            ..job.template.clone()
                        },
                        true,
                    )
                    .await;
                }
            }
            let mut finished: Vec<&&mesh_runtime::InstanceState> =
                runs.iter().filter(|r| !r.status.is_running()).collect();
            finished.sort_by(|a, b| b.id.cmp(&a.id));
            for old in finished.into_iter().skip(KEEP_RUNS) {
                self.remove(&old.id).await;
            }
        }
        // Runs of jobs that are gone.
        let wanted_hosts: BTreeSet<(String, String)> = jobs
            .iter()
            .map(|j| {
                (
                    j.template.environment.to_string(),
                    j.template.hostname.clone(),
                )
            })
            .collect();
        for i in listed.iter().filter(|i| plan::is_run(&i.id)) {
            if !wanted_hosts.contains(&(i.environment.clone(), i.hostname.clone())) {
                self.remove(&i.id).await;
            }
        }
    }

    /// Peers by name: `/etc/hosts` of every instance of the environment, and DNS answers.
    async fn refresh_names(&self, envs: &BTreeSet<String>, listed: &[mesh_runtime::InstanceState]) {
        let records = self.records().clone();
        let mut dns: HashMap<String, BTreeMap<String, Vec<Ipv4Addr>>> = HashMap::new();
        let mut hosts: HashMap<String, Vec<HostEntry>> = HashMap::new();
        for inst in listed
            .iter()
            .filter(|i| i.status.is_running() && !plan::is_run(&i.id) && !plan::is_oneoff(&i.id))
        {
            let healthy = records.get(&inst.id).is_some_and(|r| r.healthy);
            let e = hosts.entry(inst.environment.clone()).or_default();
            if !e.iter().any(|h| h.hostname == inst.hostname) {
                e.push(HostEntry::new(inst.hostname.clone(), inst.address));
            }
            let addrs = dns
                .entry(inst.environment.clone())
                .or_default()
                .entry(inst.hostname.clone())
                .or_default();
            if healthy {
                addrs.push(inst.address);
            }
        }
        for env in envs {
            let entries = hosts.remove(env).unwrap_or_default();
            let changed = lock(&self.hosts).get(env) != Some(&entries);
            if changed {
                for inst in listed
                    .iter()
                    .filter(|i| &i.environment == env && i.status.is_running())
                {
                    if let Err(e) = self.runtime.update_hosts(&inst.id, &entries).await {
                        tracing::debug!(instance = %inst.id, error = %e, "update hosts");
                    }
                }
                lock(&self.hosts).insert(env.clone(), entries);
            }
        }
        *self.names.write().unwrap_or_else(|e| e.into_inner()) = dns;
    }

    /// Networks of environments no longer here, once their last instance is gone.
    async fn forget_networks(
        &self,
        envs: &BTreeSet<String>,
        listed: &[mesh_runtime::InstanceState],
    ) {
        let known: Vec<String> = lock(&self.subnets).assigned().cloned().collect();
        for env in known {
            if envs.contains(&env)
                || listed.iter().any(|i| i.environment == env)
                || lock(&self.pinned).contains_key(&env)
            {
                continue;
            }
            match self.runtime.remove_network(&env).await {
                Ok(()) => {
                    lock(&self.networks).remove(&env);
                    if let Some(stop) = lock(&self.dns).remove(&env) {
                        let _ = stop.send(true);
                    }
                    lock(&self.hosts).remove(&env);
                    let _ = lock(&self.subnets).release(&env);
                }
                Err(e) => tracing::debug!(environment = %env, error = %e, "remove network"),
            }
        }
    }

    fn refresh_log_sources(&self, listed: &[mesh_runtime::InstanceState]) {
        let records = self.records();
        let mut sources = Vec::new();
        for inst in listed {
            let Some(r) = records.get(&inst.id) else {
                continue;
            };
            for (stream, path) in [
                (
                    mesh_types::agent::LogStream::Stdout,
                    inst.logs.stdout.clone(),
                ),
                (
                    mesh_types::agent::LogStream::Stderr,
                    inst.logs.stderr.clone(),
                ),
                (
                    mesh_types::agent::LogStream::System,
                    self.system_log(&inst.id),
                ),
            ] {
                sources.push(crate::logship::Source {
                    environment: r.environment.clone(),
                    stack: r.stack.clone(),
                    service: r.service.clone(),
                    instance: inst.id.clone(),
                    stream,
                    path,
                });
            }
        }
        *lock(&self.log_sources) = sources;
    }

    fn system_log(&self, id: &str) -> PathBuf {
        self.opts
            .data_dir
            .join("system-logs")
            .join(format!("{id}.log"))
    }

    /// A line the platform writes about an instance, shipped with its output.
    fn system_line(&self, id: &str, text: &str) {
        use std::io::Write;
        let path = self.system_log(id);
        let _ = std::fs::create_dir_all(path.parent().unwrap_or(&self.opts.data_dir));
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
        {
            let _ = writeln!(f, "{text}");
        }
    }

    /// Sends the instances' states when they changed, and at least every 10 s.
    async fn report(
        &self,
        last: Option<(Vec<Instance>, UnixMs)>,
    ) -> Option<(Vec<Instance>, UnixMs)> {
        const HEARTBEAT_MS: UnixMs = 10_000;
        let now = now_ms();
        let listed = self.runtime.list().await.unwrap_or_default();
        let records = self.records().clone();
        let mut instances: Vec<Instance> = listed
            .iter()
            .filter_map(|i| {
                records
                    .get(&i.id)
                    .map(|r| r.report(&i.id, i.status.is_running(), now))
            })
            .collect();
        // Instances that could not be created at all still show, with why.
        for (id, r) in &records {
            if r.error.is_some() && !listed.iter().any(|i| &i.id == id) {
                instances.push(r.report(id, false, now));
            }
        }
        instances.sort_by(|a, b| a.id.cmp(&b.id));
        let strip = |v: &[Instance]| {
            v.iter()
                .map(|i| Instance {
                    updated_at: 0,
                    message: None,
                    ..i.clone()
                })
                .collect::<Vec<_>>()
        };
        let unchanged = last
            .as_ref()
            .is_some_and(|(prev, at)| strip(prev) == strip(&instances) && now - at < HEARTBEAT_MS);
        if unchanged {
            return last;
        }
        let report = StatusReport {
            server: self.opts.server_name.clone(),
            instances: instances.clone(),
        };
        match self.gateway.status(&report).await {
            Ok(()) => Some((instances, now)),
            Err(e) => {
                tracing::debug!(error = %e, "status report not delivered");
                last
            }
        }
    }
}

fn memory_mb() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kb| kb / 1024)
        .unwrap_or(0)
}
