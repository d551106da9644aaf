//! Real build containers (root, runc, busybox-static): they skip with a note elsewhere. Every
//! test ends by checking that nothing is left: no mount under its scratch directory, no cgroup
//! directory, no runc state.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use crate::build::cgroups::{cgroups_path, mounts};
use crate::build::container::find_program;
use crate::build::*;
use crate::host::mounts_under;

fn usable() -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    let ok = root && find_program("runc").is_some() && find_program("busybox").is_some();
    if !ok {
        eprintln!("skipping: build containers need root, runc and busybox-static");
    }
    ok
}

struct Fixture {
    dir: tempfile::TempDir,
    layer: PathBuf,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("image");
    crate::image::busybox_image(&image).await.unwrap();
    Fixture {
        layer: crate::image::rootfs_path(&image),
        dir,
    }
}

impl Fixture {
    fn spec(&self, name: &str, args: &[&str]) -> BuildSpec {
        BuildSpec {
            id: format!("mrt-{}-{name}", std::process::id()),
            layers: vec![self.layer.clone()],
            scratch: self.dir.path().join(format!("scratch-{name}")),
            mounts: Vec::new(),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
            cwd: "/".into(),
            limits: BuildLimits::default(),
            network: BuildNetwork::None,
        }
    }
}

fn collect(mut rx: UnboundedReceiver<String>) -> Vec<String> {
    let mut out = Vec::new();
    while let Ok(l) = rx.try_recv() {
        out.push(l);
    }
    out
}

/// Nothing of the build `id` with this scratch directory is left on the host.
fn assert_no_leftovers(id: &str, scratch: &Path) {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert_eq!(mounts_under(&mountinfo, scratch), Vec::<PathBuf>::new());
    for d in mounts().unwrap().all_dirs(&cgroups_path(id)) {
        assert!(!d.exists(), "{} left behind", d.display());
    }
    assert!(!scratch.join("runc").join(id).exists(), "runc state left");
}

#[tokio::test]
async fn a_build_streams_its_lines_and_leaves_its_changes_in_upper() {
    if !usable() {
        return;
    }
    let f = fixture().await;
    let mut spec = f.spec("ok", &["sh", "-c", "echo one; echo two >&2; echo made > /made; echo three; cat /etc/resolv.conf >/dev/null"]);
    spec.network = BuildNetwork::Host;
    let (tx, rx) = unbounded_channel();
    let start = Instant::now();
    let outcome = run_build(&spec, tx).await.unwrap();
    eprintln!("build container `sh -c ...` ran in {:?}", start.elapsed());
    assert!(outcome.success(), "{outcome}");
    // Each stream keeps its order; runc copies stdout and stderr through two pipes of its
    // own, so lines of the two may interleave differently.
    let lines = collect(rx);
    let out: Vec<&String> = lines.iter().filter(|l| *l != "two").collect();
    assert_eq!(out, ["one", "three"]);
    assert!(lines.contains(&"two".to_string()), "{lines:?}");
    let upper = upper_dir(&spec.scratch);
    assert_eq!(
        std::fs::read_to_string(upper.join("made")).unwrap(),
        "made\n"
    );
    // Mount points live in their own lower layer, never in what the caller packs.
    for p in ["proc", "dev", "sys", "tmp", "etc"] {
        assert!(!upper.join(p).exists(), "{p} in upper");
    }
    assert_no_leftovers(&spec.id, &spec.scratch);
}

#[tokio::test]
async fn failures_are_outcomes_and_start_overhead_is_small() {
    if !usable() {
        return;
    }
    let f = fixture().await;
    let spec = f.spec("fail", &["sh", "-c", "echo bad; exit 3"]);
    let (tx, rx) = unbounded_channel();
    let outcome = run_build(&spec, tx).await.unwrap();
    assert_eq!(outcome.exit_code, Some(3));
    assert_eq!(outcome.to_string(), "exited with code 3");
    assert_eq!(collect(rx), ["bad"]);
    assert_no_leftovers(&spec.id, &spec.scratch);

    let mut times = Vec::new();
    for i in 0..3 {
        let spec = f.spec(&format!("true{i}"), &["true"]);
        let (tx, _rx) = unbounded_channel();
        let start = Instant::now();
        assert!(run_build(&spec, tx).await.unwrap().success());
        times.push(start.elapsed());
        assert_no_leftovers(&spec.id, &spec.scratch);
    }
    eprintln!("build container overhead (run `true`, set up to cleaned up): {times:?}");

    let spec = f.spec("missing", &["no-such-program"]);
    let (tx, rx) = unbounded_channel();
    let outcome = run_build(&spec, tx).await.unwrap();
    assert!(!outcome.success());
    let lines = collect(rx).join("\n");
    assert!(lines.contains("no-such-program"), "{lines}");
    assert_no_leftovers(&spec.id, &spec.scratch);
}

