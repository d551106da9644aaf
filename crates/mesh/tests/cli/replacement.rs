//! Replacing a rack's server, as a user would: an `ssh` provider with a pool of two test servers
//! (network namespaces with sshd, `provider_lab.rs`), a rack made on it, an app deployed there.
//! `mesh rack upgrade` makes a new server, moves the app and the rack's address to it, has the
//! old server's router forward to it for the drain grace and then deletes the old server, while
//! clients keep sending requests, both to the old address (a stale DNS cache) and to the rack's
//! address as the API gives it: none fails. A replacement whose new server cannot be made, or
//! is not healthy in time, is undone and the old server serves on. Then the environment moves to
//! a rack of another provider (`local`, an agent started by hand) by a rack migration, again
//! with no failed request. Privileged: CI runs it as root.

use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mesh_provider::NetPlan;
use serde_json::Value;

use crate::harness::*;
use crate::load::{LOAD_LIMIT, Load};
use crate::provider_lab::*;
use crate::web::assert_root;

const SUBNET: u8 = 64;
const HOST: &str = "shop.test";

fn plans() -> Vec<NetPlan> {
    [("ra", "10.241.0.0/16"), ("rb", "10.242.0.0/16")]
        .into_iter()
        .map(|(p, pool)| NetPlan {
            net_prefix: p.into(),
            subnet_pool: pool.into(),
        })
        .collect()
}

/// The agent of rack `home` (provider `local`), started by hand on this machine's end of the
/// lab's bridge.
const HOME_NET: (&str, &str) = ("rc", "10.243.0.0/16");

/// A client sending `GET /` as `HOST` to the address in `target` (port 80, or `ip:port`);
/// answered when the app says hello; it stops when `target` is emptied.
fn load_at(target: Arc<Mutex<String>>) -> Load {
    Load::start(move || {
        let ip = target.lock().unwrap().clone();
        if ip.is_empty() {
            return None;
        }
        Some(match get(&ip, HOST) {
            Ok((200, body)) if body.trim() == "hello" => Ok(body),
            other => Err(format!("at {ip}: {other:?}")),
        })
    })
}

fn rack_json(cp: &ControlPlane, rack: &str) -> Value {
    cp.mesh(&["rack", "show", rack, "--json"]).ok().json()
}

fn server_names(cp: &ControlPlane, rack: &str) -> Vec<String> {
    cp.mesh(&["rack", "servers", rack, "--json"])
        .ok()
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

/// The servers the environment's instances run on.
fn instance_servers(cp: &ControlPlane) -> Vec<String> {
    let list = cp
        .mesh(&["instances", "--env", "shop", "--json"])
        .ok()
        .json();
    let mut servers: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["server"].as_str().map(String::from))
        .collect();
    servers.sort();
    servers.dedup();
    servers
}

