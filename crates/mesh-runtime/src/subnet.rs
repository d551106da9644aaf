//! IPv4 subnets (`10.231.7.0/24`): the one address type an environment's network needs.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An IPv4 network in CIDR form. The host part of `network` is always zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Net {
    network: Ipv4Addr,
    prefix: u8,
}

/// Prefixes an environment network may use: big enough for a gateway and a few instances,
/// small enough to be one broadcast domain.
pub const PREFIX_RANGE: std::ops::RangeInclusive<u8> = 16..=29;

impl Ipv4Net {
    /// Refuses prefixes outside [`PREFIX_RANGE`] and addresses with host bits set, so a typo
    /// like `10.1.2.3/24` is an error rather than a silently different network.
    pub fn new(network: Ipv4Addr, prefix: u8) -> Result<Self, String> {
        if !PREFIX_RANGE.contains(&prefix) {
            return Err(format!(
                "prefix /{prefix} is outside /{}../{}",
                PREFIX_RANGE.start(),
                PREFIX_RANGE.end()
            ));
        }
        let net = Ipv4Net { network, prefix };
        if u32::from(network) & !net.mask() != 0 {
            return Err(format!(
                "{network}/{prefix} has host bits set; did you mean {}/{prefix}?",
                Ipv4Addr::from(u32::from(network) & net.mask())
            ));
        }
        Ok(net)
    }

    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    fn mask(&self) -> u32 {
        u32::MAX << (32 - u32::from(self.prefix))
    }

    fn base(&self) -> u32 {
        u32::from(self.network)
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base() | !self.mask())
    }

    /// The bridge's address: the first host address.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base() + 1)
    }

    /// How many addresses instances can get: all hosts but the gateway.
    pub fn instance_capacity(&self) -> u32 {
        (!self.mask()) - 2
    }

    /// The `n`th instance address (0-based), after the gateway.
    pub fn instance_address(&self, n: u32) -> Option<Ipv4Addr> {
        (n < self.instance_capacity()).then(|| Ipv4Addr::from(self.base() + 2 + n))
    }

    /// The inverse of [`Ipv4Net::instance_address`].
    pub fn instance_index(&self, addr: Ipv4Addr) -> Option<u32> {
        let a = u32::from(addr);
        if !self.contains(addr) || a < self.base() + 2 || addr == self.broadcast() {
            return None;
        }
        Some(a - self.base() - 2)
    }

    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & self.mask() == self.base()
    }

    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        self.contains(other.network) || other.contains(self.network)
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl FromStr for Ipv4Net {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("subnet {s:?} is not in CIDR form like 10.231.7.0/24"))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("subnet {s:?}: {addr:?} is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| format!("subnet {s:?}: {prefix:?} is not a prefix length"))?;
        Ipv4Net::new(addr, prefix).map_err(|e| format!("subnet {s:?}: {e}"))
    }
}

impl Serialize for Ipv4Net {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ipv4Net {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
