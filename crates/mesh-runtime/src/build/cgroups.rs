//! The cgroups of builds: `/widemesh_build/<id>` under every hierarchy.
//!
//! For [`run_build`](super::run_build) runc creates, limits and removes the build's cgroup from
//! `linux.resources`; this module only reads its OOM counter (the container is kept after exit
//! with `runc run --keep`, so the counter is still there). For
//! [`run_limited`](super::run_limited) this module does it all itself: it makes the directories,
//! writes the limits (v1 or v2 files, whichever the hierarchy has), kills what is left and
//! removes them.
//!
//! The parent is removed when the last build of this process ends ([`Active`]); a build of
//! another process starting at that instant could see its `mkdir` fail, which fails that build
//! with a clear error rather than anything worse.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::cgroup::CgroupMounts;
use crate::error::{Error, IoContext, Result};
use crate::shim::oom_kills;

use super::{BuildLimits, CGROUP_PARENT};

/// CPU period of the quota, in microseconds.
pub(crate) const CPU_PERIOD_US: u64 = 100_000;
/// v1 `cpu.shares` of a build: a quarter of an ordinary process's weight, so instances win
/// when the machine is contended.
pub(crate) const CPU_SHARES: u64 = 256;
/// How long the processes of a killed build get to disappear.
const KILL_WAIT: Duration = Duration::from_secs(5);

static ACTIVE: Mutex<usize> = Mutex::new(0);

/// Counts this process's running builds; the last one out removes the parent cgroups.
#[derive(Debug)]
pub(crate) struct Active(());

impl Active {
    pub(crate) fn enter() -> Self {
        *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        Active(())
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        let mut n = ACTIVE.lock().unwrap_or_else(|e| e.into_inner());
        *n -= 1;
        if *n == 0
            && let Ok(m) = mounts()
        {
            for d in m.all_dirs(CGROUP_PARENT) {
                let _ = std::fs::remove_dir(d);
            }
        }
    }
}

pub(crate) fn cgroups_path(id: &str) -> String {
    format!("/{CGROUP_PARENT}/{id}")
}

pub(crate) fn mounts() -> Result<CgroupMounts> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .context(|| "reading /proc/self/mountinfo".to_string())?;
    Ok(CgroupMounts::parse(&text))
}

/// Whether the kernel OOM-killed a process of the cgroup at `cgroups_path`.
pub(crate) fn oom_killed(mounts: &CgroupMounts, cgroups_path: &str) -> bool {
    mounts
        .oom_file(cgroups_path)
        .and_then(|f| std::fs::read_to_string(f).ok())
        .is_some_and(|t| oom_kills(&t) > 0)
}

/// Removes the leaf directories of `cgroups_path` that still exist (runc removes its own; a
/// failed start may leave them), ignoring those that are gone.
pub(crate) fn remove_leaf(mounts: &CgroupMounts, cgroups_path: &str) {
    for d in mounts.all_dirs(cgroups_path) {
        if d.exists()
            && let Err(e) = std::fs::remove_dir(&d)
        {
            tracing::warn!(dir = %d.display(), error = %e, "removing a build cgroup");
        }
    }
}

/// A cgroup made by this module for a host process, removed by [`LimitedCgroup::remove`].
#[derive(Debug)]
pub(crate) struct LimitedCgroup {
    /// The leaf under each hierarchy, deduplicated.
    dirs: Vec<PathBuf>,
    memory: Option<PathBuf>,
}

impl LimitedCgroup {
    pub(crate) fn create(mounts: &CgroupMounts, id: &str, limits: &BuildLimits) -> Result<Self> {
        let path = cgroups_path(id);
        let mut dirs: Vec<PathBuf> = ["memory", "cpu", "pids"]
            .iter()
            .filter_map(|c| mounts.dir(c, &path))
            .collect();
        // The unified hierarchy too, when there is one: it tracks every process and has
        // `cgroup.kill`, even on a hybrid host where it holds no resource controller.
        dirs.extend(
            mounts
                .v2
                .as_ref()
                .map(|v2| v2.join(path.trim_start_matches('/'))),
        );
        dirs.sort();
        dirs.dedup();
        if dirs.is_empty() {
            return Err(Error::invalid(
                "cgroups",
                "no cgroup hierarchy is mounted; builds need the memory, cpu and pids controllers",
            ));
        }
        let mut cg = LimitedCgroup {
            memory: mounts.dir("memory", &path),
            dirs: Vec::new(),
        };
        for d in &dirs {
            if let Some(parent) = d.parent() {
                std::fs::create_dir_all(parent)
                    .context(|| format!("creating cgroup {}", parent.display()))?;
                enable_v2_controllers(parent);
            }
            if let Err(e) = std::fs::create_dir(d) {
                cg.remove();
                return Err(e).context(|| format!("creating cgroup {}", d.display()));
            }
            cg.dirs.push(d.clone());
        }
        if let Err(e) = cg.write_limits(limits) {
            cg.remove();
            return Err(e);
        }
        Ok(cg)
    }

