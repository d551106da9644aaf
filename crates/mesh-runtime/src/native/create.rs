//! `create`: from a spec to a running container, undoing everything if any step fails.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, IoContext, Result};
use crate::hosts_file::{render_hosts, render_resolv};
use crate::network::{Wiring, netns_path, wire};
use crate::oci::{BundlePaths, config};
use crate::shim::{ShimArgs, ShimReport};
use crate::spec::{InstanceHandle, InstanceSpec};
use crate::state::{InstanceDir, InstanceRecord, write_json};

use super::{Inner, WritableLayer, networks, teardown};

pub(super) async fn create(rt: &Inner, spec: &InstanceSpec) -> Result<InstanceHandle> {
    spec.validate()?;
    for layer in &spec.image.layers {
        if !layer.is_dir() {
            return Err(Error::Image {
                path: layer.clone(),
                reason: "the layer is not a directory".into(),
            });
        }
    }
    let dir = rt.layout.instance(&spec.id);
    // Claiming the directory claims the id: a concurrent create of the same id fails here.
    match std::fs::create_dir(dir.path()) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(Error::AlreadyExists(spec.id.clone()));
        }
        Err(e) => return Err(e).context(|| format!("creating {}", dir.path().display())),
    }
    let network = match networks::claim_address(rt, &spec.environment, &spec.id, spec.address).await
    {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_dir_all(dir.path());
            return Err(e);
        }
    };
    let address = network
        .ipam
        .address_of(&spec.id)
        .expect("the address was just claimed");
    let record = InstanceRecord {
        spec: spec.clone(),
        address,
        netns: rt.names.netns(&spec.id),
        host_veth: rt.names.host_veth(&spec.id),
        bridge: network.bridge.clone(),
        cgroups_path: rt.names.cgroups_path(&spec.id),
        tmpfs_layer: matches!(rt.opts.writable_layer, WritableLayer::Tmpfs { .. }),
        created_at_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0),
        boot_id: rt.boot_id(),
    };
    match build(rt, &record, &dir, network.spec.subnet, network.spec.dns).await {
        Ok(pid) => Ok(InstanceHandle {
            id: spec.id.clone(),
            pid,
            address,
            logs: dir.logs(),
        }),
        Err(e) => {
            if let Err(undo) = teardown::teardown(rt, &record).await {
                tracing::warn!(id = %spec.id, error = %undo, "cleaning up a failed create");
            }
            Err(e)
        }
    }
}

fn write_file(path: &Path, content: &str, mode: u32) -> Result<()> {
    std::fs::write(path, content).context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .context(|| format!("setting the mode of {}", path.display()))
}

fn mkdir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).context(|| format!("creating {}", path.display()))
}

async fn build(
    rt: &Inner,
    record: &InstanceRecord,
    dir: &InstanceDir,
    subnet: crate::subnet::Ipv4Net,
    dns: Option<std::net::Ipv4Addr>,
) -> Result<u32> {
    let spec = &record.spec;
    // First, so that a crash from here on leaves something `delete` and `list` can find.
    write_json(&dir.record(), record)?;

    mkdir(&dir.layer())?;
    if let WritableLayer::Tmpfs { size_mb } = rt.opts.writable_layer {
        rt.sys
            .mount_tmpfs(&dir.layer(), size_mb)
            .context(|| format!("mounting a tmpfs at {}", dir.layer().display()))?;
    }
    for d in [dir.upper(), dir.work(), dir.rootfs()] {
        mkdir(&d)?;
    }
    write_file(
        &dir.hosts(),
        &render_hosts(&spec.hostname, record.address, &spec.hosts),
        0o644,
    )?;
    write_file(&dir.resolv(), &render_resolv(dns), 0o644)?;
    write_file(&dir.hostname(), &format!("{}\n", spec.hostname), 0o644)?;
    for log in [dir.logs().stdout, dir.logs().stderr] {
        write_file(&log, "", 0o640)?;
    }

    let lowers: Vec<_> = spec.image.layers.iter().rev().cloned().collect();
    rt.sys
        .mount_overlay(&lowers, &dir.upper(), &dir.work(), &dir.rootfs())
        .context(|| format!("mounting the overlay at {}", dir.rootfs().display()))?;

    wire(
        rt.runner.as_ref(),
        &Wiring {
            netns: record.netns.clone(),
            host_veth: record.host_veth.clone(),
            bridge: record.bridge.clone(),
            address: record.address,
            subnet,
        },
    )
    .await?;

    let paths = BundlePaths {
        netns: netns_path(&record.netns).into(),
        hosts: dir.hosts(),
        resolv: dir.resolv(),
        hostname: dir.hostname(),
        cgroups_path: record.cgroups_path.clone(),
        nofile: rt.nofile,
        kernel: rt.kernel,
    };
    write_json(&dir.config(), &config(spec, &paths)?)?;

    let args = ShimArgs {
        id: spec.id.clone(),
        runc: rt.runc.program.clone(),
        runc_root: rt.runc.root.clone(),
        bundle: dir.bundle(),
        stdout: dir.logs().stdout,
        stderr: dir.logs().stderr,
        pid_file: dir.pid_file(),
        exit_file: dir.exit_file(),
        runc_log: dir.runc_log(),
        oom_file: rt.cgroups()?.oom_file(&record.cgroups_path),
    };
    let _cgroups = rt.cgroup_lock.read().await;
    let report = rt
        .runner
        .start_shim(&rt.shim, &args, &dir.shim_log())
        .await
        .map_err(|e| crate::host::spawn_error(&rt.shim.program.to_string_lossy(), e))?;
    match report {
        ShimReport::Started { pid } => Ok(pid),
        ShimReport::Failed(message) => Err(Error::StartFailed {
            id: spec.id.clone(),
            message,
        }),
    }
}
