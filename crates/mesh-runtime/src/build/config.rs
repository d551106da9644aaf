//! The build container's `config.json`: the instances' typed [`oci::Config`](crate::oci::Config)
//! filled for a build (root with Docker's capabilities, the build's limits, the host's or an empty
//! network namespace), plus the two fields instances do not set (`oomScoreAdj`, a `/tmp`).

use std::path::Path;

use serde_json::{Value, json};

use crate::oci::{
    Capabilities, Config, Cpu, DEFAULT_PATH, DeviceRule, Linux, MASKED_PATHS, Memory, Namespace,
    Pids, Process, ProcessUser, READONLY_PATHS, Resources, Rlimit, Root, mount, system_mounts,
};

use super::cgroups::{CPU_PERIOD_US, CPU_SHARES};
use super::egress::is_proxy_var;
use super::netns::BuildNet;
use super::{BuildNetwork, BuildSpec};

/// Docker's default capabilities without `NET_RAW` (see the module docs of `build`).
pub(crate) const BUILD_CAPABILITIES: [&str; 13] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Builds die before instances when the whole host runs short of memory.
pub(crate) const OOM_SCORE_ADJ: i32 = 500;

/// Size of the build's `/tmp` tmpfs (its pages count against the build's memory limit).
const TMP_SIZE: &str = "size=1g";

/// `resolv` is the copy of the host's resolver file, for [`BuildNetwork::Host`].
pub(crate) fn config(
    spec: &BuildSpec,
    cgroups_path: &str,
    resolv: &Path,
    nofile: u64,
    net: Option<&BuildNet>,
) -> Value {
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let caps = strings(&BUILD_CAPABILITIES);
    let mut env: Vec<String> = Vec::new();
    let has = |k: &str| spec.env.iter().any(|(n, _)| n == k);
    if !has("PATH") {
        env.push(DEFAULT_PATH.into());
    }
    if !has("HOME") {
        env.push("HOME=/root".into());
    }
    match net {
        // The proxy's variables win over the build's own: a build cannot point itself past it
        // (it could not get anywhere else anyway; this keeps its tools from trying).
        Some(n) => {
            env.extend(
                spec.env
                    .iter()
                    .filter(|(k, _)| !is_proxy_var(k))
                    .map(|(k, v)| format!("{k}={v}")),
            );
            env.extend(n.env().into_iter().map(|(k, v)| format!("{k}={v}")));
        }
        None => env.extend(spec.env.iter().map(|(k, v)| format!("{k}={v}"))),
    }
    let mut mounts = system_mounts();
    mounts.push(mount(
        "/tmp",
        "tmpfs",
        "tmpfs",
        &["nosuid", "nodev", "mode=1777", TMP_SIZE],
    ));
    if spec.network == BuildNetwork::Host {
        mounts.push(mount(
            "/etc/resolv.conf",
            "bind",
            &resolv.to_string_lossy(),
            &["rbind", "ro", "nosuid", "nodev", "noexec"],
        ));
    }
    for m in &spec.mounts {
        let mode = if m.read_only { "ro" } else { "rw" };
        mounts.push(mount(
            &m.target,
            "bind",
            &m.source.to_string_lossy(),
            &["rbind", mode, "nosuid", "nodev"],
        ));
    }
    let ns = |kind: &str| Namespace {
        kind: kind.into(),
        path: None,
    };
    let mut namespaces = vec![ns("pid"), ns("ipc"), ns("uts"), ns("mount"), ns("cgroup")];
    match (&spec.network, net) {
        (BuildNetwork::Host, _) => {}
        (BuildNetwork::Egress(_), Some(n)) => namespaces.push(Namespace {
            kind: "network".into(),
            path: Some(n.netns_path().to_string_lossy().into_owned()),
        }),
        _ => namespaces.push(ns("network")),
    }
    let memory = i64::try_from(spec.limits.memory_bytes).unwrap_or(i64::MAX);
    let config = Config {
        oci_version: "1.0.2".into(),
        process: Process {
            terminal: false,
            user: ProcessUser {
                uid: 0,
                gid: 0,
                additional_gids: Vec::new(),
            },
            args: spec.args.clone(),
            env,
            cwd: spec.cwd.clone(),
            capabilities: Capabilities {
                bounding: caps.clone(),
                effective: caps.clone(),
                permitted: caps,
                inheritable: Vec::new(),
                ambient: Vec::new(),
            },
            rlimits: vec![Rlimit {
                kind: "RLIMIT_NOFILE".into(),
                hard: nofile,
                soft: nofile,
            }],
            no_new_privileges: true,
        },
        root: Root {
            path: "rootfs".into(),
            readonly: false,
        },
        hostname: "build".into(),
        mounts,
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
                    shares: CPU_SHARES,
                    quota: i64::from(spec.limits.cpu_millis) * CPU_PERIOD_US as i64 / 1000,
                    period: CPU_PERIOD_US,
                },
                pids: Pids {
                    limit: i64::from(spec.limits.pids),
                },
            },
            cgroups_path: cgroups_path.into(),
            namespaces,
            masked_paths: strings(&MASKED_PATHS),
            readonly_paths: strings(&READONLY_PATHS),
            // Builds run their own tools (buildah among them); the instances' profile is not
            // theirs.
            seccomp: None,
            // Network sysctls would change the host's own when the build shares its netns.
            sysctl: Default::default(),
        },
    };
    let mut v = serde_json::to_value(&config).expect("the config serializes");
    v["process"]["oomScoreAdj"] = json!(OOM_SCORE_ADJ);
    v
}
