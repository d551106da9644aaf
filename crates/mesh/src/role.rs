//! The roles that run the platform: `mesh up` (everything on this machine), `mesh server` (the
//! control plane alone), `mesh agent` (one server of a rack) and `mesh router` (an agent with
//! the rack's edge router on).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use mesh_server::{RunningServer, ServerOptions, StartError};

use crate::failure::hinted;

mod builds;
#[path = "edge.rs"]
pub mod edge;
mod kube;
mod router_limits;

use crate::output::print;
use crate::settings::{self, Settings};
pub use builds::BuildArgs;
pub use router_limits::RouterLimits;

/// The argument that makes `mesh` the runtime's per-instance shim.
pub const SHIM: &str = "shim";

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Where the platform keeps its state [default: $XDG_DATA_HOME/widemesh or
    /// ~/.local/share/widemesh]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address of the API (port 0 picks a free port)
    #[arg(long, value_name = "ADDR", default_value = mesh_types::DEFAULT_API_ADDR)]
    pub listen: SocketAddr,
    /// Run no instances on this machine: the control plane only
    #[arg(long)]
    pub no_agent: bool,
    #[command(flatten)]
    pub made: MadeServersArgs,
    /// The edge router's plain HTTP address [default: 127.0.0.1:80; without either router
    /// flag, a busy or forbidden default only warns and the platform runs without a router]
    #[arg(long, value_name = "ADDR")]
    pub http_listen: Option<SocketAddr>,
    /// The edge router's HTTPS address [default: 127.0.0.1:443]
    #[arg(long, value_name = "ADDR")]
    pub https_listen: Option<SocketAddr>,
    /// Serve the edge router's Prometheus metrics over HTTP on ADDR (`GET /metrics`)
    #[arg(long, value_name = "ADDR")]
    pub router_metrics_listen: Option<SocketAddr>,
    #[command(flatten)]
    pub router_limits: RouterLimits,
    #[command(flatten)]
    pub acme: AcmeArgs,
    #[command(flatten)]
    pub net: NetArgs,
    #[command(flatten)]
    pub build: BuildArgs,
    /// A server whose agent sends no heartbeat for this many seconds is lost: its instances
    /// show as unknown and one-off work (release commands, `mesh run`) goes elsewhere
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub server_lost_after: u64,
}

/// How the servers the platform makes (ssh pools, aws, hetzner) reach this control plane and
/// where their files go.
#[derive(Debug, Clone, Args)]
pub struct MadeServersArgs {
    /// The control plane's URL for agents on servers the platform makes (ssh pools, aws,
    /// hetzner) [default: the --listen address, with a wildcard read as loopback]
    #[arg(long, value_name = "URL")]
    pub advertise_url: Option<String>,
    /// Where the directories of agents (and k3s) go on servers the platform makes, one per
    /// rack and server (`<DIR>/<rack>/<server>`)
    #[arg(long, value_name = "DIR", default_value = mesh_provider::bootstrap::DEFAULT_ROOT)]
    pub servers_root: String,
}

/// Automatic certificates for custom domains.
#[derive(Debug, Clone, Args)]
pub struct AcmeArgs {
    /// Order certificates for custom domains from this ACME directory (such as
    /// https://acme-v02.api.letsencrypt.org/directory); without it they stay pending
    #[arg(long, value_name = "URL")]
    pub acme_directory: Option<String>,
    /// Trust this PEM certificate for the ACME directory's HTTPS (a test CA such as pebble)
    #[arg(long, value_name = "PEM", requires = "acme_directory")]
    pub acme_ca_file: Option<PathBuf>,
}

impl AcmeArgs {
    fn options(&self) -> Option<mesh_server::AcmeOptions> {
        self.acme_directory
            .as_ref()
            .map(|url| mesh_server::AcmeOptions {
                directory_url: url.clone(),
                ca_file: self.acme_ca_file.clone(),
            })
    }
}

