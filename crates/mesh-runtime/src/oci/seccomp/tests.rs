use super::*;

const KERNEL: KernelVersion = KernelVersion { major: 6, minor: 1 };

fn caps(names: &[&str]) -> Vec<String> {
    names.iter().map(|c| c.to_string()).collect()
}

fn docker(arch: &str, capabilities: &[String], kernel: KernelVersion) -> Seccomp {
    resolve(
        Profile::docker_default(),
        &Target {
            arch,
            capabilities,
            kernel,
        },
    )
    .unwrap()
}

/// The action the filter takes for `name` called with no argument constraint, if a rule
/// without arguments names it (`None`: only conditional rules or the default apply).
fn unconditional(s: &Seccomp, name: &str) -> Option<String> {
    s.syscalls
        .iter()
        .find(|r| r.args.is_empty() && r.names.iter().any(|n| n == name))
        .map(|r| r.action.clone())
}

fn rules_for<'a>(s: &'a Seccomp, name: &str) -> Vec<&'a Syscall> {
    s.syscalls
        .iter()
        .filter(|r| r.names.iter().any(|n| n == name))
        .collect()
}

#[test]
fn the_embedded_profile_is_dockers_and_denies_by_default() {
    let p = Profile::docker_default();
    assert_eq!(p.default_action, "SCMP_ACT_ERRNO");
    assert_eq!(p.default_errno_ret, Some(1));
    assert!(
        p.syscalls[0].names.len() > 300,
        "{}",
        p.syscalls[0].names.len()
    );
    assert!(
        p.arch_map
            .iter()
            .any(|m| m.architecture == "SCMP_ARCH_X86_64")
    );
}

#[test]
fn an_unprivileged_instance_cannot_make_namespaces_or_touch_keys_bpf_modules_or_the_clock() {
    let s = docker("amd64", &[], KERNEL);
    assert_eq!(s.default_action, "SCMP_ACT_ERRNO");
    assert_eq!(
        s.architectures,
        ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    );
    // Namespaces: unshare, setns and mount fall to the default (EPERM)...
    for name in ["unshare", "setns", "mount", "umount2", "pivot_root"] {
        assert!(
            rules_for(&s, name).is_empty(),
            "{name}: {:?}",
            rules_for(&s, name)
        );
    }
    // ... clone is allowed only when no namespace flag is set, clone3 answers ENOSYS so libc
    // falls back to clone.
    let clone = rules_for(&s, "clone");
    assert_eq!(clone.len(), 1, "{clone:?}");
    assert_eq!(clone[0].action, "SCMP_ACT_ALLOW");
    const CLONE_NEWUSER: u64 = 0x1000_0000;
    const NAMESPACE_FLAGS: u64 = 0x7E02_0000;
    assert_eq!(clone[0].args[0].value, NAMESPACE_FLAGS);
    assert_eq!(clone[0].args[0].op, "SCMP_CMP_MASKED_EQ");
    assert_eq!(clone[0].args[0].value_two, 0);
    assert_ne!(NAMESPACE_FLAGS & CLONE_NEWUSER, 0);
    let clone3 = rules_for(&s, "clone3");
    assert_eq!(clone3.len(), 1);
    assert_eq!(
        (clone3[0].action.as_str(), clone3[0].errno_ret),
        ("SCMP_ACT_ERRNO", Some(38))
    );
    // Keys, eBPF, modules, the clock: only the explicit deny rule names them.
    for name in ALWAYS_DENIED {
        let rules = rules_for(&s, name);
        assert_eq!(rules.len(), 1, "{name}: {rules:?}");
        assert_eq!(rules[0].action, "SCMP_ACT_ERRNO");
        assert_eq!(rules[0].errno_ret, Some(1));
    }
    for name in ["perf_event_open", "reboot", "chroot", "userfaultfd", "iopl"] {
        assert_eq!(unconditional(&s, name), None, "{name}");
    }
    // Ordinary calls stay allowed.
    for name in [
        "read",
        "openat",
        "execve",
        "clock_gettime",
        "epoll_wait",
        "arch_prctl",
    ] {
        assert_eq!(
            unconditional(&s, name).as_deref(),
            Some("SCMP_ACT_ALLOW"),
            "{name}"
        );
    }
}

#[test]
fn capabilities_include_and_exclude_rules() {
    // Root's short list: chroot comes with CAP_SYS_CHROOT, nothing of CAP_SYS_ADMIN.
    let root = caps(&crate::oci::ROOT_CAPABILITIES);
    let s = docker("amd64", &root, KERNEL);
    assert_eq!(
        unconditional(&s, "chroot").as_deref(),
        Some("SCMP_ACT_ALLOW")
    );
    assert!(rules_for(&s, "unshare").is_empty());
    assert_eq!(rules_for(&s, "clone").len(), 1);

    // With CAP_SYS_ADMIN, Docker allows unshare and any clone; the explicit denials hold.
    let s = docker("amd64", &caps(&["CAP_SYS_ADMIN", "CAP_SYS_TIME"]), KERNEL);
    assert_eq!(
        unconditional(&s, "unshare").as_deref(),
        Some("SCMP_ACT_ALLOW")
    );
    assert_eq!(
        unconditional(&s, "clone").as_deref(),
        Some("SCMP_ACT_ALLOW")
    );
    assert!(rules_for(&s, "clone").iter().all(|r| r.args.is_empty()));
    assert_eq!(
        rules_for(&s, "clone3").len(),
        1,
        "the ENOSYS rule is excluded"
    );
    for name in ["bpf", "settimeofday", "clock_settime"] {
        assert_eq!(
            unconditional(&s, name).as_deref(),
            Some("SCMP_ACT_ERRNO"),
            "{name}"
        );
    }
    // An include needs every capability it lists.
    assert_eq!(
        unconditional(&docker("amd64", &caps(&["CAP_SYS_BOOT"]), KERNEL), "reboot").as_deref(),
        Some("SCMP_ACT_ALLOW")
    );
}

