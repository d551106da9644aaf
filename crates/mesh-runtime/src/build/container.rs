//! [`run_build`]: one command in a build container, from scratch directory to cleanup.
//!
//! `<scratch>/` holds `upper/` and `work/` (the writable layer), `mountpoints/` (a small top
//! lower layer holding every mount point, so runc never creates them in `upper/` and they are
//! never packed into an image), `bundle/` (`config.json`, `rootfs/` where the overlay is
//! mounted), `runc/` (runc's state for this one container) and `resolv.conf`.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;

use crate::cgroup::CgroupMounts;
use crate::error::{Error, IoContext, Result};
use crate::host::{RealSys, Sys};

use super::cgroups::{self, Active};
use super::lines::{drain, pipe, pump};
use super::netns::BuildNet;
use super::{BuildNetwork, BuildOutcome, BuildSpec, check_id, config::config, upper_dir};

/// How long runc gets to return once the container was killed.
const KILL_WAIT: Duration = Duration::from_secs(10);
/// `RLIMIT_NOFILE` of a build, lowered to our own hard limit if above it.
const NOFILE: u64 = 65_536;

/// Runs `spec.args` in a build container and waits for it (at most `spec.limits.timeout`),
/// sending its output to `lines`. A build that fails, runs out of memory or times out is an
/// `Ok` [`BuildOutcome`]; `Err` means the container could not be set up or run at all.
/// Everything but `scratch` is removed before this returns, and also if the future is dropped.
///
/// `upper_dir(scratch)` is created if missing and kept as it is otherwise, so a later step can
/// go on where an earlier one stopped; the other scratch directories are made afresh.
pub async fn run_build(spec: &BuildSpec, lines: UnboundedSender<String>) -> Result<BuildOutcome> {
    check_spec(spec)?;
    let runc = find_program("runc").ok_or_else(|| Error::MissingTool {
        program: "runc".into(),
    })?;
    let _active = Active::enter();
    let mut net = match &spec.network {
        BuildNetwork::Egress(cfg) => {
            Some(BuildNet::create(cfg, &spec.id, Some(lines.clone())).await?)
        }
        _ => None,
    };
    let mut container = Container {
        runc,
        state: spec.scratch.join("runc"),
        id: spec.id.clone(),
        rootfs: spec.scratch.join("bundle").join("rootfs"),
        cgroups_path: cgroups::cgroups_path(&spec.id),
        mounts: cgroups::mounts()?,
        armed: true,
    };
    let result = match prepare(spec, &container, net.as_ref()) {
        Ok(()) => container.run(spec, lines).await,
        Err(e) => Err(e),
    };
    let cleaned = tokio::task::spawn_blocking(move || container.cleanup())
        .await
        .map_err(|e| Error::invalid("build cleanup", e.to_string()));
    if let Some(n) = net.as_mut() {
        n.remove().await;
    }
    let cleaned = cleaned?;
    let outcome = result?;
    cleaned?;
    Ok(outcome)
}

fn check_spec(spec: &BuildSpec) -> Result<()> {
    check_id(&spec.id)?;
    if spec.args.is_empty() {
        return Err(Error::invalid("build command", "it is empty"));
    }
    check_container_path("build working directory", &spec.cwd)?;
    for m in &spec.mounts {
        check_container_path("bind mount target", &m.target)?;
        if !m.source.is_absolute() {
            return Err(Error::invalid(
                "bind mount source",
                format!("{} is not an absolute path", m.source.display()),
            ));
        }
    }
    for l in &spec.layers {
        let s = l.to_string_lossy();
        if !l.is_absolute() || s.contains([':', ',']) {
            return Err(Error::invalid(
                "build layer",
                format!("{s} must be an absolute path without ':' or ','"),
            ));
        }
    }
    if !spec.scratch.is_absolute() {
        return Err(Error::invalid(
            "build scratch directory",
            format!("{} is not an absolute path", spec.scratch.display()),
        ));
    }
    Ok(())
}

fn check_container_path(what: &'static str, p: &str) -> Result<()> {
    let path = Path::new(p);
    let clean = path.is_absolute()
        && path
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    if clean {
        Ok(())
    } else {
        Err(Error::invalid(
            what,
            format!("{p:?} must be an absolute path without \"..\""),
        ))
    }
}

pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Directories, the mount-point layer, the overlay and `config.json`.
fn prepare(spec: &BuildSpec, c: &Container, net: Option<&BuildNet>) -> Result<()> {
    let s = &spec.scratch;
    let mkdir =
        |p: &Path| std::fs::create_dir_all(p).context(|| format!("creating {}", p.display()));
    for fresh in ["work", "mountpoints", "bundle", "runc"] {
        let p = s.join(fresh);
        if p.exists() {
            std::fs::remove_dir_all(&p).context(|| format!("clearing {}", p.display()))?;
        }
    }
    for d in [
        upper_dir(s),
        s.join("work"),
        c.rootfs.clone(),
        c.state.clone(),
    ] {
        mkdir(&d)?;
    }
    let resolv = s.join("resolv.conf");
    let host_resolv = std::fs::read("/etc/resolv.conf").unwrap_or_default();
    std::fs::write(&resolv, host_resolv).context(|| format!("writing {}", resolv.display()))?;

    let points = s.join("mountpoints");
    for (dir, mode) in [
        ("proc", 0o555),
        ("dev", 0o755),
        ("sys", 0o555),
        ("tmp", 0o1777),
        ("etc", 0o755),
    ] {
        let p = points.join(dir);
        mkdir(&p)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
            .context(|| format!("setting the mode of {}", p.display()))?;
    }
    if spec.network == BuildNetwork::Host {
        let p = points.join("etc/resolv.conf");
        std::fs::write(&p, "").context(|| format!("creating {}", p.display()))?;
    }
    for m in &spec.mounts {
        let p = points.join(m.target.trim_start_matches('/'));
        if m.source.is_dir() {
            mkdir(&p)?;
        } else {
            if let Some(parent) = p.parent() {
                mkdir(parent)?;
            }
            std::fs::write(&p, "").context(|| format!("creating {}", p.display()))?;
        }
    }

    let mut lowers = vec![points];
    lowers.extend(spec.layers.iter().rev().cloned());
    RealSys
        .mount_overlay(&lowers, &upper_dir(s), &s.join("work"), &c.rootfs)
        .context(|| {
            format!(
                "mounting the build's overlay at {} (is {} on overlayfs?)",
                c.rootfs.display(),
                s.display()
            )
        })?;

    let hard = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(_, hard)| hard)
        .unwrap_or(NOFILE);
    let cfg = config(spec, &c.cgroups_path, &resolv, NOFILE.min(hard), net);
    let path = s.join("bundle").join("config.json");
    let bytes = serde_json::to_vec_pretty(&cfg).context(|| "encoding config.json".to_string())?;
    std::fs::write(&path, bytes).context(|| format!("writing {}", path.display()))
}

/// The container's kernel and runc objects; [`Container::cleanup`] (or dropping it) removes
/// them all.
#[derive(Debug)]
struct Container {
    runc: PathBuf,
    /// runc's `--root` for this container alone.
    state: PathBuf,
    id: String,
    rootfs: PathBuf,
    cgroups_path: String,
    mounts: CgroupMounts,
    armed: bool,
}

impl Container {
    fn runc_cmd(&self) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(&self.runc);
        c.arg("--root").arg(&self.state);
        c
    }

    async fn run(&self, spec: &BuildSpec, lines: UnboundedSender<String>) -> Result<BuildOutcome> {
        let (reader, out, err) = pipe()?;
        let bundle = spec.scratch.join("bundle");
        let mut cmd = self.runc_cmd();
        // `--keep`: the stopped container, and so its cgroup with the OOM counter, stays until
        // `runc delete`.
        cmd.args(["run", "--keep", "--bundle"])
            .arg(&bundle)
            .arg(&self.id)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true);
        let spawned = cmd.spawn();
        // The command holds our copies of the pipe's write end: drop them, or the reader never
        // sees the end.
        drop(cmd);
        let mut child = spawned.context(|| format!("running {}", self.runc.display()))?;
        let pump = pump(reader, lines);
        let (status, timed_out) =
            match tokio::time::timeout(spec.limits.timeout, child.wait()).await {
                Ok(status) => (status.context(|| "waiting for runc".to_string())?, false),
                Err(_) => {
                    let _ = self
                        .runc_cmd()
                        .args(["kill", &self.id, "KILL"])
                        .output()
                        .await;
                    let status = match tokio::time::timeout(KILL_WAIT, child.wait()).await {
                        Ok(s) => s.context(|| "waiting for runc".to_string())?,
                        Err(_) => {
                            let _ = child.kill().await;
                            child
                                .wait()
                                .await
                                .context(|| "waiting for runc".to_string())?
                        }
                    };
                    (status, true)
                }
            };
        let oom_killed = cgroups::oom_killed(&self.mounts, &self.cgroups_path);
        drain(pump).await;
        // runc reports a container killed by signal n as exit code 128 + n.
        let (exit_code, signal) = match (status.code(), status.signal()) {
            (Some(c), _) if c > 128 && c <= 128 + 64 => (Some(c), Some(c - 128)),
            (Some(c), _) => (Some(c), None),
            (None, sig) => (None, sig),
        };
        Ok(BuildOutcome {
            exit_code,
            signal,
            oom_killed,
            timed_out,
            limits: spec.limits,
        })
    }

    /// Kills and deletes the container, unmounts the overlay, removes the cgroup and runc's
    /// state; idempotent. Blocking (runc takes tens of milliseconds).
    fn cleanup(&mut self) -> Result<()> {
        if !self.armed {
            return Ok(());
        }
        self.armed = false;
        let runc = |args: &[&str]| {
            std::process::Command::new(&self.runc)
                .arg("--root")
                .arg(&self.state)
                .args(args)
                .stdin(Stdio::null())
                .output()
        };
        let mut first_error: Option<Error> = None;
        if self.state.join(&self.id).exists() {
            let _ = runc(&["kill", &self.id, "KILL"]);
            match runc(&["delete", "--force", &self.id]) {
                Ok(out) if !out.status.success() && self.state.join(&self.id).exists() => {
                    first_error.get_or_insert(Error::Command {
                        command: format!("runc delete --force {}", self.id),
                        status: format!("{}", out.status),
                        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
                    });
                }
                Err(e) => {
                    first_error.get_or_insert(Error::Io {
                        context: format!("running runc delete {}", self.id),
                        source: e,
                    });
                }
                _ => {}
            }
        }
        if let Err(e) = RealSys.unmount(&self.rootfs) {
            first_error.get_or_insert(Error::Io {
                context: format!("unmounting {}", self.rootfs.display()),
                source: e,
            });
        }
        cgroups::remove_leaf(&self.mounts, &self.cgroups_path);
        if first_error.is_none() {
            let _ = std::fs::remove_dir_all(&self.state);
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if let Err(e) = self.cleanup() {
            tracing::warn!(build = %self.id, error = %e, "cleaning up a build container");
        }
    }
}
