//! Names of the kernel objects the runtime owns, derived from its prefix, so that two runtimes
//! (or two parallel tests) on one host never share an interface, namespace, table or cgroup,
//! and so that everything a runtime made can be found again by name.
//!
//! Interface names have at most 15 bytes, so bridges and host-side veths carry a hash of the
//! environment or instance: `<prefix>b<8 hex>` and `<prefix>v<9 hex>` with a prefix of at most
//! 5 characters.

use std::net::Ipv4Addr;

use crate::error::{Error, Result};

pub const MAX_PREFIX_LEN: usize = 5;
const BRIDGE_HASH_LEN: usize = 8;
const VETH_HASH_LEN: usize = 9;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    prefix: String,
    table: String,
    cgroup_parent: String,
}

impl Names {
    pub fn new(prefix: &str, table: &str, cgroup_parent: &str) -> Result<Self> {
        let ok = |s: &str| {
            s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        };
        if prefix.is_empty()
            || prefix.len() > MAX_PREFIX_LEN
            || !ok(prefix)
            || !prefix.starts_with(|c: char| c.is_ascii_lowercase())
        {
            return Err(Error::invalid(
                "interface prefix",
                format!(
                    "{prefix:?} must be 1-{MAX_PREFIX_LEN} lowercase letters or digits, starting with a letter"
                ),
            ));
        }
        let word = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.starts_with(|c: char| c.is_ascii_alphabetic())
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        if !word(table) {
            return Err(Error::invalid(
                "nftables table name",
                format!("{table:?} must be letters, digits or '_', starting with a letter"),
            ));
        }
        if !word(cgroup_parent) {
            return Err(Error::invalid(
                "cgroup parent",
                format!("{cgroup_parent:?} must be letters, digits or '_', starting with a letter"),
            ));
        }
        Ok(Names {
            prefix: prefix.to_string(),
            table: table.to_string(),
            cgroup_parent: cgroup_parent.to_string(),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn cgroup_parent(&self) -> &str {
        &self.cgroup_parent
    }

    pub fn bridge(&self, environment: &str) -> String {
        format!("{}b{}", self.prefix, &hex(environment)[..BRIDGE_HASH_LEN])
    }

    /// An nft interface wildcard matching every bridge of this runtime.
    pub fn bridge_glob(&self) -> String {
        format!("{}b*", self.prefix)
    }

    pub fn host_veth(&self, id: &str) -> String {
        format!("{}v{}", self.prefix, &hex(id)[..VETH_HASH_LEN])
    }

    pub fn netns(&self, id: &str) -> String {
        format!("{}-{id}", self.prefix)
    }

    /// OCI `cgroupsPath` for the cgroupfs driver: `/<parent>/<id>` under every hierarchy.
    pub fn cgroups_path(&self, id: &str) -> String {
        format!("/{}/{id}", self.cgroup_parent)
    }

    /// Whether an interface name is one of ours (exact shape, not just the prefix, so a runtime
    /// with prefix `wm` never claims the interfaces of one with prefix `wmb`).
    pub fn owns_link(&self, name: &str) -> bool {
        self.link_role(name).is_some()
    }

    /// What one of our interfaces would be, by its name's shape. A name can have both shapes
    /// of two runtimes (prefix `wm`'s veth `wmv` + 9 hex is also prefix `wmv`'s bridge `wmvb` +
    /// 8 hex), so whoever removes by name also checks the link's kind ([`LinkRole::kind`]).
    pub fn link_role(&self, name: &str) -> Option<LinkRole> {
        let rest = name.strip_prefix(&self.prefix)?;
        let is_hex = |s: &str| {
            s.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        };
        match (rest.strip_prefix('b'), rest.strip_prefix('v')) {
            (Some(h), _) if h.len() == BRIDGE_HASH_LEN && is_hex(h) => Some(LinkRole::Bridge),
            (_, Some(h)) if h.len() == VETH_HASH_LEN && is_hex(h) => Some(LinkRole::HostVeth),
            _ => None,
        }
    }

    /// The instance id of one of our network namespaces.
    pub fn netns_instance<'a>(&self, netns: &'a str) -> Option<&'a str> {
        netns.strip_prefix(&self.prefix)?.strip_prefix('-')
    }
}

/// The two kinds of interface the runtime makes in the host namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRole {
    /// An environment's bridge.
    Bridge,
    /// The host end of an instance's veth pair.
    HostVeth,
}

impl LinkRole {
    /// The kernel's link kind (`ip -d link`'s `info_kind`) an interface of this role has.
    pub fn kind(self) -> &'static str {
        match self {
            LinkRole::Bridge => "bridge",
            LinkRole::HostVeth => "veth",
        }
    }
}

/// A MAC address derived from an IPv4 address, as Docker does: a re-created instance with the
/// same address gets the same MAC, so peers' neighbour caches stay right (a random MAC made the
/// first connection after an address was reused take 11-39 s on this kind of host).
pub fn mac_for(addr: Ipv4Addr) -> String {
    let [a, b, c, d] = addr.octets();
    format!("02:fa:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
}

/// 64-bit FNV-1a as 16 hex digits: stable across releases and platforms, unlike std's hasher.
fn hex(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests;
