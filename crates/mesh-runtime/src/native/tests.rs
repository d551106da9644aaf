//! The native runtime over recording fakes: bundle generation, address management, rule
//! rendering, cgroup paths, failure rollback and teardown order, all without root.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::*;
use crate::host::{CmdOutput, FakeRunner, FakeSys, Recorder};
use crate::shim::ShimReport;
use crate::spec::{HostEntry, InstanceSpec, Status};

const CGROUPS: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

struct Harness {
    rt: NativeRuntime,
    rec: Recorder,
    runner: FakeRunner,
    sys: FakeSys,
    image: PathBuf,
    _dir: tempfile::TempDir,
}

fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("image");
    std::fs::create_dir(&image).unwrap();
    let rec = Recorder::default();
    let runner = FakeRunner::new(rec.clone());
    let sys = FakeSys::new(rec.clone());
    sys.set_base_mountinfo(CGROUPS);
    let mut opts = RuntimeOptions::new(dir.path().join("root"));
    opts.nft_table = "wm_t".into();
    opts.cgroup_parent = "wm_t".into();
    let rt = NativeRuntime::with_host(
        opts,
        ShimCommand::new("/bin/shim"),
        Arc::new(runner.clone()),
        Arc::new(sys.clone()),
    )
    .unwrap();
    Harness {
        rt,
        rec,
        runner,
        sys,
        image,
        _dir: dir,
    }
}

impl Harness {
    fn spec(&self, id: &str) -> InstanceSpec {
        let mut s = crate::spec::tests::sample();
        s.id = id.into();
        s.image = crate::spec::ImageRef::single(&self.image);
        s
    }

    fn runc(&self) -> String {
        format!("runc --root {}/runc", self.rt.options().root.display())
    }

    async fn network(&self) {
        self.rt
            .ensure_network(&NetworkSpec::new("shop", "10.5.0.0/24".parse().unwrap()))
            .await
            .unwrap();
    }

    fn write_exit(&self, id: &str, code: i32) {
        std::fs::write(
            self.rt.instance_dir(id).exit_file(),
            format!(r#"{{"code":{code},"signal":null,"oom_killed":false,"at_ms":1}}"#),
        )
        .unwrap();
    }
}

#[tokio::test]
async fn create_prepares_everything_before_the_shim_starts_runc() {
    let h = harness();
    h.network().await;
    h.rec.clear();
    let handle = h.rt.create(&h.spec("web-1")).await.unwrap();
    assert_eq!(handle.pid, 4242);
    assert_eq!(handle.address, Ipv4Addr::new(10, 5, 0, 2));

    let dir = h.rt.instance_dir("web-1");
    let mount = h.rec.position("mount overlay");
    let wire = h.rec.position("run: ip -batch -");
    let inside = h.rec.position("run: ip -n wm-web-1 -batch -");
    let shim = h.rec.position("shim: web-1");
    assert!(
        mount < wire && wire < inside && inside < shim,
        "{:#?}",
        h.rec.events()
    );
    assert_eq!(
        h.rec.events()[mount],
        format!(
            "mount overlay {} lower={}",
            dir.rootfs().display(),
            h.image.display()
        )
    );

    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.config()).unwrap()).unwrap();
    assert_eq!(config["linux"]["cgroupsPath"], "/wm_t/web-1");
    assert_eq!(
        config["linux"]["namespaces"][1]["path"],
        "/run/netns/wm-web-1"
    );
    assert_eq!(config["process"]["args"][2], "echo $GREETING");
    let hosts = std::fs::read_to_string(dir.hosts()).unwrap();
    assert!(hosts.contains("10.5.0.2\tapp-web\n") && hosts.contains("10.0.0.3\tapp-worker\n"));
    assert!(
        std::fs::read_to_string(dir.resolv())
            .unwrap()
            .contains("timeout:1")
    );

    let args = &h.runner.shims()[0];
    assert_eq!(args.bundle, dir.bundle());
    assert_eq!(
        args.oom_file.as_deref(),
        Some(std::path::Path::new(
            "/sys/fs/cgroup/memory/wm_t/web-1/memory.oom_control"
        ))
    );
    assert_eq!(args.stdout, handle.logs.stdout);
    assert!(matches!(
        h.rt.create(&h.spec("web-1")).await,
        Err(Error::AlreadyExists(_))
    ));
}