/// How the agent lays out instances' networks on this server.
#[derive(Debug, Clone, Args)]
pub struct NetArgs {
    /// Environments get /24 subnets from this /16
    #[arg(long, value_name = "CIDR", default_value = "10.231.0.0/16")]
    pub subnet_pool: String,
    /// Prefix of the interfaces, namespaces, nftables table and cgroups made for instances
    /// (1-5 lowercase letters or digits); give each platform on one machine its own
    #[arg(long, value_name = "PREFIX", default_value = "wm")]
    pub net_prefix: String,
    /// Let instances reach outside (the internet, databases) through NAT; the host must forward
    /// IPv4 (net.ipv4.ip_forward=1), which the platform never changes itself. Environments stay
    /// isolated from each other and from the host either way
    #[arg(long)]
    pub egress: bool,
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    #[command(flatten)]
    pub join: JoinArgs,
    /// Run the rack's edge router in this agent, plain HTTP on ADDR (such as 0.0.0.0:80)
    #[arg(long, value_name = "ADDR")]
    pub http_listen: Option<SocketAddr>,
    /// The edge router's HTTPS address (such as 0.0.0.0:443); needs --http-listen
    #[arg(long, value_name = "ADDR", requires = "http_listen")]
    pub https_listen: Option<SocketAddr>,
    /// Serve the edge router's Prometheus metrics over HTTP on ADDR; needs --http-listen
    #[arg(long, value_name = "ADDR", requires = "http_listen")]
    pub router_metrics_listen: Option<SocketAddr>,
    /// The unix socket where a new agent process takes the router's listening sockets over
    /// from this one, so a restart loses no connection [default: <data-dir>/router.sock]
    #[arg(long, value_name = "PATH", requires = "http_listen")]
    pub router_handover: Option<PathBuf>,
    #[command(flatten)]
    pub router_limits: RouterLimits,
    /// Reconcile into this Kubernetes cluster instead of the one the control plane keeps for
    /// the rack (a Kubernetes rack only)
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
}

/// `mesh router`: `mesh agent` with the edge router on by default.
#[derive(Debug, Args)]
pub struct RouterArgs {
    #[command(flatten)]
    pub join: JoinArgs,
    /// Only route (a Kubernetes rack's router on one of its nodes, beside the rack's one
    /// agent): follow the rack's routes and pods, register no server, change nothing
    #[arg(long)]
    pub routes_only: bool,
    /// The edge router's plain HTTP address
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:80")]
    pub http_listen: SocketAddr,
    /// The edge router's HTTPS address
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:443")]
    pub https_listen: SocketAddr,
    /// Serve the edge router's Prometheus metrics over HTTP on ADDR (`GET /metrics`)
    #[arg(long, value_name = "ADDR")]
    pub router_metrics_listen: Option<SocketAddr>,
    /// The unix socket where a new router process takes the listening sockets over from this
    /// one, so a restart loses no connection [default: <data-dir>/router.sock]
    #[arg(long, value_name = "PATH")]
    pub router_handover: Option<PathBuf>,
    #[command(flatten)]
    pub router_limits: RouterLimits,
}