    fn write_limits(&self, l: &BuildLimits) -> Result<()> {
        let quota = u64::from(l.cpu_millis) * CPU_PERIOD_US / 1000;
        for d in &self.dirs {
            if d.join("memory.limit_in_bytes").exists() {
                write(d, "memory.limit_in_bytes", &l.memory_bytes.to_string())?;
                // Absent without swap accounting; memory + swap = memory means no swap.
                let _ = write(
                    d,
                    "memory.memsw.limit_in_bytes",
                    &l.memory_bytes.to_string(),
                );
            } else if d.join("memory.max").exists() {
                write(d, "memory.max", &l.memory_bytes.to_string())?;
                let _ = write(d, "memory.swap.max", "0");
            }
            if d.join("cpu.cfs_quota_us").exists() {
                write(d, "cpu.cfs_period_us", &CPU_PERIOD_US.to_string())?;
                write(d, "cpu.cfs_quota_us", &quota.to_string())?;
                write(d, "cpu.shares", &CPU_SHARES.to_string())?;
            } else if d.join("cpu.max").exists() {
                write(d, "cpu.max", &format!("{quota} {CPU_PERIOD_US}"))?;
                let _ = write(d, "cpu.weight", "25");
            }
            if d.join("pids.max").exists() {
                write(d, "pids.max", &l.pids.to_string())?;
            }
        }
        Ok(())
    }

    /// The `cgroup.procs` files a process must write its pid to, to be limited.
    pub(crate) fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    pub(crate) fn oom_killed(&self) -> bool {
        let Some(m) = &self.memory else { return false };
        ["memory.oom_control", "memory.events"]
            .iter()
            .filter_map(|f| std::fs::read_to_string(m.join(f)).ok())
            .any(|t| oom_kills(&t) > 0)
    }

    fn pids(&self) -> Vec<i32> {
        let mut pids: Vec<i32> = self
            .dirs
            .iter()
            .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
            .flat_map(|t| {
                t.lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect::<Vec<_>>()
            })
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// SIGKILLs every process in the cgroup (`cgroup.kill` where there is one, else each pid
    /// until none is left), waiting up to a few seconds for them to be gone.
    pub(crate) fn kill_all(&self) {
        let start = Instant::now();
        loop {
            for d in &self.dirs {
                let _ = std::fs::write(d.join("cgroup.kill"), "1");
            }
            let pids = self.pids();
            if pids.is_empty() || start.elapsed() > KILL_WAIT {
                return;
            }
            for p in pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills what is left and removes every directory made; idempotent.
    pub(crate) fn remove(&mut self) {
        if self.dirs.is_empty() {
            return;
        }
        self.kill_all();
        for d in self.dirs.drain(..) {
            let start = Instant::now();
            // A killed process leaves its cgroup a moment after it is reaped.
            while let Err(e) = std::fs::remove_dir(&d) {
                if e.kind() == std::io::ErrorKind::NotFound || start.elapsed() > KILL_WAIT {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        tracing::warn!(dir = %d.display(), error = %e, "removing a build cgroup");
                    }
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

impl Drop for LimitedCgroup {
    fn drop(&mut self) {
        self.remove();
    }
}

fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    std::fs::write(dir.join(file), value)
        .context(|| format!("writing {value} to {}", dir.join(file).display()))
}

/// On a cgroup v2 hierarchy with resource controllers, children only get them once the parent
/// delegates them; a hybrid host's unified hierarchy has none, and then this does nothing.
fn enable_v2_controllers(parent: &Path) {
    let Ok(available) = std::fs::read_to_string(parent.join("cgroup.controllers")) else {
        return;
    };
    for c in ["memory", "cpu", "pids"] {
        if available.split_whitespace().any(|a| a == c) {
            let _ = std::fs::write(parent.join("cgroup.subtree_control"), format!("+{c}"));
        }
    }
}
