//! Undoing an instance, and everything (`purge`).
//!
//! The order matters: the container first (it holds the mounts and the namespace; killed if
//! it still runs, its shim given a moment to record the exit), then the veth before the netns (see
//! [`crate::network::unwire`]), the mounts deepest first, the cgroups, the address, and the
//! directory last, only once nothing is mounted below it: removing a directory tree through a
//! live mount would delete what the mount shows.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::cgroup::CgroupMounts;
use crate::error::{Error, IoContext, Result};
use crate::host::{Cmd, command_error, mounts_under, run};
use crate::network::{delete_link, list_links, list_netns, unwire};
use crate::nft::render_delete;
use crate::runc::{is_missing, parse_list};
use crate::state::{InstanceRecord, list_dir, read_json};

use super::{Inner, networks};

/// How long a shim gets to write the exit status of a container runc just killed.
const SHIM_EXIT_GRACE: Duration = Duration::from_secs(2);

pub(super) async fn teardown(rt: &Inner, record: &InstanceRecord) -> Result<()> {
    let id = &record.spec.id;
    let dir = rt.layout.instance(id);

    if dir.pid_file().exists() && !dir.exit_file().exists() {
        // Still running (as far as its shim knows). SIGKILL ends it within milliseconds and
        // lets the shim record the exit; `runc delete --force` alone would poll every 100 ms.
        let _ = run(rt.runner.as_ref(), &rt.runc.kill(id, "SIGKILL")).await?;
        let start = Instant::now();
        while !dir.exit_file().exists() && start.elapsed() < SHIM_EXIT_GRACE {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let cmd = rt.runc.delete_force(id);
    let out = run(rt.runner.as_ref(), &cmd).await?;
    if !out.success() && !is_missing(&out.stderr_str()) {
        return Err(command_error(&cmd, &out));
    }

    unwire(rt.runner.as_ref(), &record.netns, &record.host_veth).await?;
    unmount_all(rt, dir.path())?;
    remove_cgroups(rt, Some(&record.cgroups_path)).await?;
    networks::release_address(rt, &record.spec.environment, id).await?;
    remove_dir(rt, dir.path())
}

fn unmount_all(rt: &Inner, dir: &Path) -> Result<()> {
    for m in mounts_under(&mountinfo(rt)?, dir) {
        rt.sys
            .unmount(&m)
            .context(|| format!("unmounting {}", m.display()))?;
    }
    Ok(())
}

fn mountinfo(rt: &Inner) -> Result<String> {
    rt.sys
        .read_file(Path::new("/proc/self/mountinfo"))
        .context(|| "reading /proc/self/mountinfo".to_string())
}

pub(super) fn remove_dir(rt: &Inner, dir: &Path) -> Result<()> {
    let left = mounts_under(&mountinfo(rt)?, dir);
    if !left.is_empty() {
        return Err(Error::Io {
            context: format!(
                "not removing {}: {} is still mounted",
                dir.display(),
                left[0].display()
            ),
            source: std::io::Error::from(std::io::ErrorKind::ResourceBusy),
        });
    }
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).context(|| format!("removing {}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// Removes the instance's cgroup if runc left it (a failed start), then the runtime's parent
/// cgroup under every hierarchy where it is empty. A parent still holding other instances
/// refuses (EBUSY), which is the expected case.
async fn remove_cgroups(rt: &Inner, leaf: Option<&str>) -> Result<()> {
    let _guard = rt.cgroup_lock.write().await;
    let mounts = rt.cgroups()?;
    if let Some(leaf) = leaf {
        for d in mounts.all_dirs(leaf) {
            if rt.sys.exists(&d)
                && let Err(e) = rt.sys.remove_dir(&d)
            {
                tracing::warn!(dir = %d.display(), error = %e, "removing an instance cgroup");
            }
        }
    }
    remove_parents(rt, &mounts, false);
    Ok(())
}

fn remove_parents(rt: &Inner, mounts: &CgroupMounts, children_too: bool) {
    for d in mounts.all_dirs(rt.names.cgroup_parent()) {
        if !rt.sys.exists(&d) {
            continue;
        }
        if children_too {
            for child in rt.sys.list_dir(&d).unwrap_or_default() {
                let c = d.join(child);
                if rt.sys.exists(&c.join("cgroup.procs")) {
                    let _ = rt.sys.remove_dir(&c);
                }
            }
        }
        let _ = rt.sys.remove_dir(&d);
    }
}

/// Everything, found both through the records and by name, so that even a create that died
/// half-way (or a test that panicked) is cleaned up. Keeps going past failures and reports the
/// first one.
pub(super) async fn purge(rt: &Inner) -> Result<()> {
    let mut first: Option<Error> = None;
    let mut keep = |r: Result<()>| {
        if let Err(e) = r {
            tracing::warn!(error = %e, "purge");
            first.get_or_insert(e);
        }
    };
    for id in list_dir(&rt.layout.instances())? {
        let dir = rt.layout.instance(&id);
        match read_json::<InstanceRecord>(&dir.record()) {
            Ok(Some(record)) => keep(teardown(rt, &record).await),
            _ => {
                keep(unmount_all(rt, dir.path()));
                keep(remove_dir(rt, dir.path()));
            }
        }
    }
    let out = run(rt.runner.as_ref(), &rt.runc.list()).await?;
    for c in parse_list(&out.stdout_str()) {
        keep(
            run(rt.runner.as_ref(), &rt.runc.delete_force(&c.id))
                .await
                .map(drop),
        );
    }
    for ns in list_netns(rt.runner.as_ref()).await? {
        if rt.names.netns_instance(&ns).is_some() {
            let cmd = Cmd::new("ip").args(["netns", "del", &ns]);
            keep(run(rt.runner.as_ref(), &cmd).await.map(drop));
        }
    }
    for link in list_links(rt.runner.as_ref()).await? {
        if rt.names.owns_link(&link) {
            keep(delete_link(rt.runner.as_ref(), &link).await);
        }
    }
    {
        let _guard = rt.net_lock.lock().await;
        for name in list_dir(&rt.layout.networks())? {
            let _ = std::fs::remove_file(rt.layout.networks().join(name));
        }
        keep(crate::network::apply_nft(rt.runner.as_ref(), &render_delete(rt.names.table())).await);
    }
    {
        let _guard = rt.cgroup_lock.write().await;
        let mounts = rt.cgroups()?;
        remove_parents(rt, &mounts, true);
    }
    match first {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
