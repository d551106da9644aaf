//! `mesh rack`: groups of same-size servers of one provider in one region.

use anyhow::{Context as _, Result};
use clap::Subcommand;
use std::time::{Duration, Instant};

use mesh_types::api::{
    CreateRack, MadeServer, MadeServerState, ProviderKind, Rack, RackRuntime, RackState,
    ReplaceOptions, Replacement, ResizeRack, Server, ServerState, UpgradeRack,
};
use mesh_types::{Domain, Name, UnixMs};

use super::Ctx;
use crate::confirm;
use crate::failure::hinted;
use crate::output::{age, datetime, fields, now_ms, or_dash, print, print_json, table};

#[derive(Debug, Subcommand)]
pub enum RackCmd {
    /// Create a rack; prints the join token its agents use (shown only once)
    Create {
        name: String,
        /// Provider whose servers make up the rack
        #[arg(long)]
        provider: String,
        /// Region of the provider the servers are in
        #[arg(long)]
        region: String,
        /// Server size, in the provider's words [default for local: local]
        #[arg(long)]
        size: Option<String>,
        /// Base domain of platform aliases: environments answer on <env>.<domain>
        #[arg(long)]
        domain: Option<String>,
        /// Public address of the rack's edge router (the target of DNS records)
        #[arg(long)]
        address: Option<String>,
        /// What runs the rack's instances: native (runc on one server) or kubernetes (an
        /// existing cluster, with --kubeconfig; or, with a cloud provider, a k3s cluster of
        /// --servers servers the provider makes)
        #[arg(long, value_name = "RUNTIME", default_value = "native", value_parser = parse_runtime)]
        runtime: RackRuntime,
        /// How many servers the provider makes: a native rack has one; a Kubernetes rack's
        /// cluster N (the first runs the cluster's server, the others join it) [default: 1]
        #[arg(long, value_name = "N")]
        servers: Option<u32>,
        /// The kubeconfig of a Kubernetes rack's cluster (its current context is used; the
        /// control plane keeps it sealed and hands it to the rack's agent)
        #[arg(long, value_name = "FILE")]
        kubeconfig: Option<std::path::PathBuf>,
        /// Return once the provider has made the server, without waiting for its agent to join
        #[arg(long, conflicts_with = "wait")]
        no_wait: bool,
        /// How long to wait for a made server's agent to join and be healthy, in seconds
        /// [default: 120 for an ssh pool server, 600 for a cloud server, which boots first]
        #[arg(long, value_name = "SECS")]
        wait: Option<u64>,
    },
    /// List racks
    #[command(visible_alias = "ls")]
    List,
    /// Show a rack
    Show { name: String },
    /// Print the Kubernetes objects that install a Kubernetes rack's agent into its cluster
    /// (one pod on a node's network, its edge router on the node's address), for
    /// `kubectl apply -f -`
    AgentManifest {
        name: String,
        /// The rack's join token (printed once by `mesh rack create`)
        #[arg(long, env = "MESH_JOIN_TOKEN", hide_env_values = true)]
        token: String,
        /// The control plane as the cluster's nodes reach it (also where they pull the agent's
        /// image) [default: this CLI's control plane]
        #[arg(long, value_name = "URL")]
        api_url: Option<String>,
        /// The edge router's plain HTTP address on the node
        #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:80")]
        http_listen: String,
        /// The edge router's HTTPS address on the node
        #[arg(long, value_name = "ADDR")]
        https_listen: Option<String>,
    },
    /// Delete a rack that hosts no environment
    Delete {
        name: String,
        /// Do not ask for confirmation
        #[arg(short = 'y', long)]
        yes: bool,
    },
    /// Replace the rack's server with a new one running this control plane's mesh, without
    /// downtime: the new server takes the rack's instances and address, the old one forwards
    /// to it for the drain grace, then goes
    #[command(disable_version_flag = true)]
    Upgrade {
        name: String,
        /// The mesh version to run: the control plane's (the only one it installs)
        #[arg(long)]
        version: Option<String>,
        #[command(flatten)]
        replace: ReplaceArgs,
    },
    /// Replace the rack's server with one of another size, without downtime (as `upgrade`)
    Resize {
        name: String,
        /// The new size, in the provider's words
        #[arg(long)]
        size: String,
        #[command(flatten)]
        replace: ReplaceArgs,
    },
    /// List the servers of a rack: state, last heartbeat, version, CPUs, memory, instances
    Servers { name: String },
}

