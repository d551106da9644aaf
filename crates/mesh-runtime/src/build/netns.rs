//! A build's network: its own network namespace joined to the host by a veth pair on a /30 of
//! the build subnet, an nftables table that lets it reach only the egress proxy's port on the
//! host side of the veth, and the proxy itself ([`super::egress`]), serving that one peer.
//!
//! The namespace has no default route: the build reaches its veth's /30 and nothing else, and
//! the table drops whatever it sends the host except TCP to the proxy, and anything forwarded
//! to or from it (should the host forward at all; the platform never turns `ip_forward` on).
//!
//! Names: namespace `wmb-<build id>`, host veth `wmb<8 hex>`, table `inet wmb_<8 hex>`; all
//! removed when the build ends ([`BuildNet::remove`], also on drop).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio::sync::mpsc::UnboundedSender;

use crate::error::{Error, Result};
use crate::subnet::Ipv4Net;

use super::egress::{Cidr, EgressPolicy, ProxyLimits, proxy_env, serve};

/// The port the proxy listens on, on the host side of each build's veth.
pub const PROXY_PORT: u16 = 3128;
/// The default `--build-subnet`.
pub const DEFAULT_SUBNET: &str = "10.230.0.0/16";

/// How builds reach the network: the subnet their /30s come from and the proxy's policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressConfig {
    pub subnet: Ipv4Net,
    pub deny: Vec<Cidr>,
    pub allow: Vec<Cidr>,
    pub limits: ProxyLimits,
}

impl Default for EgressConfig {
    fn default() -> Self {
        EgressConfig {
            subnet: DEFAULT_SUBNET.parse().expect("the default subnet parses"),
            deny: Vec::new(),
            allow: Vec::new(),
            limits: ProxyLimits::default(),
        }
    }
}

/// /30 slots in use by this process's builds.
static TAKEN: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

/// A build's live network; [`BuildNet::remove`] (or dropping it) takes everything down.
#[derive(Debug)]
pub struct BuildNet {
    pub netns_name: String,
    pub host_ip: Ipv4Addr,
    pub build_ip: Ipv4Addr,
    veth: String,
    table: String,
    slot: u32,
    proxy: Option<tokio::task::JoinHandle<()>>,
    removed: bool,
}

impl BuildNet {
    /// Sets up the namespace, veth, table and proxy for build `id`. Refusals the proxy makes
    /// are also sent to `lines`.
    pub async fn create(
        cfg: &EgressConfig,
        id: &str,
        lines: Option<UnboundedSender<String>>,
    ) -> Result<BuildNet> {
        super::check_id(id)?;
        // Fail closed: no host addresses, no build.
        let policy = EgressPolicy::with_host_addresses(cfg.deny.clone(), cfg.allow.clone())
            .await
            .map_err(|e| {
                Error::invalid(
                    "build network",
                    format!("reading the host's addresses: {e}"),
                )
            })?;
        let slot = take_slot(cfg.subnet, &policy.host_addresses)?;
        let base = u32::from(cfg.subnet.network()) + slot * 4;
        let hex = fnv32(&format!("{id}/{slot}/{}", std::process::id()));
        let mut net = BuildNet {
            netns_name: format!("wmb-{id}"),
            host_ip: Ipv4Addr::from(base + 1),
            build_ip: Ipv4Addr::from(base + 2),
            veth: format!("wmb{hex}"),
            table: format!("wmb_{hex}"),
            slot,
            proxy: None,
            removed: false,
        };
        if let Err(e) = net.setup(policy, cfg.limits, lines).await {
            net.remove().await;
            return Err(e);
        }
        Ok(net)
    }

    async fn setup(
        &mut self,
        policy: EgressPolicy,
        limits: ProxyLimits,
        lines: Option<UnboundedSender<String>>,
    ) -> Result<()> {
        let ns = self.netns_name.clone();
        let (veth, host, build) = (self.veth.clone(), self.host_ip, self.build_ip);
        ip(&["netns", "add", &ns]).await?;
        ip(&[
            "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ])
        .await?;
        // The host never talks IPv6 to a build.
        let _ = tokio::fs::write(format!("/proc/sys/net/ipv6/conf/{veth}/disable_ipv6"), "1").await;
        nft(&self.ruleset()).await?;
        ip(&["addr", "add", &format!("{host}/30"), "dev", &veth]).await?;
        ip(&["link", "set", &veth, "up"]).await?;
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{build}/30"),
            "dev",
            "eth0",
        ])
        .await?;
        ip(&["-n", &ns, "link", "set", "eth0", "up"]).await?;
        ip(&["-n", &ns, "link", "set", "lo", "up"]).await?;
        let listener = bind_when_ready(host).await?;
        self.proxy = Some(tokio::spawn(serve(
            listener,
            IpAddr::V4(build),
            Arc::new(policy),
            limits,
            lines,
        )));
        Ok(())
    }

