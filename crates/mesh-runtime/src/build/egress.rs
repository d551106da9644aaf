//! The build network's egress: which addresses a build may reach ([`EgressPolicy`]) and the
//! proxy that enforces it ([`serve`]), an in-process HTTP proxy (`CONNECT host:port` and
//! absolute-form `GET http://host/...`) that resolves names itself, refuses destinations the
//! policy denies, and only accepts the one peer it serves.
//!
//! A build's own network namespace can reach nothing but the proxy's port on the host side of
//! its veth (see [`super::netns`]), so every connection out of a build goes through here.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::error::{Error, Result};

/// The one address-range type of the platform (also the router's trusted proxies): it refuses
/// host bits past the prefix with a hint, and matches IPv4-mapped IPv6 addresses as IPv4.
pub use mesh_types::Cidr;

/// Ranges no build reaches unless the operator allows them (`--build-allow`), with the reason
/// a refusal gives.
const BUILT_IN_DENY: [(&str, &str); 20] = [
    ("10.0.0.0/8", "a private address (RFC 1918)"),
    ("172.16.0.0/12", "a private address (RFC 1918)"),
    ("192.168.0.0/16", "a private address (RFC 1918)"),
    (
        "100.64.0.0/10",
        "a shared address (RFC 6598, carrier-grade NAT)",
    ),
    ("169.254.0.0/16", "a link-local address"),
    ("198.18.0.0/15", "a benchmarking address (RFC 2544)"),
    ("192.0.0.0/24", "an IETF protocol assignment (RFC 6890)"),
    ("224.0.0.0/4", "a multicast address"),
    ("240.0.0.0/4", "a reserved address"),
    ("fc00::/7", "a unique local IPv6 address"),
    ("fe80::/10", "a link-local IPv6 address"),
    ("ff00::/8", "a multicast IPv6 address"),
    // Prefixes that embed or translate to an IPv4 address the checks above would refuse.
    ("64:ff9b::/96", "a NAT64 address"),
    ("64:ff9b:1::/48", "a NAT64 address"),
    ("2002::/16", "a 6to4 address"),
    ("2001::/32", "a Teredo address"),
    ("::/96", "an IPv4-compatible IPv6 address"),
    ("100::/64", "a discard-only IPv6 address"),
    ("2001:db8::/32", "an IPv6 documentation address"),
    ("fec0::/10", "a site-local IPv6 address"),
];

/// What a build may connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressPolicy {
    /// The host's own addresses: never reachable, whatever `allow` says.
    pub host_addresses: Vec<IpAddr>,
    /// The operator's extra denials (`--build-deny`); they win over `allow`.
    pub deny: Vec<Cidr>,
    /// The operator's exceptions to the built-in denials (`--build-allow`), e.g. a registry on
    /// a private address. They never open loopback or the host's own addresses.
    pub allow: Vec<Cidr>,
}

impl EgressPolicy {
    /// The policy with the host's current addresses (`ip -j addr`). Fails, closed, when the
    /// addresses cannot be read: a build without them could reach the host.
    pub async fn with_host_addresses(deny: Vec<Cidr>, allow: Vec<Cidr>) -> Result<Self> {
        Ok(EgressPolicy {
            host_addresses: host_addresses().await?,
            deny,
            allow,
        })
    }

    /// `Err(reason)` when a build may not connect to `ip`.
    pub fn check(&self, ip: IpAddr) -> std::result::Result<(), String> {
        let ip = match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => ip,
            },
            v4 => v4,
        };
        if ip.is_loopback() {
            return Err("a loopback address".into());
        }
        if ip.is_unspecified() || Cidr::from_str("0.0.0.0/8").is_ok_and(|c| c.contains(ip)) {
            return Err("an unspecified address (it means this host)".into());
        }
        if ip == IpAddr::V4(Ipv4Addr::BROADCAST) {
            return Err("the broadcast address".into());
        }
        if self.host_addresses.contains(&ip) {
            return Err("an address of this host".into());
        }
        if let Some(c) = self.deny.iter().find(|c| c.contains(ip)) {
            return Err(format!("in {c}, which the operator denies (--build-deny)"));
        }
        if self.allow.iter().any(|c| c.contains(ip)) {
            return Ok(());
        }
        for (cidr, reason) in BUILT_IN_DENY {
            let c = Cidr::from_str(cidr).expect("built-in ranges parse");
            if c.contains(ip) {
                return Err(format!("{reason}, in {c}"));
            }
        }
        Ok(())
    }
}