/// How a server replacement goes.
#[derive(Debug, clap::Args)]
pub struct ReplaceArgs {
    /// How long the old server forwards to the new one once traffic moved, for DNS caches that
    /// still point at its address (`30s`, `5m`, `1h`; at most a day)
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = super::env::grace_arg)]
    drain_grace: u64,
    /// How long the new server may take to run the rack's instances healthy before the
    /// replacement is undone (`10m`, `1h`; at most 2h)
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = super::replace::timeout_arg)]
    timeout: u64,
    /// Return once started instead of following it; `mesh rack show` tells where it stands
    #[arg(long)]
    no_wait: bool,
}

impl ReplaceArgs {
    fn options(&self) -> ReplaceOptions {
        ReplaceOptions {
            drain_grace_s: Some(self.drain_grace),
            timeout_s: Some(self.timeout),
        }
    }
}

/// Starts following a replacement, or says it started.
async fn started(ctx: &Ctx, rack: &str, r: Replacement, no_wait: bool) -> Result<()> {
    if no_wait {
        if ctx.json() {
            print_json(&r);
        } else {
            print(format!(
                "replacing server {} of rack {rack} with {}: follow it with `mesh rack show {rack}`",
                r.old_server, r.new_server
            ));
        }
        return Ok(());
    }
    super::replace::follow(ctx, rack, r).await
}

fn rack_state(s: RackState) -> &'static str {
    match s {
        RackState::Ready => "ready",
        RackState::Upgrading => "upgrading",
        RackState::Resizing => "resizing",
    }
}

fn server_state(s: ServerState) -> &'static str {
    match s {
        ServerState::Ready => "ready",
        ServerState::Draining => "draining",
        ServerState::Lost => "lost",
    }
}