/// How a server joins its rack.
#[derive(Debug, Args)]
pub struct JoinArgs {
    /// The control plane's URL
    #[arg(long, value_name = "URL", env = "MESH_API_URL")]
    pub api_url: String,
    /// The rack's join token (`mesh rack create` printed it)
    #[arg(
        long,
        value_name = "TOKEN",
        env = "MESH_JOIN_TOKEN",
        hide_env_values = true
    )]
    pub token: String,
    /// Where the agent keeps its state and instances [default: $XDG_DATA_HOME/widemesh/agent]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// This server's name in its rack [default: the host name]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// The address the rack's router and peers reach this server on
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    pub address: String,
    #[command(flatten)]
    pub net: NetArgs,
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Where the control plane keeps its master key, admin token and (without
    /// --database-url) its SQLite database [default: $XDG_DATA_HOME/widemesh or
    /// ~/.local/share/widemesh]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address of the API (port 0 picks a free port)
    #[arg(long, value_name = "ADDR", default_value = mesh_types::DEFAULT_API_ADDR)]
    pub listen: SocketAddr,
    /// `postgres://...` to share one database between several control planes, or
    /// `sqlite://PATH`
    #[arg(
        long,
        value_name = "URL",
        env = "MESH_DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    #[command(flatten)]
    pub made: MadeServersArgs,
    #[command(flatten)]
    pub acme: AcmeArgs,
    #[command(flatten)]
    pub build: BuildArgs,
    /// A server whose agent sends no heartbeat for this many seconds is lost: its instances
    /// show as unknown and one-off work (release commands, `mesh run`) goes elsewhere
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub server_lost_after: u64,
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn data_dir(given: Option<PathBuf>) -> Result<PathBuf> {
    match given {
        Some(d) => Ok(d),
        None => settings::default_data_dir(&env_var),
    }
}

/// The URL clients on this machine use: a wildcard listen address is reached on loopback.
pub fn local_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

/// Lets providers make servers whose agents reach this control plane at `made.advertise_url`
/// (else `api_url`), with their files under `made.servers_root`.
fn provision(
    running: &RunningServer,
    made: &MadeServersArgs,
    api_url: &str,
    data_dir: &std::path::Path,
) -> Result<()> {
    mesh_provider::bootstrap::check_root(&made.servers_root)
        .map_err(|e| anyhow::anyhow!("--servers-root: {e}"))?;
    let url = match &made.advertise_url {
        Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
            settings::normalize_url(u)
        }
        Some(u) => anyhow::bail!("--advertise-url {u:?} must start with http:// or https://"),
        None => api_url.to_string(),
    };
    let mut p = mesh_server::provision::Provision::new(url, data_dir)
        .context("cannot find the mesh binary to install on made servers")?;
    p.root = made.servers_root.clone();
    running.set_provision(p);
    Ok(())
}

/// Starts the control plane; a busy address gets a hint instead of a bare OS error.
async fn start(opts: ServerOptions, what: &str) -> Result<RunningServer> {
    let listen = opts.listen;
    match mesh_server::start(opts).await {
        Ok(r) => Ok(r),
        Err(e @ StartError::Listen { .. }) => Err(hinted(
            format!("cannot start {what}: {e}"),
            format!(
                "is another widemesh already running on {listen}? stop it, or pass --listen with another address (port 0 picks a free one)"
            ),
        )),
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot start {what}"))),
    }
}