/// Every address of every interface of the host (`ip -j addr`).
pub async fn host_addresses() -> Result<Vec<IpAddr>> {
    let out = tokio::process::Command::new("ip")
        .args(["-j", "addr"])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| Error::invalid("host addresses", format!("running `ip -j addr`: {e}")))?;
    if !out.status.success() {
        return Err(Error::Command {
            command: "ip -j addr".into(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    parse_host_addresses(&out.stdout)
}

fn parse_host_addresses(json: &[u8]) -> Result<Vec<IpAddr>> {
    let bad = |r: String| Error::invalid("`ip -j addr` output", r);
    let v: serde_json::Value = serde_json::from_slice(json).map_err(|e| bad(e.to_string()))?;
    let links = v.as_array().ok_or_else(|| bad("not a list".into()))?;
    let mut out = Vec::new();
    for link in links {
        for a in link["addr_info"].as_array().into_iter().flatten() {
            if let Some(local) = a["local"].as_str() {
                out.push(
                    local
                        .parse::<IpAddr>()
                        .map_err(|_| bad(format!("{local:?} is not an address")))?,
                );
            }
        }
    }
    if out.is_empty() {
        return Err(bad("it lists no address at all".into()));
    }
    Ok(out)
}

/// The proxy's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyLimits {
    /// Connections open at once; more wait for one to end.
    pub connections: usize,
    /// A tunnel or request with no byte either way for this long is closed.
    pub idle: Duration,
    /// Reading a request head, resolving and connecting, each.
    pub setup: Duration,
}

impl Default for ProxyLimits {
    fn default() -> Self {
        ProxyLimits {
            connections: 128,
            idle: Duration::from_secs(120),
            setup: Duration::from_secs(30),
        }
    }
}

/// Largest request head the proxy reads.
const MAX_HEAD: usize = 16 * 1024;

/// Serves `listener` until the future is dropped: connections from `peer` only, each one
/// request (`CONNECT` or absolute-form HTTP) to a destination `policy` allows. Refusals are
/// sent to `denied` as one line each (for the build's log) as well as to the client.
pub async fn serve(
    listener: TcpListener,
    peer: IpAddr,
    policy: Arc<EgressPolicy>,
    limits: ProxyLimits,
    denied: Option<tokio::sync::mpsc::UnboundedSender<String>>,
) {
    let slots = Arc::new(Semaphore::new(limits.connections.max(1)));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, from) = match listener.accept().await {
            Ok(x) => x,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if from.ip() != peer {
            // Someone else on the host's side: no answer at all.
            continue;
        }
        let policy = policy.clone();
        let denied = denied.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(msg) = handle(stream, &policy, &limits).await
                && let Some(d) = denied
            {
                let _ = d.send(format!("-----> build proxy: {msg}"));
            }
        });
    }
}

