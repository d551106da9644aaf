use super::*;
use crate::spec::User;

fn paths() -> BundlePaths {
    BundlePaths {
        netns: "/run/netns/wm-web-1".into(),
        hosts: "/d/instances/web-1/hosts".into(),
        resolv: "/d/instances/web-1/resolv.conf".into(),
        hostname: "/d/instances/web-1/hostname".into(),
        cgroups_path: "/widemesh/web-1".into(),
        nofile: 1024,
        kernel: seccomp::KernelVersion { major: 6, minor: 1 },
    }
}

fn spec() -> InstanceSpec {
    crate::spec::tests::sample()
}

#[test]
fn the_size_becomes_cgroup_resources() {
    let c = config(&spec(), &paths()).unwrap();
    let r = &c.linux.resources;
    // Nano: a quarter core, 256 MB, 256 pids.
    assert_eq!(r.cpu.quota, 25_000);
    assert_eq!(r.cpu.period, 100_000);
    assert_eq!(r.cpu.shares, 256);
    assert_eq!(r.memory.limit, 256 * 1024 * 1024);
    assert_eq!(r.memory.swap, r.memory.limit);
    assert_eq!(r.pids.limit, 256);
    assert_eq!(c.linux.cgroups_path, "/widemesh/web-1");
}

#[test]
fn the_process_is_unprivileged_and_runs_the_command_under_sh() {
    let c = config(&spec(), &paths()).unwrap();
    let p = &c.process;
    assert_eq!(p.args, ["/bin/sh", "-c", "echo $GREETING"]);
    assert_eq!((p.user.uid, p.user.gid), (65534, 65534));
    assert_eq!(p.capabilities, Capabilities::default());
    assert!(p.no_new_privileges);
    assert!(!p.terminal);
    assert_eq!(p.rlimits[0].kind, "RLIMIT_NOFILE");
    assert_eq!((p.rlimits[0].soft, p.rlimits[0].hard), (1024, 1024));
    assert_eq!(
        p.env,
        [
            DEFAULT_PATH.to_string(),
            "HOSTNAME=app-web".into(),
            "GREETING=hi".into()
        ]
    );
}

#[test]
fn root_keeps_a_short_capability_list_and_env_can_override_path() {
    let mut s = spec();
    s.user = User::ROOT;
    s.env.insert("PATH".into(), "/opt/bin".into());
    let c = config(&s, &paths()).unwrap();
    assert_eq!(
        c.process.capabilities.effective.len(),
        ROOT_CAPABILITIES.len()
    );
    assert!(
        !c.process
            .capabilities
            .bounding
            .contains(&"CAP_NET_RAW".to_string())
    );
    assert!(c.process.capabilities.ambient.is_empty());
    assert_eq!(c.process.env[0], "HOSTNAME=app-web");
    assert!(c.process.env.contains(&"PATH=/opt/bin".to_string()));
}

#[test]
fn namespaces_mounts_and_hardening() {
    let c = config(&spec(), &paths()).unwrap();
    let kinds: Vec<_> = c.linux.namespaces.iter().map(|n| n.kind.as_str()).collect();
    assert_eq!(kinds, ["pid", "network", "ipc", "uts", "mount", "cgroup"]);
    assert_eq!(
        c.linux.namespaces[1].path.as_deref(),
        Some("/run/netns/wm-web-1")
    );
    let hosts = c
        .mounts
        .iter()
        .find(|m| m.destination == "/etc/hosts")
        .unwrap();
    assert_eq!(hosts.source, "/d/instances/web-1/hosts");
    assert!(hosts.options.contains(&"ro".to_string()));
    for d in [
        "/etc/resolv.conf",
        "/etc/hostname",
        "/proc",
        "/sys/fs/cgroup",
    ] {
        assert!(c.mounts.iter().any(|m| m.destination == d), "{d}");
    }
    assert!(c.linux.masked_paths.contains(&"/proc/kcore".to_string()));
    assert!(
        c.linux
            .masked_paths
            .contains(&"/proc/interrupts".to_string())
    );
    assert!(c.linux.readonly_paths.contains(&"/proc/sys".to_string()));
    assert_eq!(c.root.path, "rootfs");
    assert!(!c.root.readonly);
    assert_eq!(c.hostname, "app-web");
}

#[test]
fn json_uses_the_oci_field_names() {
    let v = serde_json::to_value(config(&spec(), &paths()).unwrap()).unwrap();
    assert_eq!(v["ociVersion"], "1.0.2");
    assert_eq!(v["process"]["noNewPrivileges"], true);
    assert_eq!(v["process"]["rlimits"][0]["type"], "RLIMIT_NOFILE");
    assert_eq!(v["linux"]["cgroupsPath"], "/widemesh/web-1");
    assert_eq!(v["linux"]["maskedPaths"][0], "/proc/acpi");
    assert_eq!(
        v["linux"]["namespaces"][0],
        serde_json::json!({"type": "pid"})
    );
    assert_eq!(v["mounts"][0]["type"], "proc");
    assert!(v["process"]["user"].get("additionalGids").is_none());
    assert_eq!(
        v["linux"]["sysctl"]["net.ipv4.ip_unprivileged_port_start"],
        "0"
    );
}

#[test]
fn fractional_cpus_round_to_whole_microseconds() {
    let mut l = spec().limits;
    l.cpu = 0.333;
    assert_eq!(cpu_quota(&l), 33_300);
    l.cpu = 2.0;
    assert_eq!(cpu_quota(&l), 200_000);
}

#[test]
fn the_seccomp_filter_follows_the_capabilities() {
    let allowed = |c: &Config, name: &str| {
        c.linux
            .seccomp
            .as_ref()
            .expect("instances have a seccomp filter")
            .syscalls
            .iter()
            .any(|r| r.action == "SCMP_ACT_ALLOW" && r.names.iter().any(|n| n == name))
    };
    let nobody = config(&spec(), &paths()).unwrap();
    let mut s = spec();
    s.user = User::ROOT;
    let root = config(&s, &paths()).unwrap();
    for c in [&nobody, &root] {
        assert!(allowed(c, "read"));
        assert!(!allowed(c, "unshare"));
        assert!(!allowed(c, "keyctl"));
        assert!(!allowed(c, "adjtimex"));
    }
    // CAP_SYS_CHROOT comes with root's list, and with it chroot.
    assert!(!allowed(&nobody, "chroot"));
    assert!(allowed(&root, "chroot"));
    let v = serde_json::to_value(&nobody).unwrap();
    assert_eq!(v["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
}
