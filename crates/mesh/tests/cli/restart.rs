//! Restarting a rack's router process under load loses no request: a new `mesh router` on the
//! same data directory takes the listening sockets over from the running one (nothing queued on
//! them is reset), serves the routes it cached, waits for the old agent to stop before its own
//! reconciles, and the old process drains and exits. The same for `mesh up`, whose API port
//! moves along. Privileged: CI runs it as root.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::web::{Load, Purge, assert_root, free_port, get, wait_for_body, wait_no_netns};

const PREFIX: &str = "e5r";
const POOL: &str = "10.240.0.0/16";
const HOST: &str = "shop.localhost";

fn router(p: &Platform, agent: &std::path::Path, http: u16, log: &str) -> Child {
    let token = std::fs::read_to_string(p.home.data_dir().join("local-join-token")).unwrap();
    let out = std::fs::File::create(p.home.path().join(log)).unwrap();
    p.home
        .command(&mesh_bin())
        .args(["router", "--api-url", &p.url, "--token", token.trim()])
        .args(["--data-dir", agent.to_str().unwrap(), "--name", "edge-1"])
        .args(["--http-listen", &format!("127.0.0.1:{http}")])
        .args(["--https-listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--net-prefix", PREFIX, "--subnet-pool", POOL])
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap()
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the process did not exit within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn terminate(child: &mut Child) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let _ = wait_exit(child, Duration::from_secs(30));
}

/// Environment `shop`, stack `app`, a busybox web service answering "hello", published on
/// `HOST`.
fn publish_hello(p: &Platform) {
    let at = ["--env", "shop", "--stack", "app"];
    p.mesh(&["env", "create", "shop"]).ok();
    busybox_web(p);
    p.mesh(
        &[
            &["endpoint", "publish", HOST, "--service", "web"][..],
            &at[..],
        ]
        .concat(),
    )
    .ok();
}

#[test]
fn a_router_restart_under_load_loses_no_request() {
    assert_root();
    let p = Platform::start();
    let agent = p.home.path().join("agent");
    let _purge = Purge::new(agent.clone(), PREFIX);
    publish_hello(&p);

    let http = free_port();
    let mut old = router(&p, &agent, http, "router-1.log");
    wait_for_body(http, HOST, "hello", Duration::from_secs(60));

    let load = Load::start(http, HOST, &["hello"]);
    std::thread::sleep(Duration::from_secs(1));
    let mut new = router(&p, &agent, http, "router-2.log");
    let status = wait_exit(&mut old, Duration::from_secs(60));
    let log = |n: u32| {
        std::fs::read_to_string(p.home.path().join(format!("router-{n}.log"))).unwrap_or_default()
    };
    assert!(
        status.success(),
        "the old router exited with {status}:\n{}",
        log(1)
    );
    assert!(log(1).contains("handed the router over"), "{}", log(1));
    assert!(
        log(2).contains("took the router's sockets over"),
        "{}",
        log(2)
    );
    // The new agent reconciles once the old one let go of the data directory.
    std::thread::sleep(Duration::from_secs(2));
    let (sent, failures) = load.finish();
    assert!(sent > 50, "the load loop sent only {sent} requests");
    assert!(
        failures.is_empty(),
        "{} of {sent} requests failed across the restart: {failures:?}\n{}\n{}",
        failures.len(),
        log(1),
        log(2)
    );
    assert_eq!(get(http, HOST).unwrap(), (200, "hello".to_string()));
    assert!(
        new.try_wait().unwrap().is_none(),
        "the new router runs:\n{}",
        log(2)
    );

    p.mesh(&["env", "delete", "shop", "--yes"]).ok();
    wait_no_netns(PREFIX, Duration::from_secs(60));
    terminate(&mut new);
}

const UP_PREFIX: &str = "e5u";
const UP_POOL: &str = "10.227.0.0/16";

/// The same for `mesh up`: a second `mesh up` on the same data directory takes the router's
/// and the API's sockets over; the first drains and exits; routed traffic loses nothing and
/// the API keeps its address.
#[test]
fn a_mesh_up_restart_under_load_loses_no_request() {
    assert_root();
    let home = Home::new();
    let _purge = Purge::with_home(home.path().to_path_buf(), home.data_dir(), UP_PREFIX);
    let http = free_port();
    let (h, hs, m) = (
        format!("127.0.0.1:{http}"),
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let mut p = Platform::start_with(
        home,
        &[
            "--http-listen",
            &h,
            "--https-listen",
            &hs,
            "--router-metrics-listen",
            &m,
            "--net-prefix",
            UP_PREFIX,
            "--subnet-pool",
            UP_POOL,
        ],
    );
    publish_hello(&p);
    wait_for_body(http, HOST, "hello", Duration::from_secs(60));
    let url = p.url.clone();

    let load = Load::start(http, HOST, &["hello"]);
    std::thread::sleep(Duration::from_secs(1));
    let old_log = p.take_over();
    assert!(
        old_log.contains("took the sockets over: stopping"),
        "{old_log}"
    );
    assert!(
        p.log().contains("took the router's sockets over"),
        "{}",
        p.log()
    );
    assert_eq!(p.url, url, "the API kept its address");
    std::thread::sleep(Duration::from_secs(2));
    let (sent, failures) = load.finish();
    assert!(sent > 50, "the load loop sent only {sent} requests");
    assert!(
        failures.is_empty(),
        "{} of {sent} requests failed across the restart: {failures:?}\nold:\n{old_log}\nnew:\n{}",
        failures.len(),
        p.log()
    );
    assert_eq!(get(http, HOST).unwrap(), (200, "hello".to_string()));
    let envs = p.mesh(&["env", "ls"]).ok();
    assert!(envs.stdout.contains("shop"), "{envs:#?}");
    // The metrics listener went along too (binding it again would have failed).
    let metrics = std::process::Command::new("curl")
        .args(["-sf", &format!("http://{m}/metrics")])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&metrics.stdout).contains("mesh_router_requests_total"),
        "{metrics:?}"
    );

    p.mesh(&["env", "delete", "shop", "--yes"]).ok();
    wait_no_netns(UP_PREFIX, Duration::from_secs(60));
    p.stop();
}
