//! IPv4 ranges the host already uses: its routes (every table) and its interfaces' addresses,
//! read with `ip -j`. An environment's subnet must stay clear of them: a bridge on a subnet a
//! leftover bridge, a VPN or `docker0` also routes gets instances that run but cannot be
//! reached (their health checks fail with no hint why).

use std::fmt;
use std::net::Ipv4Addr;

use crate::error::Result;
use crate::host::{Cmd, CommandRunner, run_ok};
use crate::subnet::Ipv4Net;

/// Routes shorter than this are catch-alls (the default route, a VPN's `0.0.0.0/1` and
/// `128.0.0.0/1` pair): they route everything, so counting them as taken would leave no pool
/// usable, and a /24 bridge route is more specific than they are anyway.
pub const MIN_ROUTE_PREFIX: u8 = 8;

/// One range the host uses, and where it comes from (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostNet {
    pub network: Ipv4Addr,
    pub prefix: u8,
    /// The interface it is on (empty for a route without one, such as a blackhole).
    pub dev: String,
    pub kind: HostNetKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostNetKind {
    Route,
    Address,
}

impl HostNet {
    fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix.min(32)))
        }
    }

    /// Whether any address of `net` is also in this range.
    pub fn overlaps(&self, net: &Ipv4Net) -> bool {
        let mask = self.mask() & net_mask(net);
        u32::from(self.network) & mask == u32::from(net.network()) & mask
    }
}

fn net_mask(net: &Ipv4Net) -> u32 {
    u32::MAX << (32 - u32::from(net.prefix()))
}

impl fmt::Display for HostNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, on) = match self.kind {
            HostNetKind::Route => ("route", "dev"),
            HostNetKind::Address => ("address", "on"),
        };
        write!(f, "{what} {}/{}", self.network, self.prefix)?;
        if !self.dev.is_empty() {
            write!(f, " {on} {}", self.dev)?;
        }
        Ok(())
    }
}

/// `a.b.c.d/n` or `a.b.c.d` (a host route); `None` for `default`, IPv6 and anything else.
fn parse_cidr(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, p.parse::<u8>().ok()?),
        None => (s, 32),
    };
    let addr: Ipv4Addr = addr.parse().ok()?;
    (prefix <= 32).then_some((addr, prefix))
}

/// Routes from `ip -j -4 route show table all`, without catch-alls (see [`MIN_ROUTE_PREFIX`]).
pub fn parse_routes(json: &str) -> Vec<HostNet> {
    let rows: Vec<serde_json::Value> = serde_json::from_str(json).unwrap_or_default();
    rows.iter()
        .filter_map(|r| {
            let (network, prefix) = parse_cidr(r["dst"].as_str()?)?;
            (prefix >= MIN_ROUTE_PREFIX).then(|| HostNet {
                network,
                prefix,
                dev: r["dev"].as_str().unwrap_or_default().to_string(),
                kind: HostNetKind::Route,
            })
        })
        .collect()
}

/// Interface addresses from `ip -j -4 addr show`, as the subnets they sit in (an address
/// counts even on an interface that is down, whose route the kernel has not added yet).
pub fn parse_addrs(json: &str) -> Vec<HostNet> {
    let links: Vec<serde_json::Value> = serde_json::from_str(json).unwrap_or_default();
    let mut out = Vec::new();
    for link in &links {
        let dev = link["ifname"].as_str().unwrap_or_default();
        for a in link["addr_info"].as_array().into_iter().flatten() {
            if a["family"].as_str() != Some("inet") {
                continue;
            }
            let (Some(local), Some(prefix)) = (
                a["local"].as_str().and_then(|s| s.parse::<Ipv4Addr>().ok()),
                a["prefixlen"].as_u64().and_then(|p| u8::try_from(p).ok()),
            ) else {
                continue;
            };
            if prefix > 32 {
                continue;
            }
            out.push(HostNet {
                network: local,
                prefix,
                dev: dev.to_string(),
                kind: HostNetKind::Address,
            });
        }
    }
    out
}

/// Every route and address of the host (the runner's network namespace).
pub async fn read(runner: &dyn CommandRunner) -> Result<Vec<HostNet>> {
    let routes = run_ok(
        runner,
        &Cmd::new("ip").args(["-j", "-4", "route", "show", "table", "all"]),
    )
    .await?;
    let addrs = run_ok(runner, &Cmd::new("ip").args(["-j", "-4", "addr", "show"])).await?;
    let mut out = parse_routes(&routes.stdout_str());
    out.extend(parse_addrs(&addrs.stdout_str()));
    Ok(out)
}

#[cfg(test)]
mod tests;
