//! What the agent asks for ([`InstanceSpec`], [`NetworkSpec`]) and what it gets back
//! ([`InstanceHandle`], [`InstanceState`], [`ExitStatus`]).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use mesh_types::size::SizeLimits;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::subnet::Ipv4Net;

/// One instance to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceSpec {
    /// Unique on this server; a DNS label (lowercase letters, digits, dashes), at most 63
    /// characters. It names the container, its state directory and its network namespace.
    pub id: String,
    /// The environment whose network the instance joins ([`NetworkSpec::environment`]).
    pub environment: String,
    /// `<stack>-<service>`: the UTS hostname and the name peers reach it by.
    pub hostname: String,
    pub image: ImageRef,
    /// Run as `/bin/sh -c <command>`; `None` runs the image's default command.
    pub command: Option<String>,
    pub env: BTreeMap<String, String>,
    pub limits: SizeLimits,
    #[serde(default)]
    pub user: User,
    /// `None`: the runtime allocates one from the environment's subnet.
    #[serde(default)]
    pub address: Option<Ipv4Addr>,
    /// Peers written to `/etc/hosts` besides `localhost` and the instance itself.
    #[serde(default)]
    pub hosts: Vec<HostEntry>,
}

/// An image as the runtime sees it: read-only layer directories, base first (the order of an
/// OCI manifest), stacked with overlayfs under the instance's writable layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRef {
    pub layers: Vec<PathBuf>,
    /// Exec form, used when the spec has no command.
    #[serde(default)]
    pub default_command: Option<Vec<String>>,
    /// Where the process starts; `/` when none.
    #[serde(default)]
    pub workdir: Option<String>,
}

impl ImageRef {
    pub fn single(layer: impl Into<PathBuf>) -> Self {
        ImageRef {
            layers: vec![layer.into()],
            default_command: None,
            workdir: None,
        }
    }
}

/// The identity the instance's processes run as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    #[serde(default)]
    pub additional_gids: Vec<u32>,
}

impl User {
    /// `nobody:nogroup`, the default: no file on the host or in the image belongs to it.
    pub const NOBODY: User = User {
        uid: 65534,
        gid: 65534,
        additional_gids: Vec::new(),
    };
    pub const ROOT: User = User {
        uid: 0,
        gid: 0,
        additional_gids: Vec::new(),
    };

    pub fn is_root(&self) -> bool {
        self.uid == 0
    }
}

impl Default for User {
    fn default() -> Self {
        User::NOBODY
    }
}

/// One `/etc/hosts` line: a peer's name and address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HostEntry {
    pub hostname: String,
    pub address: Ipv4Addr,
}

impl HostEntry {
    pub fn new(hostname: impl Into<String>, address: Ipv4Addr) -> Self {
        HostEntry {
            hostname: hostname.into(),
            address,
        }
    }
}

/// An environment's network on this server: one bridge, one subnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSpec {
    pub environment: String,
    pub subnet: Ipv4Net,
    /// Masquerade the subnet's traffic to anything that is not a platform bridge. The host
    /// must forward (`net.ipv4.ip_forward=1`); the runtime never changes that sysctl itself.
    #[serde(default)]
    pub egress: bool,
    /// The resolver instances use. `None` points them at 127.0.0.1 inside their own network
    /// namespace, where nothing listens, so lookups of unknown names fail at once instead of
    /// hanging. When it is the gateway, instances may reach it on port 53 (nothing else).
    #[serde(default)]
    pub dns: Option<Ipv4Addr>,
}

