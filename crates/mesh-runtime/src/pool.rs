//! Which /24 of a server's subnet pool a new environment gets: the lowest one that no
//! environment here has and that the host neither routes nor has an address in
//! ([`crate::hostnet`]). A pure decision, so every case is a unit test; the agent reads the
//! host through [`crate::Runtime::host_networks`] and logs what was skipped.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use crate::hostnet::HostNet;
use crate::subnet::Ipv4Net;

/// Each environment gets one /24: 253 instance addresses, one broadcast domain.
pub const ENV_PREFIX: u8 = 24;

/// /24s the host already uses, in a run of consecutive ones blocked by the same range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub first: Ipv4Net,
    pub last: Ipv4Net,
    /// The route or address that covers them.
    pub because: HostNet,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)?;
        } else {
            write!(f, "{} to {}", self.first, self.last)?;
        }
        write!(f, " (the host has {})", self.because)
    }
}

/// The outcome of [`choose`]: the subnet, and what was passed over on the way to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub subnet: Ipv4Net,
    pub skipped: Vec<Skipped>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error(
        "the subnet pool {pool} is smaller than a /{ENV_PREFIX}; give the agent a /16 to /{ENV_PREFIX} with --subnet-pool"
    )]
    TooSmall { pool: Ipv4Net },
    #[error(
        "the subnet pool {pool} is full: {} /{ENV_PREFIX}s are taken by environments on this server{} and {} by the host ({}); remove what holds them or give the agent another --subnet-pool",
        .environments.len(),
        list_envs(.environments),
        .host_count,
        .host.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    Exhausted {
        pool: Ipv4Net,
        environments: Vec<String>,
        host_count: usize,
        /// The host's ranges that cover part of the pool.
        host: Vec<HostNet>,
    },
}

/// At most this many environment names in an error: the count says the rest.
const NAMED_ENVIRONMENTS: usize = 5;

fn list_envs(envs: &[String]) -> String {
    if envs.is_empty() {
        return String::new();
    }
    let mut s = envs
        .iter()
        .take(NAMED_ENVIRONMENTS)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if envs.len() > NAMED_ENVIRONMENTS {
        s.push_str(", ...");
    }
    format!(" ({s})")
}

/// The /24s of `pool`, lowest first.
fn slices(pool: Ipv4Net) -> Result<Vec<Ipv4Net>, PoolError> {
    if pool.prefix() > ENV_PREFIX {
        return Err(PoolError::TooSmall { pool });
    }
    let base = u32::from(pool.network());
    let count = 1u32 << (ENV_PREFIX - pool.prefix());
    (0..count)
        .map(|i| {
            Ipv4Net::new(Ipv4Addr::from(base + (i << (32 - ENV_PREFIX))), ENV_PREFIX)
                .map_err(|_| PoolError::TooSmall { pool })
        })
        .collect()
}

/// The lowest /24 of `pool` that is not in `taken` (environment -> subnet, this server's) and
/// that no range in `host` overlaps.
pub fn choose(
    pool: Ipv4Net,
    taken: &BTreeMap<String, Ipv4Net>,
    host: &[HostNet],
) -> Result<Choice, PoolError> {
    let mut skipped: Vec<Skipped> = Vec::new();
    for net in slices(pool)? {
        if taken.values().any(|t| t.overlaps(&net)) {
            continue;
        }
        let Some(cover) = host.iter().find(|h| h.overlaps(&net)) else {
            return Ok(Choice {
                subnet: net,
                skipped,
            });
        };
        match skipped.last_mut() {
            Some(run) if run.because == *cover && next_of(run.last) == Some(net) => run.last = net,
            _ => skipped.push(Skipped {
                first: net,
                last: net,
                because: cover.clone(),
            }),
        }
    }
    let mut used: Vec<HostNet> = Vec::new();
    for s in &skipped {
        if !used.contains(&s.because) {
            used.push(s.because.clone());
        }
    }
    let host_count = skipped
        .iter()
        .map(|s| ((u32::from(s.last.network()) - u32::from(s.first.network())) >> 8) as usize + 1)
        .sum();
    Err(PoolError::Exhausted {
        pool,
        environments: taken
            .iter()
            .filter(|(_, n)| n.overlaps(&pool))
            .map(|(e, _)| e.clone())
            .collect(),
        host_count,
        host: used,
    })
}

fn next_of(net: Ipv4Net) -> Option<Ipv4Net> {
    let next = u32::from(net.network()).checked_add(1 << (32 - ENV_PREFIX))?;
    Ipv4Net::new(Ipv4Addr::from(next), ENV_PREFIX).ok()
}

#[cfg(test)]
mod tests;