#[tokio::test]
async fn a_memory_hog_is_oom_killed_alone() {
    if !usable() {
        return;
    }
    let f = fixture().await;
    let mut spec = f.spec("oom", &["awk", "BEGIN { s = \"x\"; while (1) s = s s }"]);
    spec.limits.memory_bytes = 64 << 20;
    let (tx, _rx) = unbounded_channel();
    let outcome = run_build(&spec, tx).await.unwrap();
    assert!(outcome.oom_killed, "{outcome:?}");
    assert!(!outcome.success());
    assert_eq!(outcome.to_string(), "ran out of memory (limit 64 MiB)");
    assert_no_leftovers(&spec.id, &spec.scratch);
}

#[tokio::test]
async fn a_hanging_build_times_out() {
    if !usable() {
        return;
    }
    let f = fixture().await;
    let mut spec = f.spec("hang", &["sleep", "100"]);
    spec.limits.timeout = Duration::from_secs(2);
    let (tx, _rx) = unbounded_channel();
    let start = Instant::now();
    let outcome = run_build(&spec, tx).await.unwrap();
    assert!(outcome.timed_out, "{outcome:?}");
    assert_eq!(outcome.to_string(), "timed out after 2s");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert_no_leftovers(&spec.id, &spec.scratch);
}

#[tokio::test]
async fn builds_without_network_see_only_loopback_and_get_their_mounts() {
    if !usable() {
        return;
    }
    let f = fixture().await;
    let src = f.dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("in.txt"), "input").unwrap();
    let mut spec = f.spec(
        "net",
        &[
            "sh",
            "-c",
            "ls /sys/class/net; cat /src/in.txt; echo; touch /src/x 2>/dev/null || echo ro; id -u",
        ],
    );
    spec.mounts.push(BindMount {
        source: src.clone(),
        target: "/src".into(),
        read_only: true,
    });
    let (tx, rx) = unbounded_channel();
    let outcome = run_build(&spec, tx).await.unwrap();
    assert!(outcome.success(), "{outcome}");
    assert_eq!(collect(rx), ["lo", "input", "ro", "0"]);
    assert!(!upper_dir(&spec.scratch).join("src").exists());
    assert_no_leftovers(&spec.id, &spec.scratch);
}

#[tokio::test]
async fn dropping_a_running_build_cleans_up() {
    if !usable() {
        return;
    }
    let f = fixture().await;
    let spec = f.spec("drop", &["sleep", "100"]);
    let (tx, _rx) = unbounded_channel();
    let run = run_build(&spec, tx);
    assert!(
        tokio::time::timeout(Duration::from_secs(1), run)
            .await
            .is_err()
    );
    assert_no_leftovers(&spec.id, &spec.scratch);
}

#[tokio::test]
async fn limited_host_processes_stream_time_out_and_run_out_of_memory() {
    if !usable() {
        return;
    }
    let id = |n: &str| format!("mrl-{}-{n}", std::process::id());
    let limits = BuildLimits::default();
    let sh = |s: &str| vec!["-c".to_string(), s.to_string()];
    let (tx, rx) = unbounded_channel();
    let out = run_limited(
        "sh",
        &sh("echo a; echo b >&2; grep widemesh_build /proc/self/cgroup | head -1"),
        &[("X".into(), "y".into())],
        "/".as_ref(),
        &id("ok"),
        &limits,
        None,
        tx,
    )
    .await
    .unwrap();
    assert!(out.success(), "{out}");
    let lines = collect(rx);
    assert_eq!(lines[..2], ["a", "b"]);
    assert!(
        lines[2].ends_with(&format!("/widemesh_build/{}", id("ok"))),
        "{lines:?}"
    );
    assert_no_leftovers(&id("ok"), Path::new("/nonexistent"));

    let mut short = limits;
    short.timeout = Duration::from_secs(1);
    let (tx, _rx) = unbounded_channel();
    let start = Instant::now();
    // The background sleep outlives its shell: it must be killed too.
    let out = run_limited(
        "sh",
        &sh("sleep 100 & sleep 100"),
        &[],
        "/".as_ref(),
        &id("hang"),
        &short,
        None,
        tx,
    )
    .await
    .unwrap();
    assert!(out.timed_out, "{out:?}");
    assert!(start.elapsed() < Duration::from_secs(8));
    assert_no_leftovers(&id("hang"), Path::new("/nonexistent"));

    let mut small = limits;
    small.memory_bytes = 64 << 20;
    let (tx, _rx) = unbounded_channel();
    let out = run_limited(
        "busybox",
        &[
            "awk".into(),
            "BEGIN { s = \"x\"; while (1) s = s s }".into(),
        ],
        &[],
        "/".as_ref(),
        &id("oom"),
        &small,
        None,
        tx,
    )
    .await
    .unwrap();
    assert!(out.oom_killed, "{out:?}");
    assert_no_leftovers(&id("oom"), Path::new("/nonexistent"));
}