/// `mesh rack servers`: one row per server, its last heartbeat as an age at `now`.
fn servers_table(servers: &[Server], now: UnixMs) -> String {
    let rows = servers
        .iter()
        .map(|s| {
            vec![
                s.name.to_string(),
                server_state(s.state).into(),
                or_dash(s.last_heartbeat.map(|t| format!("{} ago", age(now - t)))),
                or_dash(s.version.as_deref()),
                format!("{}", s.cpus),
                format!("{} MB", s.memory_mb),
                s.instances.to_string(),
                s.address.clone(),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "STATE",
            "LAST SEEN",
            "VERSION",
            "CPUS",
            "MEMORY",
            "INSTANCES",
            "ADDRESS",
        ],
        rows,
    )
}

fn rack_fields(r: &Rack) -> String {
    fields(&[
        ("rack", r.name.to_string()),
        ("provider", r.provider.to_string()),
        ("region", r.region.to_string()),
        ("size", r.size.clone()),
        ("runtime", r.runtime.to_string()),
        ("domain", r.domain.to_string()),
        ("address", r.address.clone()),
        ("state", rack_state(r.state).into()),
        ("created", datetime(r.created_at)),
    ])
}

/// `mesh rack show`: the servers the provider made and how far each is.
fn made_table(made: &[MadeServer], runtime: RackRuntime) -> String {
    let what = |s: MadeServerState| match (s, runtime) {
        (MadeServerState::Joining, RackRuntime::Kubernetes) => "joining (not a node yet)",
        (MadeServerState::Joining, RackRuntime::Native) => "joining (no agent yet)",
        (MadeServerState::Ready, RackRuntime::Kubernetes) => "ready (node Ready)",
        (MadeServerState::Ready, RackRuntime::Native) => "ready (agent ready)",
        (MadeServerState::NotReady, _) => "not ready (node not Ready)",
        (MadeServerState::Lost, _) => "lost (no heartbeat)",
        (MadeServerState::Unknown, _) => "unknown (the cluster does not answer)",
    };
    let rows = made
        .iter()
        .map(|m| vec![m.name.clone(), m.address.clone(), what(m.state).to_string()])
        .collect();
    format!(
        "\nservers made by the provider:\n{}",
        table(&["SERVER", "ADDRESS", "STATE"], rows)
    )
}

/// How long a made server's agent may take to join its rack: an ssh pool server has it
/// started already; a cloud server boots first, then downloads mesh.
const JOIN_TIMEOUT: Duration = Duration::from_secs(120);
const CLOUD_JOIN_TIMEOUT: Duration = Duration::from_secs(600);

/// Whether racks of this provider get their server made, and whether that server boots from
/// a cloud image (it installs mesh itself, minutes later).
fn made_server(p: &mesh_types::api::Provider) -> (bool, bool) {
    match p.kind {
        ProviderKind::Ssh => (p.secret_keys.iter().any(|k| k == "servers"), false),
        ProviderKind::Aws | ProviderKind::Hetzner => (true, true),
        ProviderKind::Local => (false, false),
    }
}

/// Follows a made server until its agent has joined and is ready, saying so as it goes (for
/// a made cluster, `kube`: the agent its first server's kubeconfig lets the control plane
/// install into it).
async fn wait_for_server(
    ctx: &Ctx,
    client: &mesh_client::Client,
    rack: &str,
    started: Instant,
    cloud: bool,
    kube: bool,
    wait: Option<u64>,
) -> Result<()> {
    let say = |line: String| {
        if !ctx.json() {
            print(line);
        }
    };
    let secs = |t: Instant| format!("{:.1}s", t.elapsed().as_secs_f64());
    let limit = wait.map(Duration::from_secs).unwrap_or(if cloud {
        CLOUD_JOIN_TIMEOUT
    } else {
        JOIN_TIMEOUT
    });
    if kube {
        say(format!(
            "servers created ({}); waiting up to {}s for them to boot and run k3s, for {rack}-1 to send the cluster's kubeconfig, and for the agent installed into the cluster to join (Ctrl-C stops waiting, not the servers)",
            secs(started),
            limit.as_secs()
        ));
    } else if cloud {
        say(format!(
            "server created ({}); waiting up to {}s for it to boot, download mesh and join (Ctrl-C stops waiting, not the server)",
            secs(started),
            limit.as_secs()
        ));
    } else {
        say(format!(
            "server made, mesh installed and the agent started ({})",
            secs(started)
        ));
    }
    let mut joined = false;
    loop {
        let servers = client.list_servers(rack).await?;
        if let Some(s) = servers.first() {
            if !joined {
                joined = true;
                say(format!(
                    "agent {} joined rack {rack} from {} ({})",
                    s.name,
                    s.address,
                    secs(started)
                ));
            }
            if s.state == ServerState::Ready {
                say(format!("server {} is healthy ({})", s.name, secs(started)));
                return Ok(());
            }
        }
        if started.elapsed() > limit {
            let boot = if kube {
                format!(
                    "; the first server logs its boot in /var/log/cloud-init-output.log and <root>/{rack}/{rack}-1/install.log, and k3s in k3s.log there; `mesh events` says when the control plane took the cluster"
                )
            } else if cloud {
                format!(
                    "; a cloud server logs its first boot in /var/log/cloud-init-output.log and <root>/{rack}/{rack}-1/install.log"
                )
            } else {
                String::new()
            };
            return Err(hinted(
                format!(
                    "the agent of rack {rack} did not {} within {}s (the rack and its server stay: follow with `mesh rack servers {rack}`, or `mesh rack delete {rack}`)",
                    if joined { "become healthy" } else { "join" },
                    limit.as_secs()
                ),
                format!(
                    "check that the server reaches the control plane at its --advertise-url, and read the agent's log in <root>/{rack}/{rack}-1/agent.log on the server{boot} (<root>: the control plane's --servers-root, /var/lib/widemesh by default)"
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn parse_runtime(s: &str) -> Result<RackRuntime, String> {
    RackRuntime::parse(s)
}

pub async fn run(ctx: &Ctx, cmd: RackCmd) -> Result<()> {
    match cmd {
        RackCmd::Create {
            name,
            provider,
            region,
            size,
            domain,
            address,
            runtime,
            servers,
            kubeconfig,
            no_wait,
            wait,
        } => {
            let kubeconfig = kubeconfig
                .map(|f| {
                    std::fs::read_to_string(&f)
                        .with_context(|| format!("cannot read the kubeconfig {}", f.display()))
                })
                .transpose()?;
            let req = CreateRack {
                name: Name::parse_as("rack name", &name)?,
                provider: Name::parse_as("provider name", &provider)?,
                region: Name::parse_as("region name", &region)?,
                size,
                domain: domain.as_deref().map(Domain::parse).transpose()?,
                address,
                runtime: Some(runtime),
                kubeconfig,
                servers,
            };
            let client = ctx.client()?;
            // An ssh provider with a pool (`--server`), and a cloud provider, make the rack's
            // server.
            let p = client.provider(&provider).await?;
            let (makes_server, cloud) = made_server(&p);
            // A Kubernetes rack without a kubeconfig: its provider makes the cluster.
            let kube =
                makes_server && runtime == RackRuntime::Kubernetes && req.kubeconfig.is_none();
            if kube && !ctx.json() {
                let n = servers.unwrap_or(1);
                print(format!(
                    "making the rack's cluster with provider {provider} ({}): {n} {} server{} in {}, running k3s",
                    p.kind,
                    req.size.as_deref().unwrap_or("?"),
                    if n == 1 { "" } else { "s" },
                    req.region
                ));
            } else if makes_server && !ctx.json() {
                print(if cloud {
                    format!(
                        "making the rack's server with provider {provider} ({}): a {} server in {}",
                        p.kind,
                        req.size.as_deref().unwrap_or("?"),
                        req.region
                    )
                } else {
                    format!(
                        "making the rack's server with provider {provider}: connecting, installing mesh, starting the agent"
                    )
                });
            }
            let started = Instant::now();
            let created = client.create_rack(&req).await?;
            let r = &created.rack;
            if !ctx.json() {
                print(format!(
                    "created rack {} (provider {}, region {}, size {}, domain {}, address {}, runtime {})",
                    r.name, r.provider, r.region, r.size, r.domain, r.address, r.runtime
                ));
            }
            if !ctx.json() {
                for s in &created.servers {
                    print(format!("server {} made at {}", s.name, s.address));
                }
            }
            if makes_server && no_wait {
                if !ctx.json() {
                    print(format!(
                        "made in {:.1}s; not waiting for the rack's agent: follow with `mesh rack servers {}`",
                        started.elapsed().as_secs_f64(),
                        r.name
                    ));
                }
            } else if makes_server {
                wait_for_server(ctx, &client, r.name.as_str(), started, cloud, kube, wait).await?;
            }
            if ctx.json() {
                print_json(&created);
                return Ok(());
            }
            print(format!("join token: {}", created.join_token));
            print("this token is shown only once: keep it secret; the rack's agents join with it");
        }
        RackCmd::List => {
            let racks = ctx.client()?.list_racks().await?;
            if ctx.json() {
                print_json(&racks);
            } else if racks.is_empty() {
                print(
                    "no racks yet: create one with `mesh rack create NAME --provider P --region R`",
                );
            } else {
                let rows = racks
                    .iter()
                    .map(|r| {
                        vec![
                            r.name.to_string(),
                            r.provider.to_string(),
                            r.region.to_string(),
                            r.size.clone(),
                            r.domain.to_string(),
                            r.address.clone(),
                            rack_state(r.state).into(),
                        ]
                    })
                    .collect();
                print(table(
                    &[
                        "NAME", "PROVIDER", "REGION", "SIZE", "DOMAIN", "ADDRESS", "STATE",
                    ],
                    rows,
                ));
            }
        }
        RackCmd::AgentManifest {
            name,
            token,
            api_url,
            http_listen,
            https_listen,
        } => {
            let client = ctx.client()?;
            let rack = client.rack(&name).await?;
            if rack.runtime != RackRuntime::Kubernetes {
                anyhow::bail!(
                    "rack {name} runs the {} runtime: only a Kubernetes rack's agent is installed \
                     into a cluster (run `mesh agent` on the rack's server)",
                    rack.runtime
                );
            }
            for (flag, addr) in [
                ("--http-listen", Some(&http_listen)),
                ("--https-listen", https_listen.as_ref()),
            ] {
                if let Some(a) = addr {
                    a.parse::<std::net::SocketAddr>().with_context(|| {
                        format!("{flag} {a:?} is not an address such as 0.0.0.0:80")
                    })?;
                }
            }
            let install = mesh_kube::install::AgentInstall {
                rack: rack.name.to_string(),
                api_url: api_url.unwrap_or_else(|| client.base_url().to_string()),
                join_token: token,
                // Whatever this control plane runs (pulled again at every start of the pod).
                tag: "latest".to_string(),
                http_listen: Some(http_listen),
                https_listen,
            };
            let manifest = mesh_kube::install::agent_manifest(&install)?;
            println!("{}", serde_json::to_string_pretty(&manifest)?);
        }
        RackCmd::Show { name } => {
            let client = ctx.client()?;
            let r = client.rack(&name).await?;
            let replacement = client.replacement(&name).await?;
            let made = client.list_made_servers(&name).await?;
            if ctx.json() {
                // The rack's fields, with its made servers and the replacement under way
                // beside them.
                let mut json = serde_json::to_value(&r)?;
                if let Some(obj) = json.as_object_mut() {
                    obj.insert("made_servers".into(), serde_json::to_value(&made)?);
                    if let Some(rep) = &replacement {
                        obj.insert("replacement".into(), serde_json::to_value(rep)?);
                    }
                }
                print_json(&json);
            } else {
                print(rack_fields(&r));
                if !made.is_empty() {
                    print(made_table(&made, r.runtime));
                }
                if let Some(rep) = &replacement {
                    print(super::replace::replacement_fields(rep, now_ms()));
                }
            }
        }
        RackCmd::Delete { name, yes } => {
            confirm::deletion("rack", &name, " and its join token", yes)?;
            ctx.client()?.delete_rack(&name).await?;
            if !ctx.json() {
                print(format!("deleted rack {name}"));
            }
        }
        RackCmd::Upgrade {
            name,
            version,
            replace,
        } => {
            let req = UpgradeRack {
                version,
                replace: replace.options(),
            };
            let r = ctx.client()?.upgrade_rack(&name, &req).await?;
            started(ctx, &name, r, replace.no_wait).await?;
        }
        RackCmd::Resize {
            name,
            size,
            replace,
        } => {
            let req = ResizeRack {
                size,
                replace: replace.options(),
            };
            let r = ctx.client()?.resize_rack(&name, &req).await?;
            started(ctx, &name, r, replace.no_wait).await?;
        }
        RackCmd::Servers { name } => {
            let servers = ctx.client()?.list_servers(&name).await?;
            if ctx.json() {
                print_json(&servers);
            } else if servers.is_empty() {
                print(format!("rack {name} has no servers yet"));
            } else {
                print(servers_table(&servers, now_ms()));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_show_state_age_version_and_instances() {
        let server = Server {
            name: "box-1".parse().unwrap(),
            rack: "local".parse().unwrap(),
            address: "127.0.0.1".into(),
            cpus: 4.0,
            memory_mb: 8192,
            state: ServerState::Lost,
            last_heartbeat: Some(1_000),
            created_at: 1_000,
            version: Some("0.1.0".into()),
            instances: 3,
            router: None,
        };
        let t = servers_table(&[server], 96_000);
        let lines: Vec<&str> = t.lines().collect();
        let cols: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            cols,
            [
                "box-1",
                "lost",
                "1m",
                "ago",
                "0.1.0",
                "4",
                "8192",
                "MB",
                "3",
                "127.0.0.1"
            ]
        );
        assert!(
            lines[0].starts_with("NAME   STATE  LAST SEEN  VERSION"),
            "{t}"
        );
    }
}