impl NetworkSpec {
    pub fn new(environment: impl Into<String>, subnet: Ipv4Net) -> Self {
        NetworkSpec {
            environment: environment.into(),
            subnet,
            egress: false,
            dns: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInfo {
    pub environment: String,
    pub bridge: String,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
}

/// Where an instance's output goes: plain files, appended to by the container itself, so the
/// agent can tail them line by line and pick up where it left off after a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogPaths {
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

/// What `create` returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceHandle {
    pub id: String,
    /// The container's init process, as seen from the host.
    pub pid: u32,
    pub address: Ipv4Addr,
    pub logs: LogPaths,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceState {
    pub id: String,
    pub environment: String,
    pub hostname: String,
    pub address: Ipv4Addr,
    pub status: Status,
    pub logs: LogPaths,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Status {
    Running { pid: u32 },
    Exited(ExitStatus),
}

impl Status {
    pub fn is_running(&self) -> bool {
        matches!(self, Status::Running { .. })
    }
}

/// How an instance ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// The shell convention: the exit code, or 128 + the signal that killed it (137 for
    /// SIGKILL). `None` when nobody saw it end (the host rebooted, or the shim was killed).
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// The kernel's OOM killer killed a process of the instance (cgroup `oom_kill` counter).
    pub oom_killed: bool,
}

impl ExitStatus {
    pub const UNKNOWN: ExitStatus = ExitStatus {
        code: None,
        signal: None,
        oom_killed: false,
    };

    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// The result of running a command inside a running instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Instance ids, environment names and hostnames become file names, interface-name hashes
/// and `/etc/hosts` lines; one rule (a DNS label) keeps all of those safe.
pub fn check_label(what: &'static str, value: &str) -> Result<()> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && !value.ends_with('-')
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            what,
            format!(
                "{value:?} must be 1-63 lowercase letters, digits or dashes, not starting or ending with a dash"
            ),
        ))
    }
}

impl InstanceSpec {
    /// Everything `create` relies on, checked before anything is touched.
    pub fn validate(&self) -> Result<()> {
        check_label("instance id", &self.id)?;
        check_label("environment", &self.environment)?;
        check_label("hostname", &self.hostname)?;
        for h in &self.hosts {
            check_label("hosts entry", &h.hostname)?;
        }
        if self.image.layers.is_empty() {
            return Err(Error::invalid("image", "it has no layers"));
        }
        for layer in &self.image.layers {
            let s = layer.to_string_lossy();
            // overlayfs separates lower directories with ':' and options with ','.
            if !layer.is_absolute() || s.contains([':', ',', '\n']) {
                return Err(Error::invalid(
                    "image",
                    format!("layer {s:?} must be an absolute path without ':' or ','"),
                ));
            }
        }
        match (&self.command, &self.image.default_command) {
            (Some(c), _) if c.contains('\0') => {
                return Err(Error::invalid("command", "it contains a NUL byte"));
            }
            (None, None) => {
                return Err(Error::invalid(
                    "command",
                    "the spec has none and the image has no default command",
                ));
            }
            (None, Some(args)) if args.is_empty() => {
                return Err(Error::invalid("command", "the image's default is empty"));
            }
            _ => {}
        }
        for (k, v) in &self.env {
            if k.is_empty() || k.contains(['=', '\0']) || v.contains('\0') {
                return Err(Error::invalid(
                    "environment variable",
                    format!("{k:?} must be non-empty without '=' or NUL"),
                ));
            }
        }
        let l = &self.limits;
        if !(l.cpu.is_finite() && l.cpu >= 0.01) {
            return Err(Error::invalid(
                "limits",
                format!("cpu {} must be at least 0.01", l.cpu),
            ));
        }
        if l.memory_mb < 8 {
            return Err(Error::invalid(
                "limits",
                format!("memory {} MB must be at least 8", l.memory_mb),
            ));
        }
        if l.pids < 2 {
            return Err(Error::invalid(
                "limits",
                format!("pids {} must be at least 2", l.pids),
            ));
        }
        Ok(())
    }

    /// The process arguments: the command under `/bin/sh -c`, or the image's default.
    pub fn args(&self) -> Vec<String> {
        match (&self.command, &self.image.default_command) {
            (Some(c), _) => vec!["/bin/sh".into(), "-c".into(), c.clone()],
            (None, Some(args)) => args.clone(),
            (None, None) => Vec::new(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
