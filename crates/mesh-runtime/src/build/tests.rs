use std::path::PathBuf;
use std::time::Duration;

use super::config::config;
use super::*;

mod privileged;

fn spec(network: BuildNetwork) -> BuildSpec {
    BuildSpec {
        id: "b-1".into(),
        layers: vec![PathBuf::from("/layers/base")],
        scratch: PathBuf::from("/scratch"),
        mounts: vec![BindMount {
            source: PathBuf::from("/src/app"),
            target: "/app".into(),
            read_only: true,
        }],
        args: vec!["make".into()],
        env: vec![("A".into(), "1".into())],
        cwd: "/app".into(),
        limits: BuildLimits::default(),
        network,
    }
}

fn outcome(code: Option<i32>, signal: Option<i32>, oom: bool, timed_out: bool) -> BuildOutcome {
    BuildOutcome {
        exit_code: code,
        signal,
        oom_killed: oom,
        timed_out,
        limits: BuildLimits::default(),
    }
}

#[test]
fn outcomes_say_why_in_words() {
    assert!(outcome(Some(0), None, false, false).success());
    assert_eq!(
        outcome(Some(0), None, false, false).to_string(),
        "succeeded"
    );
    assert_eq!(
        outcome(Some(1), None, false, false).to_string(),
        "exited with code 1"
    );
    let oom = outcome(Some(137), Some(9), true, false);
    assert!(!oom.success());
    assert_eq!(oom.to_string(), "ran out of memory (limit 2 GiB)");
    assert_eq!(
        outcome(None, Some(9), false, true).to_string(),
        "timed out after 15m"
    );
    assert_eq!(
        outcome(Some(137), Some(9), false, false).to_string(),
        "was killed by SIGKILL"
    );
}

#[test]
fn sizes_and_durations_read_naturally() {
    assert_eq!(human_bytes(64 << 20), "64 MiB");
    assert_eq!(human_bytes(3 << 29), "1.5 GiB");
    assert_eq!(human_bytes(100), "100 bytes");
    assert_eq!(human_duration(Duration::from_secs(2)), "2s");
    assert_eq!(human_duration(Duration::from_secs(90)), "1m30s");
    assert_eq!(human_duration(Duration::from_secs(3600)), "1h");
    assert_eq!(human_duration(Duration::from_millis(250)), "250ms");
}

#[test]
fn ids_must_name_a_container_and_a_cgroup() {
    assert!(check_id("build-42").is_ok());
    for bad in ["", "-x", "A", "a/b", "a.b", &"x".repeat(64)] {
        assert!(check_id(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn host_network_builds_share_the_hosts_namespace_and_resolver() {
    let c = config(
        &spec(BuildNetwork::Host),
        "/widemesh_build/b-1",
        "/scratch/resolv.conf".as_ref(),
        1024,
        None,
    );
    let ns: Vec<&str> = c["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert!(!ns.contains(&"network"), "{ns:?}");
    for want in ["pid", "mount", "ipc", "uts"] {
        assert!(ns.contains(&want), "{want} missing from {ns:?}");
    }
    let mounts = c["mounts"].as_array().unwrap();
    let resolv = mounts
        .iter()
        .find(|m| m["destination"] == "/etc/resolv.conf")
        .expect("resolv.conf mounted");
    assert_eq!(resolv["source"], "/scratch/resolv.conf");
    assert!(resolv["options"].as_array().unwrap().contains(&"ro".into()));
    let app = mounts.iter().find(|m| m["destination"] == "/app").unwrap();
    assert!(app["options"].as_array().unwrap().contains(&"ro".into()));
    assert!(
        mounts
            .iter()
            .any(|m| m["destination"] == "/tmp" && m["type"] == "tmpfs")
    );
    // Network sysctls would be the host's own.
    assert!(c["linux"]["sysctl"].as_object().unwrap().is_empty());
}

#[test]
fn builds_run_as_root_with_limits_and_no_raw_sockets() {
    let c = config(
        &spec(BuildNetwork::None),
        "/widemesh_build/b-1",
        "/r".as_ref(),
        1024,
        None,
    );
    assert!(
        c["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["type"] == "network" && n.get("path").is_none())
    );
    assert!(
        !c["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["destination"] == "/etc/resolv.conf")
    );
    assert_eq!(c["process"]["user"]["uid"], 0);
    assert_eq!(c["process"]["noNewPrivileges"], true);
    assert_eq!(c["process"]["oomScoreAdj"], 500);
    assert_eq!(c["process"]["cwd"], "/app");
    let caps = c["process"]["capabilities"]["bounding"].as_array().unwrap();
    assert!(caps.contains(&"CAP_SETUID".into()) && caps.contains(&"CAP_CHOWN".into()));
    assert!(!caps.contains(&"CAP_NET_RAW".into()) && !caps.contains(&"CAP_SYS_ADMIN".into()));
    let env = c["process"]["env"].as_array().unwrap();
    assert!(env.contains(&"A=1".into()) && env.contains(&"HOME=/root".into()));
    let r = &c["linux"]["resources"];
    assert_eq!(r["memory"]["limit"], 2i64 << 30);
    assert_eq!(r["memory"]["swap"], 2i64 << 30);
    assert_eq!(r["cpu"]["quota"], 150_000);
    assert_eq!(r["cpu"]["period"], 100_000);
    assert_eq!(r["pids"]["limit"], 4096);
    assert_eq!(c["linux"]["cgroupsPath"], "/widemesh_build/b-1");
}

#[test]
fn upper_dir_is_in_scratch() {
    assert_eq!(upper_dir("/s".as_ref()), PathBuf::from("/s/upper"));
}
