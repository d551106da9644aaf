//! Build containers: where a deployment's build steps run, apart from instances.
//!
//! [`run_build`] runs one command in a throwaway container: the read-only `layers` stacked with
//! overlayfs under a fresh writable layer ([`upper_dir`], which the caller may pack into an image
//! layer afterwards), run by `runc run --keep` in the foreground, stdout and stderr merged and
//! streamed line by line. [`run_limited`] runs a host program (buildah) in a fresh cgroup with
//! the same limits.
//!
//! What a build gets:
//! - root inside, with Docker's default capability set minus `NET_RAW` (raw sockets in the
//!   host's network namespace would see the host's traffic) and with `noNewPrivileges` kept on:
//!   apt's sandbox works as is, because dropping to the `_apt` user is a `setresuid` by a process
//!   that holds `CAP_SETUID`, which no_new_privs does not restrict (it only stops `execve` from
//!   gaining privileges through setuid bits or file capabilities);
//! - its own mount, PID, IPC, UTS and cgroup namespaces; `/proc`, a minimal `/dev` (runc's
//!   default devices, everything else denied), a read-only `/sys`, a tmpfs `/tmp`;
//! - the network of [`BuildNetwork`]: `Egress` (what the builder uses) gives the build its own
//!   network namespace whose only way out is the egress proxy on the host side of its veth
//!   ([`netns`], [`egress`]): package registries on the internet are reachable through
//!   `HTTP(S)_PROXY`, the host's loopback and addresses, instances and private ranges are not.
//!   `None` gives a fresh namespace with only loopback; `Host` (tests only) shares the host's
//!   network namespace;
//! - its own cgroup `/widemesh_build/<id>` under every hierarchy (v1 here, v2 elsewhere) with
//!   the memory (no swap), CPU quota, PID limits of [`BuildLimits`], a low CPU weight and a high
//!   `oom_score_adj`, so a build that runs out of memory or spins is killed or throttled alone;
//! - a time limit: on expiry the container is killed and the outcome says `timed_out`.
//!
//! Whatever happens (success, failure, timeout, an error, the future being dropped) the
//! container, its runc state, the overlay mount and the cgroups are removed before the call
//! returns; only files under `scratch` remain, for the caller to pack or remove.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod cgroups;
mod config;
mod container;
pub mod egress;
mod limited;
mod lines;
pub mod netns;

pub use container::run_build;
pub use egress::{Cidr, EgressPolicy, ProxyLimits};
pub use limited::run_limited;
pub use netns::{BuildNet, EgressConfig};

/// The parent cgroup of every build, under each hierarchy; apart from instances' `widemesh`.
pub const CGROUP_PARENT: &str = "widemesh_build";

/// One build step in a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSpec {
    /// Unique among running builds; names the container and its cgroup. 1-63 lowercase letters,
    /// digits and `-`, starting with a letter or digit.
    pub id: String,
    /// Read-only root filesystem layers, base first, stacked with overlayfs.
    pub layers: Vec<PathBuf>,
    /// A directory the build may use for its bundle, writable layer and runc state; it must be
    /// on a filesystem that can hold an overlay upper (not overlayfs). The caller removes it.
    pub scratch: PathBuf,
    pub mounts: Vec<BindMount>,
    /// Exec form: the program and its arguments, looked up in the container's `PATH`.
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Absolute path inside the container.
    pub cwd: String,
    pub limits: BuildLimits,
    pub network: BuildNetwork,
}

/// A host path bind-mounted into the build container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    pub source: PathBuf,
    /// Absolute path inside the container.
    pub target: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildLimits {
    /// Memory without swap; the build's processes are OOM-killed beyond it.
    pub memory_bytes: u64,
    /// CPU quota in thousandths of a core (1500 = one and a half cores).
    pub cpu_millis: u32,
    pub pids: u32,
    /// Wall-clock time before the build is killed.
    pub timeout: Duration,
}

impl Default for BuildLimits {
    /// 2 GiB, 1.5 cores, 4096 processes, 15 minutes.
    fn default() -> Self {
        BuildLimits {
            memory_bytes: 2 << 30,
            cpu_millis: 1500,
            pids: 4096,
            timeout: Duration::from_secs(15 * 60),
        }
    }
}

/// The network a build container gets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum BuildNetwork {
    /// The host's network namespace: everything the host reaches, the host's loopback
    /// included. Only for tests of the container itself; builds use `Egress`.
    Host,
    /// A fresh network namespace with only loopback.
    #[default]
    None,
    /// A network namespace of its own whose only way out is the egress proxy ([`netns`]); the
    /// build's environment gets the proxy variables.
    Egress(std::sync::Arc<EgressConfig>),
}

/// How a build ended (not an error: a build that fails is an outcome).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildOutcome {
    /// The exit code, when the process exited rather than being killed.
    pub exit_code: Option<i32>,
    /// The signal that ended the process, when one did.
    pub signal: Option<i32>,
    /// The kernel's OOM killer ended a process of the build.
    pub oom_killed: bool,
    /// The time limit ran out and the build was killed.
    pub timed_out: bool,
    /// The limits it ran under, so [`fmt::Display`] can name the one it hit.
    pub limits: BuildLimits,
}

impl BuildOutcome {
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.oom_killed && !self.timed_out
    }
}

impl fmt::Display for BuildOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.timed_out {
            write!(f, "timed out after {}", human_duration(self.limits.timeout))
        } else if self.oom_killed {
            write!(
                f,
                "ran out of memory (limit {})",
                human_bytes(self.limits.memory_bytes)
            )
        } else if let Some(sig) = self.signal {
            let name = nix::sys::signal::Signal::try_from(sig)
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(|_| format!("signal {sig}"));
            write!(f, "was killed by {name}")
        } else if let Some(code) = self.exit_code {
            if code == 0 {
                write!(f, "succeeded")
            } else {
                write!(f, "exited with code {code}")
            }
        } else {
            write!(f, "ended for an unknown reason")
        }
    }
}

/// `2 GiB`, `64 MiB`, `1.5 GiB`, `512 KiB`, `100 bytes`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (unit, size) in UNITS {
        if n >= size {
            let whole = n / size;
            let tenths = (n % size) * 10 / size;
            return if tenths == 0 {
                format!("{whole} {unit}")
            } else {
                format!("{whole}.{tenths} {unit}")
            };
        }
    }
    format!("{n} bytes")
}

/// `15m`, `2s`, `1m30s`, `1h`, `250ms`.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return format!("{}ms", d.as_millis());
    }
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    for (v, unit) in [(h, "h"), (m, "m"), (s, "s")] {
        if v > 0 {
            out.push_str(&format!("{v}{unit}"));
        }
    }
    out
}

/// The writable layer of a build run with this `scratch`: after [`run_build`] returns it holds
/// what the build added or changed (overlayfs whiteouts for what it deleted), unmounted.
pub fn upper_dir(scratch: &Path) -> PathBuf {
    scratch.join("upper")
}

/// Checks a build id: it becomes a runc container id and a cgroup directory name.
pub(crate) fn check_id(id: &str) -> crate::Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 63
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !id.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(crate::Error::Invalid {
            what: "build id",
            reason: format!(
                "{id:?} must be 1-63 lowercase letters, digits or '-', not starting with '-'"
            ),
        })
    }
}

#[cfg(test)]
mod tests;