#[tokio::test]
async fn create_needs_a_network_and_a_free_address() {
    let h = harness();
    assert!(matches!(
        h.rt.create(&h.spec("web-1")).await,
        Err(Error::NoNetwork(_))
    ));
    h.network().await;
    let mut a = h.spec("web-1");
    a.address = Some(Ipv4Addr::new(10, 5, 0, 9));
    assert_eq!(h.rt.create(&a).await.unwrap().address, a.address.unwrap());
    let mut b = h.spec("web-2");
    b.address = a.address;
    let e = h.rt.create(&b).await.unwrap_err();
    assert!(e.to_string().contains("\"web-1\" has it"), "{e}");
    assert!(!h.rt.instance_dir("web-2").path().exists());
    let mut c = h.spec("web-3");
    c.image.layers = vec!["/nonexistent/layer".into()];
    assert!(matches!(h.rt.create(&c).await, Err(Error::Image { .. })));
}

#[tokio::test]
async fn a_failed_start_is_rolled_back_completely() {
    let h = harness();
    h.network().await;
    h.runner.shim_reports(ShimReport::Failed(
        "exec: \"nope\": executable file not found".into(),
    ));
    h.rec.clear();
    let e = h.rt.create(&h.spec("web-1")).await.unwrap_err();
    assert!(e.to_string().contains("executable file not found"), "{e}");
    let shim = h.rec.position("shim: web-1");
    assert!(
        h.rec
            .position(&format!("run: {} delete --force web-1", h.runc()))
            > shim
    );
    assert!(h.rec.position("umount") > shim);
    assert!(h.rec.position("run: ip netns del wm-web-1") > shim);
    assert!(h.sys.mounted().is_empty());
    assert!(!h.rt.instance_dir("web-1").path().exists());
    // The address went back: the network can be removed.
    h.rt.remove_network("shop").await.unwrap();
}