/// `mesh up`: the control plane with the local rack, and a CLI config pointing at it.
pub async fn up(args: UpArgs) -> Result<()> {
    let data_dir = data_dir(args.data_dir)?;
    // A `mesh up` already serving this data directory hands its sockets over (the router's and
    // the API's, with the connections queued on them), drains and exits: a restart or upgrade
    // refuses nothing.
    let handover_path = data_dir.join("router.sock");
    let mut taken = if args.no_agent {
        None
    } else {
        edge::take(&handover_path).await
    };
    let api_listener = taken
        .as_mut()
        .and_then(|t| {
            let metrics: Vec<SocketAddr> = args.router_metrics_listen.into_iter().collect();
            edge::claim(&mut t.others, args.listen, &metrics)
        })
        .map(std::sync::Arc::new);
    if taken.is_some() {
        tracing::info!("taking over from the mesh up serving this data directory");
    }
    if let Ok(pool) = args.net.subnet_pool.parse::<mesh_runtime::Ipv4Net>()
        && pool.overlaps(&args.build.build_subnet)
    {
        anyhow::bail!(
            "--build-subnet {} overlaps --subnet-pool {pool}: builds and instances need separate address ranges",
            args.build.build_subnet
        );
    }
    let opts = ServerOptions {
        listen: args.listen,
        data_dir: data_dir.clone(),
        database_url: None,
        local_rack: true,
        acme: args.acme.options(),
        builder: args.build.builder(&data_dir)?,
        max_upload_bytes: args.build.max_upload_bytes(),
        uploads: mesh_server::UploadLimits::default(),
        listener: api_listener,
        server_lost_after: std::time::Duration::from_secs(args.server_lost_after),
    };
    let running = start(opts, "widemesh").await?;
    let api_url = local_url(running.addr());
    provision(&running, &args.made, &api_url, &data_dir)?;
    match running.admin_token() {
        Some(token) => {
            let path = settings::config_path(&env_var)?;
            let config = Settings {
                api_url: Some(api_url.clone()),
                token: Some(token.to_string()),
            };
            if let Err(e) = settings::save(&path, &config) {
                running.shutdown();
                let _ = running.wait().await;
                return Err(e.context("cannot write the CLI config"));
            }
            tracing::info!(path = %path.display(), "CLI config written");
        }
        None => tracing::warn!(
            "the admin token file is missing from {}: the CLI config was not written; log in with `mesh login {api_url} --token TOKEN`",
            data_dir.display()
        ),
    }
    let agent = if args.no_agent {
        None
    } else if let Some(why) = cannot_run_instances() {
        eprintln!("warning: services will get no instances on this machine: {why}");
        None
    } else {
        let join = std::fs::read_to_string(data_dir.join("local-join-token"))
            .context("the local rack's join token")?;
        Some(
            start_agent(
                &api_url,
                join.trim(),
                &data_dir,
                None,
                "127.0.0.1".into(),
                &args.net,
            )
            .await?,
        )
    };
    let edge = match &agent {
        Some(a) => {
            let handover = edge::Handover {
                path: handover_path,
                initial: a.agent.cached_routing().await,
                taken,
                offer_also: running.listener().into_iter().collect(),
            };
            up_router(
                args.http_listen,
                args.https_listen,
                args.router_metrics_listen,
                args.router_limits.options(),
                a,
                handover,
            )
            .await
        }
        None => Ok(None),
    };
    let edge = match edge {
        Ok(edge) => edge,
        Err(e) => {
            // The agent first: its watch stream would hold the API's graceful shutdown open.
            if let Some(a) = agent {
                a.stop().await;
            }
            running.shutdown();
            let _ = running.wait().await;
            return Err(e);
        }
    };
    print(format!(
        "widemesh is up: api {api_url}, data {}",
        data_dir.display()
    ));
    // Stop what holds connections to the API first (the agent's watch stream would keep the
    // API's graceful shutdown waiting), then the API. Instances keep running: the next
    // `mesh up` adopts them. A new `mesh up` taking the sockets over ends this one too.
    let signalled = match &edge {
        Some(e) => tokio::select! {
            r = wait_for_signal() => r,
            _ = e.handed_over() => {
                tracing::info!("a new mesh up took the sockets over: stopping");
                Ok(())
            }
        },
        None => wait_for_signal().await,
    };
    if let Some(e) = edge {
        e.stop().await;
    }
    if let Some(a) = agent {
        a.stop().await;
    }
    running.shutdown();
    running.wait().await.context("the API server failed")?;
    tracing::info!("stopped");
    signalled
}

/// The local rack's router: on the given addresses, or tried on the defaults.
async fn up_router(
    http: Option<SocketAddr>,
    https: Option<SocketAddr>,
    metrics: Option<SocketAddr>,
    options: mesh_router::RouterOptions,
    agent: &AgentHandle,
    handover: edge::Handover,
) -> Result<Option<edge::Edge>> {
    let asked = http.is_some() || https.is_some();
    let http = http.unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, 80)));
    let https = https.unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, 443)));
    let started = edge::Edge::start_with_handover(
        http,
        Some(https),
        metrics,
        options,
        agent.agent.routing(),
        Some(handover),
    )
    .await;
    match started {
        Ok(e) => {
            agent.agent.set_in_flight(e.in_flight());
            agent.agent.set_router(e.http_addr());
            Ok(Some(e))
        }
        Err(e) if !asked && router_limits::settings_hint(&e).is_none() => {
            eprintln!(
                "warning: the edge router is off: {e}; endpoints are not served (pass --http-listen and --https-listen with free addresses)"
            );
            Ok(None)
        }
        Err(e) => Err(hinted(
            format!("cannot start the edge router: {e}"),
            router_limits::settings_hint(&e).unwrap_or(
                "pass --http-listen and --https-listen with free addresses (port 0 picks one)",
            ),
        )),
    }
}

