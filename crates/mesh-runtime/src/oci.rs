//! The bundle's `config.json`: a typed subset of the OCI runtime spec, only the fields the
//! runtime sets, written with serde (the `oci-spec` crate would be a large dependency for a
//! document this small).
//!
//! Hardening, in the spirit of runc's and Docker's defaults: a non-root user by default with no
//! capabilities at all (root gets a short list), `noNewPrivileges`, Docker's masked and
//! read-only paths, a read-only `/sys` and cgroup view, a deny-all device cgroup (runc adds
//! the usual `/dev/null`, `/dev/zero`, ...), own PID, mount, UTS, IPC, cgroup and network
//! namespaces, and an `RLIMIT_NOFILE` at or below the agent's own hard limit (the host lacks
//! `CAP_SYS_RESOURCE`, so asking for more fails with EPERM), and Docker's default seccomp
//! profile resolved for the process's capabilities ([`seccomp`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use mesh_types::size::SizeLimits;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::spec::InstanceSpec;

pub mod seccomp;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    pub oci_version: String,
    pub process: Process,
    pub root: Root,
    pub hostname: String,
    pub mounts: Vec<Mount>,
    pub linux: Linux,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Process {
    pub terminal: bool,
    pub user: ProcessUser,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub capabilities: Capabilities,
    pub rlimits: Vec<Rlimit>,
    pub no_new_privileges: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessUser {
    pub uid: u32,
    pub gid: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_gids: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Capabilities {
    pub bounding: Vec<String>,
    pub effective: Vec<String>,
    pub permitted: Vec<String>,
    pub inheritable: Vec<String>,
    pub ambient: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rlimit {
    #[serde(rename = "type")]
    pub kind: String,
    pub hard: u64,
    pub soft: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Root {
    pub path: String,
    pub readonly: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mount {
    pub destination: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub source: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Linux {
    pub resources: Resources,
    pub cgroups_path: String,
    pub namespaces: Vec<Namespace>,
    pub masked_paths: Vec<String>,
    pub readonly_paths: Vec<String>,
    pub sysctl: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<seccomp::Seccomp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    pub devices: Vec<DeviceRule>,
    pub memory: Memory,
    pub cpu: Cpu,
    pub pids: Pids,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceRule {
    pub allow: bool,
    pub access: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    pub limit: i64,
    /// Memory plus swap; equal to `limit`, so an instance never swaps.
    pub swap: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cpu {
    pub shares: u64,
    pub quota: i64,
    pub period: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pids {
    pub limit: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Namespace {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
pub const CPU_PERIOD_US: u64 = 100_000;

/// What root keeps: Docker's default set without `NET_RAW` (raw sockets can spoof peers on the
/// bridge), `MKNOD` and `AUDIT_WRITE`. Non-root users get nothing.
pub const ROOT_CAPABILITIES: [&str; 11] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_SETFCAP",
];

/// Docker's list (runc's `runc spec` masks the same less `/proc/interrupts` and powercap):
/// host hardware, kernel keys and timing side channels.
pub const MASKED_PATHS: [&str; 12] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Where the host-side pieces of one bundle are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundlePaths {
    pub netns: PathBuf,
    pub hosts: PathBuf,
    pub resolv: PathBuf,
    pub hostname: PathBuf,
    pub cgroups_path: String,
    /// `RLIMIT_NOFILE` (soft = hard).
    pub nofile: u64,
    /// The running kernel's, for the seccomp profile's `minKernel` rules.
    pub kernel: seccomp::KernelVersion,
}

/// cgroup v1 `cpu.cfs_quota_us` for a fraction of a core per period.
pub fn cpu_quota(limits: &SizeLimits) -> i64 {
    (limits.cpu * CPU_PERIOD_US as f64).round() as i64
}

/// A mount of `kind` from `source` at `destination` with `options`.
pub(crate) fn mount(destination: &str, kind: &str, source: &str, options: &[&str]) -> Mount {
    Mount {
        destination: destination.into(),
        kind: kind.into(),
        source: source.into(),
        options: options.iter().map(|o| o.to_string()).collect(),
    }
}

/// The kernel filesystems every container gets, instances and builds alike: `/proc`, a small
/// `/dev` with its pts, shm and mqueue, a read-only `/sys` and cgroup view.
pub(crate) fn system_mounts() -> Vec<Mount> {
    vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
            ],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        ),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        ),
    ]
}

pub fn config(spec: &InstanceSpec, paths: &BundlePaths) -> Result<Config> {
    let caps: Vec<String> = if spec.user.is_root() {
        ROOT_CAPABILITIES.iter().map(|c| c.to_string()).collect()
    } else {
        Vec::new()
    };
    let seccomp = seccomp::for_instance(&caps, paths.kernel)?;
    let mut env = Vec::new();
    if !spec.env.contains_key("PATH") {
        env.push(DEFAULT_PATH.to_string());
    }
    if !spec.env.contains_key("HOSTNAME") {
        env.push(format!("HOSTNAME={}", spec.hostname));
    }
    env.extend(spec.env.iter().map(|(k, v)| format!("{k}={v}")));
    let memory = i64::from(spec.limits.memory_mb) * 1024 * 1024;
    let bind_ro = |dest: &str, src: &PathBuf| Mount {
        destination: dest.into(),
        kind: "bind".into(),
        source: src.to_string_lossy().into_owned(),
        options: ["rbind", "ro", "nosuid", "nodev", "noexec"]
            .map(String::from)
            .to_vec(),
    };
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let ns = |kind: &str| Namespace {
        kind: kind.into(),
        path: None,
    };
    Ok(Config {
        oci_version: "1.0.2".into(),
        process: Process {
            terminal: false,
            user: ProcessUser {
                uid: spec.user.uid,
                gid: spec.user.gid,
                additional_gids: spec.user.additional_gids.clone(),
            },
            args: spec.args(),
            env,
            cwd: spec
                .image
                .workdir
                .clone()
                .filter(|d| d.starts_with('/'))
                .unwrap_or_else(|| "/".into()),
            capabilities: Capabilities {
                bounding: caps.clone(),
                effective: caps.clone(),
                permitted: caps,
                inheritable: Vec::new(),
                ambient: Vec::new(),
            },
            rlimits: vec![Rlimit {
                kind: "RLIMIT_NOFILE".into(),
                hard: paths.nofile,
                soft: paths.nofile,
            }],
            no_new_privileges: true,
        },
        root: Root {
            path: "rootfs".into(),
            readonly: false,
        },
        hostname: spec.hostname.clone(),
        mounts: [
            system_mounts(),
            vec![
                bind_ro("/etc/hosts", &paths.hosts),
                bind_ro("/etc/resolv.conf", &paths.resolv),
                bind_ro("/etc/hostname", &paths.hostname),
            ],
        ]
        .concat(),
        linux: Linux {
            resources: Resources {
                devices: vec![DeviceRule {
                    allow: false,
                    access: "rwm".into(),
                }],
                memory: Memory {
                    limit: memory,
                    swap: memory,
                },
                cpu: Cpu {
                    shares: ((spec.limits.cpu * 1024.0).round() as u64).max(2),
                    quota: cpu_quota(&spec.limits),
                    period: CPU_PERIOD_US,
                },
                pids: Pids {
                    limit: i64::from(spec.limits.pids),
                },
            },
            cgroups_path: paths.cgroups_path.clone(),
            namespaces: vec![
                ns("pid"),
                Namespace {
                    kind: "network".into(),
                    path: Some(paths.netns.to_string_lossy().into_owned()),
                },
                ns("ipc"),
                ns("uts"),
                ns("mount"),
                ns("cgroup"),
            ],
            masked_paths: strings(&MASKED_PATHS),
            readonly_paths: strings(&READONLY_PATHS),
            // Both are per network namespace, so they change nothing on the host: let a
            // non-root process without capabilities listen on port 80 and use ICMP sockets.
            sysctl: BTreeMap::from([
                ("net.ipv4.ip_unprivileged_port_start".into(), "0".into()),
                ("net.ipv4.ping_group_range".into(), "0 2147483647".into()),
            ]),
            seccomp: Some(seccomp),
        },
    })
}

#[cfg(test)]
mod tests;
