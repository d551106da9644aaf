//! `mesh provider`: credentials the platform creates servers with.

use anyhow::{Result, anyhow};
use clap::Subcommand;
use mesh_types::Name;
use mesh_types::api::{CreateProvider, ProviderKind};

use super::Ctx;
use crate::kv;
use crate::output::{datetime, or_dash, print, print_json, table};

#[derive(Debug, Subcommand)]
pub enum ProviderCmd {
    /// Register a provider; secrets are stored encrypted and never shown again
    ///
    /// An ssh provider is Linux servers you already have, reached as root with an ed25519 or
    /// ECDSA private key: `mesh provider add pool --kind ssh --server 203.0.113.7 --server
    /// 203.0.113.8:2222 --secret user=root --secret-file private_key=~/.ssh/id_ed25519`. With
    /// a pool (--server), `mesh rack create` takes a free server, installs this control plane's
    /// `mesh` binary under /var/lib/widemesh/<rack>/<server> and starts the agent under a
    /// supervisor; host keys are trusted on first contact and a changed one is refused. Without
    /// one, you start the racks' agents yourself with their join token.
    ///
    /// An aws provider makes EC2 instances: `mesh provider add ec2 --kind aws --secret
    /// access_key_id=AKIA... --secret secret_access_key=...` (optional secrets: endpoint,
    /// image=ami-... [default: the newest official Debian 12 AMI], subnet, security_group).
    /// A hetzner provider makes Hetzner Cloud servers: `mesh provider add hz --kind hetzner
    /// --secret token=...` (optional: endpoint, image [default: debian-12]). Their servers boot
    /// with cloud-init user data that downloads this control plane's `mesh` from its
    /// --advertise-url, which the servers must reach, and starts the agent; the rack's --region
    /// is the cloud's region or location and --size its instance or server type. For a
    /// Kubernetes rack (`mesh rack create --runtime kubernetes --servers N`) they run k3s
    /// instead, downloaded from the optional secret k3s_release [default: k3s's GitHub release
    /// v1.34.4+k3s1], and the first one hands the cluster to the control plane (on port 6443,
    /// which the control plane must reach). See docs/providers.md.
    Add {
        name: String,
        /// local (this machine), ssh (servers you already own), aws (EC2) or hetzner
        /// (Hetzner Cloud)
        #[arg(long)]
        kind: String,
        /// A server of an ssh provider's pool: HOST[:PORT], optionally with
        /// ,net-prefix=P,subnet-pool=CIDR for servers sharing one kernel (repeatable)
        #[arg(long = "server", value_name = "ADDR")]
        servers: Vec<String>,
        /// A secret, such as user=deploy (repeatable)
        #[arg(long = "secret", value_name = "KEY=VALUE")]
        secrets: Vec<String>,
        /// A secret read from a file, such as private_key=~/.ssh/id_ed25519 (repeatable)
        #[arg(long = "secret-file", value_name = "KEY=PATH")]
        secret_files: Vec<String>,
    },
    /// List providers (secret names only)
    #[command(visible_alias = "ls")]
    List,
    /// Remove a provider no rack uses
    #[command(visible_alias = "delete")]
    Remove { name: String },
}

/// The provider secret that holds an ssh provider's pool, one server a line.
const SERVERS: &str = "servers";

fn read_file(path: &std::path::Path) -> std::io::Result<String> {
    std::fs::read_to_string(path)
}

pub async fn run(ctx: &Ctx, cmd: ProviderCmd) -> Result<()> {
    match cmd {
        ProviderCmd::Add {
            name,
            kind,
            servers,
            secrets,
            secret_files,
        } => {
            let mut secrets = kv::collect_secrets(&secrets, &secret_files, &read_file)?;
            if !servers.is_empty() {
                if secrets.contains_key(SERVERS) {
                    anyhow::bail!("give the pool with --server only, not as a secret");
                }
                secrets.insert(SERVERS.to_string(), servers.join("\n"));
            }
            let req = CreateProvider {
                name: Name::parse_as("provider name", &name)?,
                kind: kind.parse::<ProviderKind>().map_err(|e| anyhow!(e))?,
                secrets,
            };
            let p = ctx.client()?.create_provider(&req).await?;
            if ctx.json() {
                print_json(&p);
            } else {
                let secrets = if p.secret_keys.is_empty() {
                    String::new()
                } else {
                    format!(" with secrets {}", p.secret_keys.join(", "))
                };
                print(format!("added provider {} ({}){secrets}", p.name, p.kind));
            }
        }
        ProviderCmd::List => {
            let providers = ctx.client()?.list_providers().await?;
            if ctx.json() {
                print_json(&providers);
            } else if providers.is_empty() {
                print(
                    "no providers yet: add one with `mesh provider add NAME --kind local|ssh|aws|hetzner`",
                );
            } else {
                let rows = providers
                    .iter()
                    .map(|p| {
                        vec![
                            p.name.to_string(),
                            p.kind.to_string(),
                            or_dash(Some(p.secret_keys.join(","))),
                            datetime(p.created_at),
                        ]
                    })
                    .collect();
                print(table(&["NAME", "KIND", "SECRETS", "CREATED"], rows));
            }
        }
        ProviderCmd::Remove { name } => {
            ctx.client()?.delete_provider(&name).await?;
            if !ctx.json() {
                print(format!("removed provider {name}"));
            }
        }
    }
    Ok(())
}