#[tokio::test]
async fn delete_tears_down_in_order_and_removes_empty_cgroup_parents() {
    let h = harness();
    h.network().await;
    h.rt.create(&h.spec("web-1")).await.unwrap();
    for c in ["cpu", "memory", "pids"] {
        h.sys.add_existing(format!("/sys/fs/cgroup/{c}/wm_t"));
    }
    h.sys.add_existing("/sys/fs/cgroup/unified/wm_t");
    h.write_exit("web-1", 0);
    h.rec.clear();
    h.rt.delete("web-1").await.unwrap();
    let order = [
        format!("run: {} delete --force web-1", h.runc()),
        format!("run: ip link del {}", h.rt.names().host_veth("web-1")),
        "run: ip netns del wm-web-1".to_string(),
        "umount ".to_string(),
        "rmdir /sys/fs/cgroup/cpu/wm_t".to_string(),
    ];
    let at: Vec<usize> = order.iter().map(|e| h.rec.position(e)).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{:#?}", h.rec.events());
    for c in ["memory", "pids", "unified"] {
        h.rec.position(&format!("rmdir /sys/fs/cgroup/{c}/wm_t"));
    }
    assert!(!h.rt.instance_dir("web-1").path().exists());
    assert!(matches!(
        h.rt.delete("web-1").await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(h.rt.state("web-1").await, Err(Error::NotFound(_))));
}

#[tokio::test]
async fn networks_render_the_table_and_guard_their_subnets() {
    let h = harness();
    h.network().await;
    let bridge = h.rt.names().bridge("shop");
    let rules = h.runner.last_stdin("nft -f -").unwrap();
    assert!(
        rules.contains(&format!("iifname \"{bridge}\" oifname \"wmb*\" drop")),
        "{rules}"
    );
    assert!(rules.contains("table inet wm_t {\n"));

    let e =
        h.rt.ensure_network(&NetworkSpec::new("shop", "10.6.0.0/24".parse().unwrap()))
            .await
            .unwrap_err();
    assert!(
        e.to_string().contains("exists with subnet 10.5.0.0/24"),
        "{e}"
    );
    let e =
        h.rt.ensure_network(&NetworkSpec::new("blog", "10.5.0.0/16".parse().unwrap()))
            .await
            .unwrap_err();
    assert!(e.to_string().contains("overlaps"), "{e}");
    let blog =
        h.rt.ensure_network(&NetworkSpec::new("blog", "10.7.0.0/24".parse().unwrap()))
            .await
            .unwrap();
    let rules = h.runner.last_stdin("nft -f -").unwrap();
    assert!(rules.contains(&format!("iifname \"{}\" drop", blog.bridge)));
    assert!(rules.contains(&format!("iifname \"{bridge}\" drop")));

    h.rt.create(&h.spec("web-1")).await.unwrap();
    assert!(matches!(
        h.rt.remove_network("shop").await,
        Err(Error::NetworkInUse { instances: 1, .. })
    ));
    h.write_exit("web-1", 0);
    h.rt.delete("web-1").await.unwrap();
    h.rt.remove_network("shop").await.unwrap();
    h.rt.remove_network("blog").await.unwrap();
    h.rec.position(&format!("run: ip link del {bridge}"));
    assert_eq!(
        h.runner.last_stdin("nft -f -").unwrap(),
        "table inet wm_t {}\ndelete table inet wm_t\n"
    );
    h.rt.remove_network("blog").await.unwrap();
}

#[tokio::test]
async fn status_comes_from_runc_and_the_exit_file() {
    let h = harness();
    h.network().await;
    h.rt.create(&h.spec("web-1")).await.unwrap();
    h.runner.on(
        format!("{} state web-1", h.runc()),
        CmdOutput::ok(r#"{"id":"web-1","pid":4242,"status":"running"}"#),
    );
    assert_eq!(
        h.rt.state("web-1").await.unwrap().status,
        Status::Running { pid: 4242 }
    );
    h.runner.on(
        format!("{} state web-1", h.runc()),
        CmdOutput::ok(r#"{"id":"web-1","pid":0,"status":"stopped"}"#),
    );
    // Stopped without an exit file: nobody saw it end.
    let st = h.rt.state("web-1").await.unwrap().status;
    assert_eq!(st, Status::Exited(ExitStatus::UNKNOWN));
    h.write_exit("web-1", 3);
    let Status::Exited(st) = h.rt.state("web-1").await.unwrap().status else {
        panic!("exited")
    };
    assert_eq!(st.code, Some(3));
    assert_eq!(h.rt.wait("web-1").await.unwrap().code, Some(3));
}

#[tokio::test]
async fn stop_sends_term_then_kill_after_the_grace() {
    let h = harness();
    h.network().await;
    h.rt.create(&h.spec("web-1")).await.unwrap();
    h.runner.on(
        format!("{} state web-1", h.runc()),
        CmdOutput::ok(r#"{"id":"web-1","pid":4242,"status":"running"}"#),
    );
    let exit = h.rt.instance_dir("web-1").exit_file();
    let writer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        std::fs::write(
            exit,
            r#"{"code":137,"signal":9,"oom_killed":false,"at_ms":1}"#,
        )
        .unwrap();
    });
    let st =
        h.rt.stop("web-1", Duration::from_millis(100))
            .await
            .unwrap();
    writer.await.unwrap();
    assert_eq!(st.signal, Some(9));
    let term = h
        .rec
        .position(&format!("run: {} kill web-1 SIGTERM", h.runc()));
    let kill = h
        .rec
        .position(&format!("run: {} kill web-1 SIGKILL", h.runc()));
    assert!(term < kill);
    // Stopping an ended instance just reports how it ended.
    h.rec.clear();
    assert_eq!(
        h.rt.stop("web-1", Duration::ZERO).await.unwrap().code,
        Some(137)
    );
    assert_eq!(h.rec.count("run: runc"), 0);
}

#[tokio::test]
async fn exec_passes_output_through_and_names_a_stopped_instance() {
    let h = harness();
    h.network().await;
    h.rt.create(&h.spec("web-1")).await.unwrap();
    let exec = format!("{} exec web-1 sh -c", h.runc());
    h.runner.on(
        exec.clone(),
        CmdOutput {
            code: Some(7),
            stdout: b"out\n".to_vec(),
            stderr: b"err\n".to_vec(),
        },
    );
    let args = ["sh".to_string(), "-c".into(), "exit 7".into()];
    let out = h.rt.exec("web-1", &args).await.unwrap();
    assert_eq!(
        (out.code, out.stdout_str(), out.stderr_str()),
        (7, "out\n".into(), "err\n".into())
    );
    h.runner.on(
        exec,
        CmdOutput::failed(
            255,
            "time=\"x\" level=error msg=\"cannot exec in a stopped container\"",
        ),
    );
    assert!(matches!(
        h.rt.exec("web-1", &args).await,
        Err(Error::NotRunning(_))
    ));
    assert!(matches!(
        h.rt.exec("web-1", &[]).await,
        Err(Error::Invalid { .. })
    ));
}

#[tokio::test]
async fn hosts_are_rewritten_in_place_and_remembered() {
    let h = harness();
    h.network().await;
    h.rt.create(&h.spec("web-1")).await.unwrap();
    let peers = [HostEntry::new("app-db", Ipv4Addr::new(10, 5, 0, 40))];
    h.rt.update_hosts("web-1", &peers).await.unwrap();
    let hosts = std::fs::read_to_string(h.rt.instance_dir("web-1").hosts()).unwrap();
    assert!(
        hosts.ends_with("10.5.0.2\tapp-web\n10.5.0.40\tapp-db\n"),
        "{hosts}"
    );
    assert!(!hosts.contains("app-worker"));
    let bad = [HostEntry::new("Bad Name", Ipv4Addr::new(10, 5, 0, 41))];
    assert!(h.rt.update_hosts("web-1", &bad).await.is_err());
}

#[tokio::test]
async fn a_new_runtime_over_the_same_root_lists_and_adopts() {
    let h = harness();
    h.network().await;
    h.rt.create(&h.spec("web-1")).await.unwrap();
    h.rt.create(&h.spec("web-2")).await.unwrap();
    h.write_exit("web-2", 0);

    let rec = Recorder::default();
    let runner = FakeRunner::new(rec.clone());
    let sys = FakeSys::new(rec);
    sys.set_base_mountinfo(CGROUPS);
    let again = NativeRuntime::with_host(
        h.rt.options().clone(),
        ShimCommand::new("/bin/shim"),
        Arc::new(runner.clone()),
        Arc::new(sys),
    )
    .unwrap();
    runner.on(
        format!("{} list", h.runc()),
        CmdOutput::ok(r#"[{"id":"web-1","pid":77,"status":"running"},{"id":"web-2","pid":0,"status":"stopped"}]"#),
    );
    let list = again.list().await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].status, Status::Running { pid: 77 });
    assert_eq!(list[0].address, Ipv4Addr::new(10, 5, 0, 2));
    assert_eq!(list[0].hostname, "app-web");
    assert!(matches!(&list[1].status, Status::Exited(s) if s.code == Some(0)));
    // The adopted network keeps its allocations: the next address is not a duplicate.
    assert_eq!(
        again.create(&h.spec("web-3")).await.unwrap().address,
        Ipv4Addr::new(10, 5, 0, 4)
    );
}

#[tokio::test]
async fn purge_removes_only_what_carries_our_names() {
    let h = harness();
    h.network().await;
    h.rt.create(&h.spec("web-1")).await.unwrap();
    h.write_exit("web-1", 0);
    let ours = h.rt.names().bridge("shop");
    let stray_veth = h.rt.names().host_veth("crashed");
    h.runner.on(
        "ip -j link show",
        CmdOutput::ok(format!(
            r#"[{{"ifname":"lo"}},{{"ifname":"eth0"}},{{"ifname":"{ours}"}},{{"ifname":"{stray_veth}"}},{{"ifname":"wmbrother"}}]"#
        )),
    );
    h.runner.on(
        "ip -j netns list",
        CmdOutput::ok(r#"[{"name":"wm-crashed"},{"name":"other-ns"}]"#),
    );
    h.sys.add_existing("/sys/fs/cgroup/memory/wm_t");
    h.sys.add_existing("/sys/fs/cgroup/memory/wm_t/crashed");
    h.sys
        .set_file("/sys/fs/cgroup/memory/wm_t/crashed/cgroup.procs", "");
    h.rec.clear();
    h.rt.purge().await.unwrap();
    h.rec
        .position(&format!("run: {} delete --force web-1", h.runc()));
    h.rec.position(&format!("run: ip link del {ours}"));
    h.rec.position(&format!("run: ip link del {stray_veth}"));
    h.rec.position("run: ip netns del wm-crashed");
    h.rec.position("rmdir /sys/fs/cgroup/memory/wm_t/crashed");
    h.rec.position("rmdir /sys/fs/cgroup/memory/wm_t");
    assert_eq!(h.rec.count("run: ip link del eth0"), 0);
    assert_eq!(h.rec.count("run: ip link del wmbrother"), 0);
    assert_eq!(h.rec.count("run: ip netns del other-ns"), 0);
    assert_eq!(
        h.runner.last_stdin("nft -f -").unwrap(),
        "table inet wm_t {}\ndelete table inet wm_t\n"
    );
    assert!(h.rt.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn deleting_a_running_instance_kills_it_and_lets_the_shim_record_the_exit() {
    let h = harness();
    h.network().await;
    h.rt.create(&h.spec("web-1")).await.unwrap();
    let dir = h.rt.instance_dir("web-1");
    std::fs::write(dir.pid_file(), "4242").unwrap();
    let exit = dir.exit_file();
    let shim = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        std::fs::write(
            exit,
            r#"{"code":137,"signal":9,"oom_killed":false,"at_ms":1}"#,
        )
        .unwrap();
    });
    h.rec.clear();
    h.rt.delete("web-1").await.unwrap();
    shim.await.unwrap();
    let kill = h
        .rec
        .position(&format!("run: {} kill web-1 SIGKILL", h.runc()));
    let delete = h
        .rec
        .position(&format!("run: {} delete --force web-1", h.runc()));
    assert!(kill < delete);
    assert!(!dir.path().exists());
}

#[tokio::test]
async fn instances_of_an_earlier_boot_or_unknown_to_runc_have_ended() {
    let h = harness();
    h.network().await;
    h.sys
        .set_file("/proc/sys/kernel/random/boot_id", "boot-a\n");
    h.rt.create(&h.spec("web-1")).await.unwrap();
    let record: crate::state::InstanceRecord =
        crate::state::read_json(&h.rt.instance_dir("web-1").record())
            .unwrap()
            .unwrap();
    assert_eq!(record.boot_id, "boot-a");
    let running = CmdOutput::ok(r#"{"id":"web-1","pid":4242,"status":"running"}"#);
    h.runner.on(format!("{} state web-1", h.runc()), running);
    assert!(h.rt.state("web-1").await.unwrap().status.is_running());

    // After a reboot runc's on-disk state may still say running: the boot id knows better.
    h.sys
        .set_file("/proc/sys/kernel/random/boot_id", "boot-b\n");
    assert_eq!(
        h.rt.state("web-1").await.unwrap().status,
        Status::Exited(ExitStatus::UNKNOWN)
    );

    // runc does not know it and no shim recorded an exit: ended, status unknown, at once.
    h.sys
        .set_file("/proc/sys/kernel/random/boot_id", "boot-a\n");
    h.runner.on(
        format!("{} state web-1", h.runc()),
        CmdOutput::failed(1, "container does not exist"),
    );
    let started = std::time::Instant::now();
    assert_eq!(
        h.rt.state("web-1").await.unwrap().status,
        Status::Exited(ExitStatus::UNKNOWN)
    );
    assert!(started.elapsed() < Duration::from_millis(500));
}