#[test]
fn arches_and_kernel_versions_select_rules() {
    let s = docker("arm64", &[], KERNEL);
    assert_eq!(s.architectures, ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]);
    assert_eq!(unconditional(&s, "arch_prctl"), None);
    assert_eq!(
        unconditional(&s, "cacheflush").as_deref(),
        Some("SCMP_ACT_ALLOW")
    );

    // s390 passes clone's flags second: its own rule, not the amd64 one.
    let s = docker("s390x", &[], KERNEL);
    let clone = rules_for(&s, "clone");
    assert_eq!(clone.len(), 1);
    assert_eq!(clone[0].args[0].index, 1);

    // ptrace without CAP_SYS_PTRACE only from 4.8 (seccomp could be bypassed before).
    let old = KernelVersion { major: 4, minor: 4 };
    assert_eq!(unconditional(&docker("amd64", &[], old), "ptrace"), None);
    let new = KernelVersion { major: 4, minor: 8 };
    assert_eq!(
        unconditional(&docker("amd64", &[], new), "ptrace").as_deref(),
        Some("SCMP_ACT_ALLOW")
    );

    // An architecture the profile has no entry for: no architectures, the native one only.
    assert!(docker("ppc64le", &[], KERNEL).architectures.is_empty());
}

#[test]
fn excludes_by_kernel_and_bad_profiles() {
    let profile = Profile::parse(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
            {"names":["a"],"action":"SCMP_ACT_ALLOW","excludes":{"minKernel":"5.10"}},
            {"names":["b"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_X","CAP_Y"]}}]}"#,
    )
    .unwrap();
    let names = |kernel, c: &[&str]| {
        let c = caps(c);
        let s = resolve(
            &profile,
            &Target {
                arch: "amd64",
                capabilities: &c,
                kernel,
            },
        )
        .unwrap();
        s.syscalls
            .iter()
            .filter(|r| r.action == "SCMP_ACT_ALLOW")
            .flat_map(|r| r.names.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(KernelVersion { major: 5, minor: 4 }, &[]), ["a"]);
    assert!(
        names(
            KernelVersion {
                major: 5,
                minor: 10
            },
            &["CAP_X"]
        )
        .is_empty()
    );
    assert_eq!(names(KERNEL, &["CAP_X", "CAP_Y"]), ["b"]);

    for (json, want) in [
        ("{", "not a profile"),
        (
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["a"],"action":"SCMP_ACT_ALLOW","listenerPath":"/x"}]}"#,
            "unknown field",
        ),
    ] {
        match Profile::parse(json) {
            Err(Error::Invalid { reason, .. }) => assert!(reason.contains(want), "{reason}"),
            other => panic!("{json}: {other:?}"),
        }
    }
    let empty = Profile::parse(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":[],"action":"SCMP_ACT_ALLOW"}]}"#,
    )
    .unwrap();
    let target = Target {
        arch: "amd64",
        capabilities: &[],
        kernel: KERNEL,
    };
    assert!(resolve(&empty, &target).is_err());
    let bad_kernel = Profile::parse(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["a"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"four"}}]}"#,
    )
    .unwrap();
    match resolve(&bad_kernel, &target) {
        Err(Error::Invalid { what, reason }) => {
            assert_eq!(what, "kernel version");
            assert!(reason.contains("\"four\""), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn kernel_releases_parse_like_dockers() {
    for (release, want) in [
        ("6.1.0-18-amd64", (6, 1)),
        ("5.15.0", (5, 15)),
        ("4.8", (4, 8)),
        ("6.18.44-fc-v1300", (6, 18)),
        ("3.10.0-1160.el7.x86_64", (3, 10)),
    ] {
        let v = KernelVersion::parse(release).unwrap();
        assert_eq!((v.major, v.minor), want, "{release}");
    }
    for bad in ["", "6", "x.y", ".1"] {
        assert!(KernelVersion::parse(bad).is_err(), "{bad}");
    }
    KernelVersion::running().unwrap();
}

#[test]
fn the_oci_json_has_the_spec_field_names() {
    let s = docker("amd64", &[], KERNEL);
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(json["defaultErrnoRet"], 1);
    let clone = json["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["names"][0] == "clone")
        .unwrap();
    assert_eq!(clone["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
    assert!(clone["args"][0].get("valueTwo").is_none());
    assert!(clone.get("errnoRet").is_none());
    assert_eq!(serde_json::from_value::<Seccomp>(json).unwrap(), s);
}