/// One client connection. `Err` is a refusal worth logging.
async fn handle(
    mut client: TcpStream,
    policy: &EgressPolicy,
    limits: &ProxyLimits,
) -> std::result::Result<(), String> {
    let (head, rest) = match tokio::time::timeout(limits.setup, read_head(&mut client)).await {
        Ok(Ok(x)) => x,
        Ok(Err(reason)) => {
            let _ = reply(&mut client, "400 Bad Request", &reason).await;
            return Ok(());
        }
        Err(_) => return Ok(()),
    };
    let request = match Request::parse(&head) {
        Ok(r) => r,
        Err(reason) => {
            let _ = reply(&mut client, "400 Bad Request", &reason).await;
            return Ok(());
        }
    };
    let upstream = match tokio::time::timeout(
        limits.setup,
        connect(&request.host, request.port, policy),
    )
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(Refusal::Denied(reason))) => {
            let msg = format!("refused {}:{}: {reason}", request.host, request.port);
            let _ = reply(&mut client, "403 Forbidden", &msg).await;
            return Err(msg);
        }
        Ok(Err(Refusal::Failed(reason))) => {
            let msg = format!("{}:{}: {reason}", request.host, request.port);
            let _ = reply(&mut client, "502 Bad Gateway", &msg).await;
            return Ok(());
        }
        Err(_) => {
            let msg = format!("connecting to {}:{} timed out", request.host, request.port);
            let _ = reply(&mut client, "504 Gateway Timeout", &msg).await;
            return Ok(());
        }
    };
    let mut upstream = upstream;
    if request.connect {
        if client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await
            .is_err()
        {
            return Ok(());
        }
    } else if upstream.write_all(&request.forward_head).await.is_err() {
        return Ok(());
    }
    if !rest.is_empty() && upstream.write_all(&rest).await.is_err() {
        return Ok(());
    }
    relay(client, upstream, limits.idle).await;
    Ok(())
}

/// Reads up to the end of the head; returns it and whatever came after it.
async fn read_head(s: &mut TcpStream) -> std::result::Result<(Vec<u8>, Vec<u8>), String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok((buf, rest));
        }
        if buf.len() > MAX_HEAD {
            return Err(format!("the request head is over {MAX_HEAD} bytes"));
        }
        let n = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the connection closed before the request head ended".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A request the proxy serves.
#[derive(Debug, PartialEq, Eq)]
struct Request {
    connect: bool,
    host: String,
    port: u16,
    /// For absolute-form requests: the head to send upstream (origin-form, no proxy headers,
    /// `Connection: close`).
    forward_head: Vec<u8>,
}

impl Request {
    fn parse(head: &[u8]) -> std::result::Result<Request, String> {
        let text = std::str::from_utf8(head).map_err(|_| "the request head is not UTF-8")?;
        let mut lines = text.split("\r\n");
        let first = lines.next().unwrap_or("");
        let mut parts = first.split(' ');
        let (Some(method), Some(target), Some(version), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("malformed request line {first:?}"));
        };
        if !version.starts_with("HTTP/1.") {
            return Err(format!("unsupported version {version:?}"));
        }
        if method == "CONNECT" {
            let (host, port) = split_host_port(target, None)?;
            return Ok(Request {
                connect: true,
                host,
                port,
                forward_head: Vec::new(),
            });
        }
        let Some(after) = target.strip_prefix("http://") else {
            return Err(format!(
                "{target:?} is not an absolute http:// URL (https goes through CONNECT)"
            ));
        };
        let (authority, path) = match after.find(['/', '?']) {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, "/"),
        };
        if authority.contains('@') {
            return Err("URLs with credentials are not proxied".into());
        }
        let (host, port) = split_host_port(authority, Some(80))?;
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        let mut out = format!("{method} {path} {version}\r\n");
        let mut has_host = false;
        for line in lines.filter(|l| !l.is_empty()) {
            let name = line.split(':').next().unwrap_or("").trim();
            if name.eq_ignore_ascii_case("host") {
                has_host = true;
            }
            if [
                "proxy-connection",
                "proxy-authorization",
                "connection",
                "keep-alive",
            ]
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h))
            {
                continue;
            }
            out.push_str(line);
            out.push_str("\r\n");
        }
        if !has_host {
            out.push_str(&format!("Host: {authority}\r\n"));
        }
        out.push_str("Connection: close\r\n\r\n");
        Ok(Request {
            connect: false,
            host,
            port,
            forward_head: out.into_bytes(),
        })
    }
}

fn split_host_port(s: &str, default: Option<u16>) -> std::result::Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{s:?}: unclosed '['"))?;
        (h, after.strip_prefix(':'))
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = match (port, default) {
        (Some(p), _) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{s:?}: bad port"))?,
        (None, Some(d)) => d,
        (None, None) => return Err(format!("{s:?} names no port")),
    };
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
    {
        return Err(format!("{host:?} is not a host name"));
    }
    Ok((host.to_ascii_lowercase(), port))
}