/// A running agent and how to stop it.
pub struct AgentHandle {
    /// The edge router follows `agent.routing()`.
    pub agent: std::sync::Arc<mesh_agent::Agent>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl AgentHandle {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Why this machine cannot run instances, if it cannot.
fn cannot_run_instances() -> Option<String> {
    // SAFETY-free check: the effective uid, from /proc, without unsafe libc calls.
    let euid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2)?.parse::<u32>().ok())
        });
    if euid != Some(0) {
        return Some("instances need root (namespaces, cgroups, runc)".into());
    }
    let in_path = |p: &str| {
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(p).is_file()))
    };
    if !in_path("runc") {
        return Some("runc is not installed (run scripts/install-deps)".into());
    }
    None
}

/// A DNS label from the host name, for the server's name in its rack.
fn host_name() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let mut name: String = raw
        .trim()
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    name = name.trim_matches('-').chars().take(63).collect();
    if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name = format!("server-{name}").chars().take(63).collect();
    }
    name.trim_end_matches('-').to_string()
}

/// `--subnet-pool` as a network.
fn subnet_pool(net: &NetArgs) -> Result<mesh_runtime::Ipv4Net> {
    let (ip, len) = net
        .subnet_pool
        .split_once('/')
        .context("--subnet-pool must be a CIDR such as 10.231.0.0/16")?;
    mesh_runtime::Ipv4Net::new(
        ip.parse()
            .context("--subnet-pool must be a CIDR such as 10.231.0.0/16")?,
        len.parse()
            .context("--subnet-pool must be a CIDR such as 10.231.0.0/16")?,
    )
    .map_err(anyhow::Error::msg)
}

/// The native runtime of an agent with this data directory and networking.
fn native_runtime(
    data_dir: &std::path::Path,
    net: &NetArgs,
) -> Result<mesh_runtime::NativeRuntime> {
    use mesh_runtime::{NativeRuntime, RuntimeOptions, shim::ShimCommand};
    let mut rt = RuntimeOptions::new(data_dir.join("runtime"));
    rt.prefix = net.net_prefix.clone();
    if net.net_prefix != "wm" {
        rt.nft_table = format!("widemesh_{}", net.net_prefix);
        rt.cgroup_parent = format!("widemesh_{}", net.net_prefix);
    }
    let exe =
        std::env::current_exe().context("cannot find the mesh binary for the instance shim")?;
    rt.shim = Some(ShimCommand {
        program: exe,
        args: vec![SHIM.to_string()],
    });
    NativeRuntime::new(rt).context("cannot set up the instance runtime")
}

/// `mesh agent-purge`: what an agent made on this server goes, for a server leaving its rack.
#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// The agent's data directory (its `--data-dir`)
    #[arg(long, value_name = "DIR", required_unless_present = "kubeconfig")]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub net: NetArgs,
    /// A Kubernetes rack's agent instead: remove everything rack --rack made in the cluster of
    /// this kubeconfig (its namespaces and what is in them)
    #[arg(
        long,
        value_name = "FILE",
        requires = "rack",
        conflicts_with = "data_dir"
    )]
    pub kubeconfig: Option<PathBuf>,
    /// The Kubernetes rack whose objects go (with --kubeconfig)
    #[arg(long, value_name = "NAME", requires = "kubeconfig")]
    pub rack: Option<String>,
}

