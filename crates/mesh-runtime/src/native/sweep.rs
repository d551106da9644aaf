//! The sweep's effects: read what the records own and what is there, let
//! [`crate::sweep::leftovers`] decide, remove each leftover. A removal that fails is logged
//! and skipped (the next start tries again); only failing to look is an error.

use std::path::Path;

use crate::error::{IoContext, Result};
use crate::host::{Cmd, command_error, mounts_under, run};
use crate::network::{delete_link, list_links_with_kind, list_netns};
use crate::runc::{is_missing, parse_list};
use crate::state::{InstanceRecord, list_dir, read_json};
use crate::sweep::{Leftover, Owned, Seen, leftovers};

use super::{Inner, networks, teardown};

pub(super) async fn sweep(rt: &Inner) -> Result<Vec<Leftover>> {
    let owned = owned(rt)?;
    let seen = seen(rt).await?;
    let mut removed = Vec::new();
    for l in leftovers(&rt.names, &rt.layout.instances(), &owned, &seen) {
        match remove(rt, &l).await {
            Ok(()) => removed.push(l),
            Err(e) => tracing::warn!(leftover = %l, error = %e, "cannot remove a leftover"),
        }
    }
    Ok(removed)
}

/// What the records name. An instance directory whose record cannot be read still owns what
/// its id's names are: keeping too much is safe, removing a live instance's veth is not.
fn owned(rt: &Inner) -> Result<Owned> {
    let mut owned = Owned::default();
    for id in list_dir(&rt.layout.instances())? {
        let record_path = rt.layout.instance(&id).record();
        let record = match read_json::<InstanceRecord>(&record_path) {
            Ok(Some(r)) => Some(r),
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(instance = %id, error = %e, "unreadable instance record; keeping what its id names");
                None
            }
        };
        owned.links.insert(rt.names.host_veth(&id));
        owned.netns.insert(rt.names.netns(&id));
        if let Some(r) = record {
            owned.links.insert(r.host_veth);
            owned.links.insert(r.bridge);
            owned.netns.insert(r.netns);
        }
        owned.instances.insert(id);
    }
    for net in networks::all(rt)? {
        owned.links.insert(net.bridge);
    }
    Ok(owned)
}

async fn seen(rt: &Inner) -> Result<Seen> {
    let runner = rt.runner.as_ref();
    let containers = run(runner, &rt.runc.list()).await?;
    let mountinfo = rt
        .sys
        .read_file(Path::new("/proc/self/mountinfo"))
        .context(|| "reading /proc/self/mountinfo".to_string())?;
    let mut cgroups = Vec::new();
    for parent in rt.cgroups()?.all_dirs(rt.names.cgroup_parent()) {
        for child in rt.sys.list_dir(&parent).unwrap_or_default() {
            let dir = parent.join(child);
            if rt.sys.exists(&dir.join("cgroup.procs")) {
                cgroups.push(dir);
            }
        }
    }
    let mut addresses = Vec::new();
    for net in networks::all(rt)? {
        for (addr, owner) in net.ipam.allocations() {
            addresses.push((net.spec.environment.clone(), owner.to_string(), addr));
        }
    }
    Ok(Seen {
        links: list_links_with_kind(runner).await?,
        netns: list_netns(runner).await?,
        containers: parse_list(&containers.stdout_str())
            .into_iter()
            .map(|c| c.id)
            .collect(),
        instance_dirs: list_dir(&rt.layout.instances())?,
        mounts: mounts_under(&mountinfo, &rt.layout.instances()),
        cgroups,
        addresses,
    })
}

async fn remove(rt: &Inner, l: &Leftover) -> Result<()> {
    let runner = rt.runner.as_ref();
    match l {
        Leftover::Container { id } => {
            let cmd = rt.runc.delete_force(id);
            let out = run(runner, &cmd).await?;
            if !out.success() && !is_missing(&out.stderr_str()) {
                return Err(command_error(&cmd, &out));
            }
            Ok(())
        }
        Leftover::Link { name, .. } => delete_link(runner, name).await,
        Leftover::Netns { name } => {
            let cmd = Cmd::new("ip").args(["netns", "del", name]);
            let out = run(runner, &cmd).await?;
            if !out.success() && !out.stderr_str().contains("No such file") {
                return Err(command_error(&cmd, &out));
            }
            Ok(())
        }
        Leftover::Address {
            environment, owner, ..
        } => networks::release_address(rt, environment, owner).await,
        Leftover::Mount { path } => rt
            .sys
            .unmount(path)
            .context(|| format!("unmounting {}", path.display())),
        Leftover::InstanceDir { path } => teardown::remove_dir(rt, path),
        Leftover::Cgroup { path } => remove_cgroup(rt, path).await,
    }
}

async fn remove_cgroup(rt: &Inner, path: &Path) -> Result<()> {
    let _guard = rt.cgroup_lock.write().await;
    rt.sys
        .remove_dir(path)
        .context(|| format!("removing cgroup {}", path.display()))
}