enum Refusal {
    Denied(String),
    Failed(String),
}

/// Resolves `host` and connects to the first address the policy allows; when none is allowed
/// the refusal names the first denied one.
async fn connect(
    host: &str,
    port: u16,
    policy: &EgressPolicy,
) -> std::result::Result<TcpStream, Refusal> {
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| Refusal::Failed(format!("cannot resolve: {e}")))?
            .collect(),
    };
    let mut denied = None;
    let mut last = None;
    for a in &addrs {
        match policy.check(a.ip()) {
            Ok(()) => match TcpStream::connect(a).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(format!("{a}: {e}")),
            },
            Err(reason) => {
                denied.get_or_insert_with(|| format!("{} is {reason}", a.ip()));
            }
        }
    }
    match (last, denied) {
        (Some(e), _) => Err(Refusal::Failed(e)),
        (None, Some(d)) => Err(Refusal::Denied(d)),
        (None, None) => Err(Refusal::Failed("the name has no address".into())),
    }
}

async fn reply(s: &mut TcpStream, status: &str, message: &str) -> std::io::Result<()> {
    let body = format!("widemesh build proxy: {message}\n");
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(body.as_bytes()).await?;
    s.shutdown().await
}

/// Copies both ways until both sides are done or nothing moved for `idle`.
async fn relay(mut a: TcpStream, mut b: TcpStream, idle: Duration) {
    let (mut ar, mut aw) = a.split();
    let (mut br, mut bw) = b.split();
    let (mut buf_a, mut buf_b) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
    let (mut a_open, mut b_open) = (true, true);
    while a_open || b_open {
        tokio::select! {
            r = ar.read(&mut buf_a), if a_open => match r {
                Ok(0) | Err(_) => { a_open = false; let _ = bw.shutdown().await; }
                Ok(n) => if bw.write_all(&buf_a[..n]).await.is_err() { return; },
            },
            r = br.read(&mut buf_b), if b_open => match r {
                Ok(0) | Err(_) => { b_open = false; let _ = aw.shutdown().await; }
                Ok(n) => if aw.write_all(&buf_b[..n]).await.is_err() { return; },
            },
            _ = tokio::time::sleep(idle) => return,
        }
    }
}

/// The environment that points a build's package managers at the proxy `http://host:port`:
/// the usual `*_PROXY` variables (curl, apt, pip, npm, gem, bundler, composer, cargo, go, git)
/// plus the ones some tools want spelled their own way (npm, cargo, Maven and Gradle's JVM).
pub fn proxy_env(host: Ipv4Addr, port: u16) -> Vec<(String, String)> {
    let url = format!("http://{host}:{port}");
    let no_proxy = "localhost,127.0.0.1,::1".to_string();
    let jvm = format!(
        "-Dhttp.proxyHost={host} -Dhttp.proxyPort={port} -Dhttps.proxyHost={host} -Dhttps.proxyPort={port} -Dhttp.nonProxyHosts=localhost|127.0.0.1"
    );
    let mut env: Vec<(String, String)> = [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
        "npm_config_proxy",
        "npm_config_https_proxy",
        "CARGO_HTTP_PROXY",
        "COMPOSER_HTTP_PROXY",
    ]
    .iter()
    .map(|k| (k.to_string(), url.clone()))
    .collect();
    env.push(("NO_PROXY".into(), no_proxy.clone()));
    env.push(("no_proxy".into(), no_proxy));
    env.push(("MAVEN_OPTS".into(), jvm.clone()));
    env.push(("GRADLE_OPTS".into(), jvm));
    env
}

/// Names [`proxy_env`] sets; a build's own config may not override them.
pub fn is_proxy_var(name: &str) -> bool {
    proxy_env(Ipv4Addr::LOCALHOST, 1)
        .iter()
        .any(|(k, _)| k == name)
        || name.eq_ignore_ascii_case("all_proxy")
        || name.eq_ignore_ascii_case("ftp_proxy")
}

#[cfg(test)]
mod tests;