/// Removes every instance (killed), network, firewall table and cgroup of the agent with this
/// data directory and prefix. The agent must be stopped first.
pub async fn purge(args: PurgeArgs) -> Result<()> {
    if let (Some(kubeconfig), Some(rack)) = (&args.kubeconfig, &args.rack) {
        return kube::purge(kubeconfig, rack).await;
    }
    let Some(data_dir) = &args.data_dir else {
        anyhow::bail!("give the agent's --data-dir, or --kubeconfig and --rack");
    };
    if let Some(why) = cannot_run_instances() {
        anyhow::bail!("cannot purge an agent here: {why}");
    }
    native_runtime(data_dir, &args.net)?
        .purge()
        .await
        .context("cannot remove what the agent made")?;
    print(format!(
        "removed the instances and networks of the agent in {}",
        data_dir.display()
    ));
    Ok(())
}

/// Starts an agent with the native runtime under `data_dir` (`agent/` and `runtime/`).
pub async fn start_agent(
    api_url: &str,
    token: &str,
    data_dir: &std::path::Path,
    name: Option<String>,
    address: String,
    net: &NetArgs,
) -> Result<AgentHandle> {
    let pool = subnet_pool(net)?;
    let runtime = native_runtime(data_dir, net)?;
    let name = name.unwrap_or_else(host_name);
    let server_name = mesh_types::Name::parse(&name).context("the server name")?;
    let mut opts =
        mesh_agent::AgentOptions::new(api_url, token, data_dir.join("agent"), server_name);
    opts.subnet_pool = pool;
    opts.address = address;
    opts.egress = net.egress;
    if net.egress
        && std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").is_ok_and(|v| v.trim() == "0")
    {
        eprintln!(
            "warning: --egress: net.ipv4.ip_forward is 0 on this host, so instances cannot reach outside yet; set it to 1 (environments stay isolated by the platform's firewall rules)"
        );
    }
    let agent = mesh_agent::Agent::new(opts, std::sync::Arc::new(runtime))?;
    let (stop, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(agent.clone().run(rx));
    Ok(AgentHandle { agent, stop, task })
}

/// `mesh agent`: one server of a rack, joining with the rack's token.
pub async fn agent(args: AgentArgs) -> Result<()> {
    let router = args.http_listen.map(|http| RouterListen {
        http,
        https: args.https_listen,
        metrics: args.router_metrics_listen,
        handover: args.router_handover,
        options: args.router_limits.options(),
    });
    run_agent(args.join, router, args.kubeconfig).await
}

/// `mesh router`: a server of a rack that runs the rack's edge router beside its instances.
pub async fn router(args: RouterArgs) -> Result<()> {
    let listen = RouterListen {
        http: args.http_listen,
        https: Some(args.https_listen),
        metrics: args.router_metrics_listen,
        handover: args.router_handover,
        options: args.router_limits.options(),
    };
    if args.routes_only {
        let data_dir = match &args.join.data_dir {
            Some(d) => d.clone(),
            None => data_dir(None)?.join("router"),
        };
        return kube::run(args.join, data_dir, Some(listen), None, kube::Part::Router).await;
    }
    run_agent(args.join, Some(listen), None).await
}

/// Where an agent's router listens, and where it hands its sockets over on a restart.
pub(crate) struct RouterListen {
    http: SocketAddr,
    https: Option<SocketAddr>,
    metrics: Option<SocketAddr>,
    handover: Option<PathBuf>,
    options: mesh_router::RouterOptions,
}

async fn run_agent(
    args: JoinArgs,
    router: Option<RouterListen>,
    kubeconfig: Option<PathBuf>,
) -> Result<()> {
    let data_dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => data_dir(None)?.join("agent"),
    };
    if kube::is_kubernetes(&args, &data_dir, kubeconfig.as_deref()).await {
        return kube::run(args, data_dir, router, kubeconfig, kube::Part::Agent).await;
    }
    if let Some(why) = cannot_run_instances() {
        anyhow::bail!("this machine cannot run instances: {why}");
    }
    let handle = start_agent(
        &args.api_url,
        &args.token,
        &data_dir,
        args.name,
        args.address,
        &args.net,
    )
    .await?;
    let edge = match router {
        Some(r) => {
            let initial = handle.agent.cached_routing().await;
            match start_edge(r, &data_dir, handle.agent.routing(), initial).await {
                Ok(e) => {
                    handle.agent.set_in_flight(e.in_flight());
                    handle.agent.set_router(e.http_addr());
                    Some(e)
                }
                Err(e) => {
                    handle.stop().await;
                    return Err(e);
                }
            }
        }
        None => None,
    };
    print(format!(
        "widemesh agent is up: control plane {}, data {}",
        args.api_url,
        data_dir.display()
    ));
    wait_for_signal_or_handover(edge.as_ref()).await?;
    if let Some(e) = edge {
        e.stop().await;
    }
    // Instances keep running: a restarted agent adopts them.
    handle.stop().await;
    Ok(())
}