/// A host program run limited is in its own PID namespace (a fresh /proc lists only its own
/// processes), its own UTS namespace, and a network namespace with nothing but loopback.
#[tokio::test]
async fn limited_host_programs_see_only_their_own_processes_and_no_network() {
    if !usable() {
        return;
    }
    let id = format!("mrl-{}-sbx", std::process::id());
    let (tx, rx) = unbounded_channel();
    let script = "ls /proc | grep -c '^[0-9]'; hostname sandboxed && hostname; \
                  ip -o link | grep -c -v ' lo:'; cat /proc/1/cmdline | tr '\\0' ' '; echo; \
                  grep NoNewPrivs /proc/self/status";
    let out = run_limited(
        "sh",
        &["-c".to_string(), script.to_string()],
        &[],
        "/".as_ref(),
        &id,
        &BuildLimits::default(),
        None,
        tx,
    )
    .await
    .unwrap();
    let lines = collect(rx);
    assert!(out.success(), "{out} {lines:?}");
    let pids: usize = lines[0].trim().parse().unwrap();
    assert!(pids <= 5, "the sandbox sees {pids} processes: {lines:?}");
    assert_eq!(lines[1], "sandboxed");
    assert_eq!(lines[2].trim(), "0", "interfaces other than lo: {lines:?}");
    assert!(
        lines[3].starts_with("sh -c"),
        "pid 1 is the program: {lines:?}"
    );
    assert_eq!(
        lines[4].split_whitespace().collect::<Vec<_>>(),
        ["NoNewPrivs:", "1"]
    );
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_ne!(host_name.trim(), "sandboxed");
    assert_no_leftovers(&id, Path::new("/nonexistent"));
}

/// A build on the egress network, tried from inside: it sees only its own processes, reaches
/// neither a service listening on every host address (through the host side of its veth, the
/// host's loopback or the host's own address) nor, through the proxy, the host's loopback;
/// only the proxy's port answers it. Its namespace, veth and table are gone afterwards.
#[tokio::test]
async fn an_egress_build_reaches_only_the_proxy_and_the_proxy_refuses_the_host() {
    if !usable() || find_program("nft").is_none() {
        return;
    }
    let f = fixture().await;
    let service = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = service.local_addr().unwrap().port();
    service.set_nonblocking(true).unwrap();
    let host_addr = crate::build::egress::host_addresses()
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.is_ipv4() && !a.is_loopback())
        .map(|a| a.to_string())
        .unwrap_or_else(|| "127.0.0.1".into());
    let script = format!(
        "echo procs $(ls /proc | grep -c '^[0-9]'); \
         gw=${{HTTP_PROXY#http://}}; gw=${{gw%:*}}; echo proxy $gw; \
         for a in 127.0.0.1 $gw {host_addr}; do \
           if echo x | nc -w 2 $a {port} >/dev/null 2>&1; then echo reached $a; else echo refused $a; fi; \
         done; \
         echo get $(printf 'GET http://127.0.0.1:{port}/ HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n' | nc -w 3 $gw 3128 | head -1); \
         echo connect $(printf 'CONNECT 10.1.2.3:443 HTTP/1.1\\r\\n\\r\\n' | nc -w 3 $gw 3128 | head -1)"
    );
    let mut spec = f.spec("egress", &["/bin/sh", "-c", &script]);
    let cfg = EgressConfig {
        subnet: "10.229.0.0/16".parse().unwrap(),
        ..EgressConfig::default()
    };
    spec.network = BuildNetwork::Egress(std::sync::Arc::new(cfg));
    let (tx, rx) = unbounded_channel();
    let out = run_build(&spec, tx).await.unwrap();
    let lines = collect(rx);
    assert!(out.success(), "{out}: {lines:?}");
    let procs: usize = lines[0].strip_prefix("procs ").unwrap().parse().unwrap();
    assert!(procs <= 6, "{lines:?}");
    let gw = lines[1].strip_prefix("proxy ").unwrap().to_string();
    assert!(gw.starts_with("10.229."), "{lines:?}");
    for a in ["127.0.0.1", gw.as_str(), host_addr.as_str()] {
        assert!(lines.contains(&format!("refused {a}")), "{a}: {lines:?}");
    }
    assert!(
        lines.iter().any(|l| l.starts_with("get HTTP/1.1 403")),
        "GET through the proxy to loopback: {lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("connect HTTP/1.1 403")),
        "CONNECT to a private address: {lines:?}"
    );
    assert!(service.accept().is_err(), "the host's service was reached");
    assert_no_leftovers(&spec.id, &spec.scratch);
    let addrs = std::process::Command::new("ip")
        .args(["-o", "addr"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&addrs.stdout).contains(&format!(" {gw}/30")),
        "the veth is left"
    );
    assert!(
        !Path::new("/run/netns")
            .join(format!("wmb-{}", spec.id))
            .exists(),
        "the namespace is left"
    );
    let ruleset = std::process::Command::new("nft")
        .args(["list", "ruleset"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&ruleset.stdout).contains(&format!("ip daddr {gw} ")),
        "the table is left"
    );
}