    fn ruleset(&self) -> String {
        let (t, v, h, b) = (&self.table, &self.veth, self.host_ip, self.build_ip);
        format!(
            "table inet {t} {{\n\
             \tchain input {{\n\
             \t\ttype filter hook input priority -5; policy accept;\n\
             \t\tiifname \"{v}\" ip saddr {b} ip daddr {h} tcp dport {PROXY_PORT} accept\n\
             \t\tiifname \"{v}\" drop\n\
             \t}}\n\
             \tchain forward {{\n\
             \t\ttype filter hook forward priority -5; policy accept;\n\
             \t\tiifname \"{v}\" drop\n\
             \t\toifname \"{v}\" drop\n\
             \t}}\n\
             }}\n"
        )
    }

    /// The path runc and `unshare --net=` join.
    pub fn netns_path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.netns_name)
    }

    /// The environment that sends the build's package managers through the proxy.
    pub fn env(&self) -> Vec<(String, String)> {
        proxy_env(self.host_ip, PROXY_PORT)
    }

    /// Stops the proxy and removes the namespace, veth and table; errors are ignored (each
    /// part is removed on its own).
    pub async fn remove(&mut self) {
        if self.removed {
            return;
        }
        self.removed = true;
        if let Some(p) = self.proxy.take() {
            p.abort();
        }
        let _ = ip(&["link", "del", &self.veth]).await;
        let _ = ip(&["netns", "del", &self.netns_name]).await;
        let _ = nft(&format!("delete table inet {}\n", self.table)).await;
        release_slot(self.slot);
    }
}

impl Drop for BuildNet {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        if let Some(p) = self.proxy.take() {
            p.abort();
        }
        // A dropped build future: clean up synchronously.
        let run = |args: &[&str], input: Option<String>| {
            use std::io::Write;
            let mut c = std::process::Command::new(args[0]);
            c.args(&args[1..])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            if let Ok(mut child) = c.spawn() {
                if let (Some(i), Some(mut stdin)) = (input, child.stdin.take()) {
                    let _ = stdin.write_all(i.as_bytes());
                }
                let _ = child.wait();
            }
        };
        run(&["ip", "link", "del", &self.veth], None);
        run(&["ip", "netns", "del", &self.netns_name], None);
        run(
            &["nft", "-f", "-"],
            Some(format!("delete table inet {}\n", self.table)),
        );
        release_slot(self.slot);
    }
}

/// A free /30 of `subnet`: not taken by this process and not overlapping an address the host
/// has (another platform's build on the same machine).
fn take_slot(subnet: Ipv4Net, host: &[IpAddr]) -> Result<u32> {
    let slots = 1u32 << (32 - u32::from(subnet.prefix()) - 2);
    let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
        % slots;
    for i in 0..slots {
        let slot = (start + i) % slots;
        let base = u32::from(subnet.network()) + slot * 4;
        let used = host.iter().any(|a| match a {
            IpAddr::V4(v4) => u32::from(*v4) & !3 == base,
            IpAddr::V6(_) => false,
        });
        if !used && taken.insert(slot) {
            return Ok(slot);
        }
    }
    Err(Error::invalid(
        "build network",
        format!("every /30 of the build subnet {subnet} is in use"),
    ))
}

fn release_slot(slot: u32) {
    TAKEN
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&slot);
}

/// The host side's address may take a moment to leave IPv4's tentative state; bind retries
/// briefly.
async fn bind_when_ready(host: Ipv4Addr) -> Result<TcpListener> {
    let mut last = None;
    for _ in 0..50 {
        match TcpListener::bind((host, PROXY_PORT)).await {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    Err(Error::invalid(
        "build network",
        format!(
            "the build proxy cannot listen on {host}:{PROXY_PORT}: {}",
            last.map(|e| e.to_string()).unwrap_or_default()
        ),
    ))
}

async fn ip(args: &[&str]) -> Result<()> {
    run("ip", args, None).await
}

async fn nft(ruleset: &str) -> Result<()> {
    run("nft", &["-f", "-"], Some(ruleset)).await
}

async fn run(program: &str, args: &[&str], input: Option<&str>) -> Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::invalid("build network", format!("running {program}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        if let Some(i) = input {
            let _ = stdin.write_all(i.as_bytes()).await;
        }
        drop(stdin);
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| Error::invalid("build network", format!("waiting for {program}: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Command {
            command: format!("{program} {}", args.join(" ")),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// FNV-1a, 32 bits, as 8 hex digits: short unique-enough interface and table names.
fn fnv32(s: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}")
}