/// Starts the rack's edge router following `routing`, serving `initial` until it changes, and
/// taking the sockets over from a previous process if one offers them.
async fn start_edge(
    r: RouterListen,
    data_dir: &std::path::Path,
    routing: tokio::sync::watch::Receiver<mesh_agent::Routing>,
    initial: mesh_agent::Routing,
) -> Result<edge::Edge> {
    let path = r.handover.unwrap_or_else(|| data_dir.join("router.sock"));
    let handover = edge::Handover {
        taken: edge::take(&path).await,
        path,
        initial,
        offer_also: Vec::new(),
    };
    edge::Edge::start_with_handover(
        r.http,
        r.https,
        r.metrics,
        r.options,
        routing,
        Some(handover),
    )
    .await
    .map_err(|e| {
        hinted(
            format!("cannot start the edge router: {e}"),
            router_limits::settings_hint(&e)
                .unwrap_or("pass --http-listen and --https-listen with free addresses"),
        )
    })
}

/// Until a signal, or until a new process took the router over (it then waits for this agent
/// to stop before its own runs).
async fn wait_for_signal_or_handover(edge: Option<&edge::Edge>) -> Result<()> {
    match edge {
        Some(e) => tokio::select! {
            r = wait_for_signal() => r?,
            _ = e.handed_over() => tracing::info!("handed the router over: stopping"),
        },
        None => wait_for_signal().await?,
    }
    Ok(())
}

/// `mesh server`: the control plane alone.
pub async fn server(args: ServerArgs) -> Result<()> {
    let data_dir = data_dir(args.data_dir)?;
    let opts = ServerOptions {
        listen: args.listen,
        data_dir: data_dir.clone(),
        database_url: args.database_url,
        local_rack: false,
        acme: args.acme.options(),
        builder: args.build.builder(&data_dir)?,
        max_upload_bytes: args.build.max_upload_bytes(),
        uploads: mesh_server::UploadLimits::default(),
        listener: None,
        server_lost_after: std::time::Duration::from_secs(args.server_lost_after),
    };
    let running = start(opts, "the widemesh control plane").await?;
    let api_url = local_url(running.addr());
    provision(&running, &args.made, &api_url, &data_dir)?;
    print(format!(
        "widemesh control plane is up: api {api_url}, data {}",
        data_dir.display()
    ));
    let token_file = data_dir.join("admin-token");
    if token_file.exists() {
        print(format!(
            "admin token: {} (log in with `mesh login {api_url} --token \"$(cat {})\"`)",
            token_file.display(),
            token_file.display()
        ));
    }
    serve_until_signal(running).await
}

async fn wait_for_signal() -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    Ok(())
}

async fn serve_until_signal(running: RunningServer) -> Result<()> {
    wait_for_signal().await?;
    running.shutdown();
    running.wait().await.context("the API server failed")?;
    tracing::info!("stopped");
    Ok(())
}
