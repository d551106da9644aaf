//! What a runtime's sweep removes at start ([`crate::Runtime::sweep`]): the kernel objects and
//! files that carry this runtime's names (its prefix, its cgroup parent, its data directory)
//! but that none of its records owns. A pure decision over what was observed, so that what is
//! kept is pinned by unit tests: everything an instance record or a network record names stays,
//! since the agent adopts those instances after a restart, and nothing another prefix's shape
//! matches is ever touched.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::names::Names;

/// What the runtime's records own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owned {
    /// Ids of the instances with a record (`instances/<id>/instance.json`).
    pub instances: BTreeSet<String>,
    /// Bridges of network records and instance records, host veths of instance records.
    pub links: BTreeSet<String>,
    /// Network namespaces of instance records.
    pub netns: BTreeSet<String>,
}

/// What is there, read from the host and the data directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    /// Interfaces of the host namespace and their kind (`bridge`, `veth`, `dummy`, "" for none).
    pub links: Vec<(String, String)>,
    pub netns: Vec<String>,
    /// Containers in the runtime's own runc root.
    pub containers: Vec<String>,
    /// Entries of `<root>/instances/`.
    pub instance_dirs: Vec<String>,
    /// Mount points below `<root>/instances/`.
    pub mounts: Vec<PathBuf>,
    /// Child cgroups of the runtime's parent cgroup, under every hierarchy.
    pub cgroups: Vec<PathBuf>,
    /// Addresses held in network records: environment, owner, address.
    pub addresses: Vec<(String, String, Ipv4Addr)>,
}

/// One thing to remove, and how it reads in the agent's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leftover {
    Container {
        id: String,
    },
    Link {
        name: String,
        kind: String,
    },
    Netns {
        name: String,
    },
    Address {
        environment: String,
        owner: String,
        address: Ipv4Addr,
    },
    Mount {
        path: PathBuf,
    },
    InstanceDir {
        path: PathBuf,
    },
    Cgroup {
        path: PathBuf,
    },
}

impl fmt::Display for Leftover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Leftover::Container { id } => write!(f, "container {id} (no instance record)"),
            Leftover::Link { name, kind } => {
                write!(f, "{kind} {name} (no network or instance record names it)")
            }
            Leftover::Netns { name } => {
                write!(f, "network namespace {name} (no instance record names it)")
            }
            Leftover::Address {
                environment,
                owner,
                address,
            } => write!(
                f,
                "address {address} of environment {environment} held for {owner} (no instance record)"
            ),
            Leftover::Mount { path } => {
                write!(f, "mount {} (no instance record)", path.display())
            }
            Leftover::InstanceDir { path } => {
                write!(
                    f,
                    "instance directory {} (no instance record)",
                    path.display()
                )
            }
            Leftover::Cgroup { path } => {
                write!(f, "cgroup {} (no instance record)", path.display())
            }
        }
    }
}

/// Everything in `seen` that is this runtime's by name and not in `owned`, in the order to
/// remove it: containers (they hold mounts and namespaces), veths before bridges and
/// namespaces, addresses, mounts deepest first, then the directories they were in, cgroups
/// last (runc's delete empties them).
pub fn leftovers(names: &Names, instances_dir: &Path, owned: &Owned, seen: &Seen) -> Vec<Leftover> {
    let mut out = Vec::new();
    for id in &seen.containers {
        if !owned.instances.contains(id) {
            out.push(Leftover::Container { id: id.clone() });
        }
    }
    let mut links: Vec<_> = seen
        .links
        .iter()
        .filter_map(|(name, kind)| {
            let role = names.link_role(name)?;
            (role.kind() == kind && !owned.links.contains(name)).then_some((role, name, kind))
        })
        .collect();
    // Host veths first: a bridge goes with whatever is still attached.
    links.sort_by_key(|(role, name, _)| (*role != crate::names::LinkRole::HostVeth, *name));
    for (_, name, kind) in links {
        out.push(Leftover::Link {
            name: name.clone(),
            kind: kind.clone(),
        });
    }
    for ns in &seen.netns {
        if names.netns_instance(ns).is_some() && !owned.netns.contains(ns) {
            out.push(Leftover::Netns { name: ns.clone() });
        }
    }
    for (environment, owner, address) in &seen.addresses {
        if !owned.instances.contains(owner) {
            out.push(Leftover::Address {
                environment: environment.clone(),
                owner: owner.clone(),
                address: *address,
            });
        }
    }
    let unowned_dir = |p: &Path| {
        p.strip_prefix(instances_dir)
            .ok()
            .and_then(|rest| rest.components().next())
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .is_some_and(|id| !owned.instances.contains(&id))
    };
    let mut mounts: Vec<&PathBuf> = seen.mounts.iter().filter(|m| unowned_dir(m)).collect();
    mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for m in mounts {
        out.push(Leftover::Mount { path: m.clone() });
    }
    for id in &seen.instance_dirs {
        if !owned.instances.contains(id) {
            out.push(Leftover::InstanceDir {
                path: instances_dir.join(id),
            });
        }
    }
    for c in &seen.cgroups {
        let id = c
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !owned.instances.contains(&id) {
            out.push(Leftover::Cgroup { path: c.clone() });
        }
    }
    out
}

#[cfg(test)]
mod tests;