/// Waits (bounded) until the rack replaces no server.
fn wait_replaced(cp: &ControlPlane, rack: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while rack_json(cp, rack).get("replacement").is_some() {
        assert!(
            Instant::now() < deadline,
            "the replacement of {rack} did not end:\n{}",
            cp.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn events(cp: &ControlPlane, rack: &str) -> Vec<String> {
    cp.mesh(&["events", "--json"])
        .ok()
        .json()
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target"] == rack)
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect()
}

/// `mesh agent` for rack `home`, on this machine's end of the bridge.
fn home_agent(cp: &ControlPlane, token: &str, bridge_ip: &str, port: u16) -> Child {
    let log = std::fs::File::create(cp.home.path().join("home-agent.log")).unwrap();
    cp.home
        .command(&mesh_bin())
        .args(["agent", "--api-url", &cp.url, "--token", token])
        .args(["--name", "home-1", "--address", bridge_ip])
        .args([
            "--data-dir",
            cp.home.path().join("home-agent").to_str().unwrap(),
        ])
        .args(["--net-prefix", HOME_NET.0, "--subnet-pool", HOME_NET.1])
        .args(["--http-listen", &format!("{bridge_ip}:{port}")])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

#[test]
fn replacing_a_rack_server_and_switching_provider_fail_no_request() {
    assert_root();
    let mut lab = Lab::with_plans(SUBNET, plans());
    let bridge_ip = format!("10.198.{SUBNET}.1");
    let cp = ControlPlane::start(&bridge_ip);
    let specs: Vec<String> = lab
        .servers
        .iter()
        .zip(&lab.plans)
        .map(|(s, n)| spec_with(s, n))
        .collect();
    let (ip0, ip1) = (lab.servers[0].ip.clone(), lab.servers[1].ip.clone());
    let rack = format!("rp{}", std::process::id() % 100_000);
    lab.racks.push(Path::new("/var/lib/widemesh").join(&rack));
    let server_dir = |n: u32| {
        Path::new("/var/lib/widemesh")
            .join(&rack)
            .join(format!("{rack}-{n}"))
    };
    cp.mesh(
        &[
            &["provider", "add", "pool", "--kind", "ssh"][..],
            &["--server", &specs[0], "--server", &specs[1]],
            &[
                "--secret-file",
                &format!("private_key={}", lab.key.display()),
            ],
        ]
        .concat(),
    )
    .ok();
    cp.mesh(&[
        "rack",
        "create",
        &rack,
        "--provider",
        "pool",
        "--region",
        "lab",
        "--size",
        "small",
        "--domain",
        "rp.test",
        "--address",
        &ip0,
    ])
    .ok();

    // An app of two instances on the rack, answering on a custom domain.
    let at = ["--env", "shop", "--stack", "app"];
    cp.mesh(&["env", "create", "shop", "--rack", &rack]).ok();
    cp.mesh(&["create", "stack", "app", "--env", "shop"]).ok();
    cp.mesh(&[&["stack", "set-image", "busybox"][..], &at[..]].concat())
        .ok();
    let web = "mkdir -p /tmp/www && echo hello > /tmp/www/index.html && exec httpd -f -p $PORT -h /tmp/www";
    cp.mesh(
        &[
            &[
                "svc",
                "create",
                "-n",
                "web",
                "--size",
                "small",
                "--instances",
                "2",
            ][..],
            &at[..],
            &["--", web][..],
        ]
        .concat(),
    )
    .ok();
    cp.mesh(&["endpoint", "create", HOST, "--env", "shop"]).ok();
    cp.mesh(
        &[
            &["endpoint", "publish", HOST, "--service", "web"][..],
            &at[..],
        ]
        .concat(),
    )
    .ok();
    let deadline = Instant::now() + Duration::from_secs(90);
    while !matches!(get(&ip0, HOST), Ok((200, b)) if b.trim() == "hello") {
        assert!(
            Instant::now() < deadline,
            "the app did not answer on {rack}-1:\n{}\n{}",
            std::fs::read_to_string(server_dir(1).join("agent.log")).unwrap_or_default(),
            cp.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // Clients: one on the old address (a DNS cache that keeps it until the drain grace ends),
    // one on the rack's address as the API gives it now.
    let stale = Arc::new(Mutex::new(ip0.clone()));
    let current = Arc::new(Mutex::new(ip0.clone()));
    let stale_load = load_at(stale.clone());
    let current_load = load_at(current.clone());
    let follow = AtomicBool::new(true);
    // The follower stops when the test ends, also when it fails.
    struct Stop<'a>(&'a AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(false, Ordering::Relaxed);
        }
    }
    std::thread::scope(|scope| {
        let _stop = Stop(&follow);
        scope.spawn(|| {
            let started = Instant::now();
            let mut forwarding_since = None;
            while follow.load(Ordering::Relaxed) && started.elapsed() < LOAD_LIMIT {
                let json = rack_json(&cp, &rack);
                if let Some(a) = json["address"].as_str() {
                    *current.lock().unwrap() = a.to_string();
                }
                // The stale cache expires before the drain grace (10s) ends.
                match json["replacement"]["phase"].as_str() {
                    Some("forwarding") => {
                        let since = *forwarding_since.get_or_insert_with(Instant::now);
                        if since.elapsed() > Duration::from_secs(6) {
                            stale.lock().unwrap().clear();
                        }
                    }
                    Some("removing") => stale.lock().unwrap().clear(),
                    _ => {}
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });

        // The upgrade, followed by the CLI until done.
        let t = Instant::now();
        let out = cp.mesh(&["rack", "upgrade", &rack, "--drain-grace", "10s"]);
        assert_eq!(
            out.code,
            0,
            "{out:#?}\nagent of {rack}-2:\n{}\nmesh up:\n{}",
            std::fs::read_to_string(server_dir(2).join("agent.log")).unwrap_or_default(),
            cp.log()
        );
        let upgraded_in = t.elapsed();
        for want in [
            format!("making server {rack}-2"),
            format!("{rack}-2 starts the rack's instances"),
            format!("traffic moved to {rack}-2"),
            format!("deleting {rack}-1"),
            format!("done: {rack}-2 replaced {rack}-1 in rack {rack}"),
        ] {
            assert!(
                out.stdout.contains(&want),
                "{want:?} not in:\n{}",
                out.stdout
            );
        }
        let stale_seen = stale_load.finish();
        let r = rack_json(&cp, &rack);
        assert_eq!(r["address"], ip1.as_str(), "{r}");
        assert_eq!(r["state"], "ready", "{r}");
        assert_eq!(server_names(&cp, &rack), [format!("{rack}-2")]);
        assert_eq!(instance_servers(&cp), [format!("{rack}-2")]);
        assert!(
            !server_dir(1).exists(),
            "the old server's directory is still there"
        );
        assert!(matches!(get(&ip1, HOST), Ok((200, _))));
        assert!(
            get(&ip0, HOST).is_err(),
            "the old server's router still answers"
        );
        let ev = events(&cp, &rack);
        for want in [
            "rack.upgrade",
            "rack.replace.made",
            "rack.replace.forwarding",
            "rack.replace.done",
        ] {
            assert!(ev.iter().any(|e| e == want), "{want} not in {ev:?}");
        }

        // A new server that cannot be made: undone, the rack as it was.
        lab.servers[0].stop_sshd();
        let out = cp.mesh(&["rack", "resize", &rack, "--size", "big"]).fails();
        assert!(out.error().contains("was undone"), "{out:#?}");
        assert!(out.error().contains("unreachable"), "{out:#?}");
        let auth = lab.authorized.clone();
        lab.servers[0].start_sshd(&auth);
        // One that is not healthy in time (its agent cannot reach the control plane: a fast
        // server would otherwise be healthy within the second): undone too, and what was made
        // goes.
        let cp_port: u16 = cp.url.rsplit(':').next().unwrap().parse().unwrap();
        let refused = lab.servers[0].refuse_port(cp_port);
        let out = cp
            .mesh(&["rack", "resize", &rack, "--size", "big", "--timeout", "1s"])
            .fails();
        drop(refused);
        assert!(out.error().contains("within 1s"), "{out:#?}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::fs::read_dir(Path::new("/var/lib/widemesh").join(&rack))
            .map(|d| d.count())
            .unwrap_or(0)
            > 1
        {
            assert!(
                Instant::now() < deadline,
                "the undone server is still there"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        let r = rack_json(&cp, &rack);
        assert_eq!(
            (r["size"].as_str(), r["state"].as_str()),
            (Some("small"), Some("ready")),
            "{r}"
        );
        assert_eq!(server_names(&cp, &rack), [format!("{rack}-2")]);
        assert!(
            events(&cp, &rack)
                .iter()
                .filter(|e| *e == "rack.replace.undone")
                .count()
                >= 2
        );

        // A resize that goes through, started without waiting; another replacement meanwhile is
        // refused, and `mesh rack show` tells where it stands.
        let out = cp
            .mesh(&[
                "rack",
                "resize",
                &rack,
                "--size",
                "big",
                "--drain-grace",
                "2s",
                "--no-wait",
            ])
            .ok();
        assert!(
            out.stdout.contains("follow it with `mesh rack show"),
            "{}",
            out.stdout
        );
        let out = cp.mesh(&["rack", "upgrade", &rack]).fails();
        assert!(out.error().contains("already"), "{out:#?}");
        let shown = cp.mesh(&["rack", "show", &rack]).ok();
        assert!(
            shown.stdout.contains(&format!("{rack}-2 with ")),
            "{}",
            shown.stdout
        );
        wait_replaced(&cp, &rack);
        let r = rack_json(&cp, &rack);
        assert_eq!(
            (r["size"].as_str(), r["address"].as_str()),
            (Some("big"), Some(ip0.as_str())),
            "{r}\n{}",
            cp.mesh(&["events", "--limit", "20"]).ok().stdout
        );
        let new = server_names(&cp, &rack);
        assert_eq!(new.len(), 1, "{new:?}");
        assert_ne!(new[0], format!("{rack}-2"));
        assert!(matches!(get(&ip0, HOST), Ok((200, _))));
        // The environment leaves the rack next: the client that follows its address stops.
        follow.store(false, Ordering::Relaxed);
        let current_seen = current_load.finish();

        // Switching provider: the environment moves to a rack of provider `local`, whose agent
        // was started by hand, by a rack migration; the old rack forwards meanwhile.
        let port = std::net::TcpListener::bind((bridge_ip.as_str(), 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let token = cp
            .mesh(&[
                "rack",
                "create",
                "home",
                "--provider",
                "local",
                "--region",
                "home",
                "--domain",
                "home.test",
                "--address",
                &bridge_ip,
                "--json",
            ])
            .ok()
            .json()["join_token"]
            .as_str()
            .unwrap()
            .to_string();
        let mut agent = home_agent(&cp, &token, &bridge_ip, port);
        cp.wait_ready("home", "home-1", &cp.home.path().join("home-agent.log"));
        let out = cp
            .mesh(&["env", "update", "shop", "--rack", &format!("{rack},home")])
            .ok();
        assert!(out.stdout.contains("home"), "{}", out.stdout);
        let old_load = load_at(Arc::new(Mutex::new(ip0.clone())));
        let on_home = Arc::new(Mutex::new(format!("{bridge_ip}:{port}")));
        let home_load = load_at(on_home);
        cp.mesh(&[
            "env",
            "update",
            "shop",
            "--rack",
            "home",
            "--drain-grace",
            "6s",
        ])
        .ok();
        // The old rack forwards to home now; a DNS cache of its address expires within the
        // grace.
        std::thread::sleep(Duration::from_secs(2));
        let old_seen = old_load.finish();
        let deadline = Instant::now() + Duration::from_secs(60);
        while instance_servers(&cp) != ["home-1"] {
            assert!(
                Instant::now() < deadline,
                "shop did not leave {rack}:\n{}",
                cp.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        let moved = (old_seen, home_load.finish());
        let _ = agent.kill();
        let _ = agent.wait();
        let _ = cp
            .home
            .command(&mesh_bin())
            .args(["agent-purge", "--data-dir"])
            .arg(cp.home.path().join("home-agent"))
            .args(["--net-prefix", HOME_NET.0, "--subnet-pool", HOME_NET.1])
            .status();

        for (what, seen) in [
            ("the stale client", &stale_seen),
            ("the rack's address", &current_seen),
            ("the old rack while moving", &moved.0),
            ("the new rack while moving", &moved.1),
        ] {
            assert!(
                seen.failures.is_empty(),
                "{what}: {} failed of {}: {:?}\n{}",
                seen.failures.len(),
                seen.ok + seen.failures.len() as u64,
                seen.failures,
                cp.log()
            );
            assert!(seen.ok > 0, "{what}: no request answered");
        }
        eprintln!(
            "rack upgrade under load: done in {upgraded_in:?} (10s drain grace); requests: {} to the old address, {} to the rack's address, 0 failed",
            stale_seen.ok, current_seen.ok
        );
    });
}
