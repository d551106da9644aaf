//! `mesh up` itself: a restart keeps everything, a crash loses no acknowledged write, and two
//! platforms side by side do not see each other.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::harness::Platform;

#[test]
fn a_restart_keeps_everything() {
    let mut p = Platform::start();
    let out = std::fs::read_to_string(p.home.path().join("up-1.out")).unwrap();
    assert_eq!(
        out.trim(),
        format!(
            "widemesh is up: api {}, data {}",
            p.url,
            p.home.data_dir().display()
        )
    );
    let s = ["--env", "shop", "--stack", "app"];
    let with = |args: &[&'static str]| -> Vec<&'static str> {
        s.iter().copied().chain(args.iter().copied()).collect()
    };
    p.mesh(&["env", "create", "shop"]).ok();
    p.mesh(&with(&["create", "stack", "app", "--dockerfile"]))
        .ok();
    p.mesh(&with(&["config", "set", "SECRET=s3cret value"]))
        .ok();
    p.mesh(&with(&[
        "svc", "create", "-n", "web", "--port", "8080", "--", "app", "server",
    ]))
    .ok();
    p.mesh(&with(&[
        "svc",
        "create",
        "-n",
        "cron",
        "--schedule",
        "@every 2m",
        "--",
        "tick",
    ]))
    .ok();
    p.mesh(&with(&["endpoint", "create", "shop.example.com"]))
        .ok();
    p.mesh(&with(&[
        "endpoint",
        "publish",
        "shop.example.com",
        "--service",
        "web",
    ]))
    .ok();
    p.mesh(&["provider", "add", "own", "--kind", "local"]).ok();
    p.mesh(&[
        "rack",
        "create",
        "r2",
        "--provider",
        "own",
        "--region",
        "eu",
    ])
    .ok();
    let before: Vec<serde_json::Value> = [
        with(&["env", "show", "--json"]),
        with(&["config", "list", "--json"]),
        with(&["svc", "list", "--json"]),
        with(&["endpoint", "ls", "--json"]),
        vec!["rack", "list", "--json"],
        vec!["provider", "list", "--json"],
    ]
    .iter()
    .map(|args| p.mesh(args).ok().json())
    .collect();

    p.stop();
    let out = p.mesh(&["env", "ls"]).fails();
    assert!(out.error().contains("is `mesh up` running?"), "{out:#?}");
    p.restart();

    let after: Vec<serde_json::Value> = [
        with(&["env", "show", "--json"]),
        with(&["config", "list", "--json"]),
        with(&["svc", "list", "--json"]),
        with(&["endpoint", "ls", "--json"]),
        vec!["rack", "list", "--json"],
        vec!["provider", "list", "--json"],
    ]
    .iter()
    .map(|args| p.mesh(args).ok().json())
    .collect();
    assert_eq!(before, after);
    let vars = &after[1];
    assert_eq!(vars[0]["value"], "s3cret value");
    // The same admin token works after the restart, and writes still work.
    assert!(p.mesh(&["whoami"]).ok().stdout.starts_with("admin "));
    p.mesh(&["env", "create", "shop2"]).ok();
}

#[test]
fn acknowledged_writes_survive_a_crash() {
    const TOTAL: usize = 40;
    const KILL_AFTER: usize = 12;
    let mut p = Platform::start();
    let acked = Arc::new(AtomicUsize::new(0));
    let pid = p.pid();
    let killer = {
        let acked = acked.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            while acked.load(Ordering::SeqCst) < KILL_AFTER && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
            // Somewhere inside the next request, most likely.
            std::thread::sleep(Duration::from_millis(7));
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        })
    };
    let mut created = Vec::new();
    let mut refused = 0;
    for i in 0..TOTAL {
        let name = format!("e{i}");
        let out = p.mesh(&["env", "create", &name]);
        if out.code == 0 {
            created.push(name);
            acked.fetch_add(1, Ordering::SeqCst);
        } else {
            assert_eq!(out.code, 1, "{out:#?}");
            refused += 1;
        }
    }
    killer.join().unwrap();
    p.crash();
    assert!(created.len() >= KILL_AFTER, "{created:?}");
    assert!(refused > 0, "the kill came after the loop");

    p.restart();
    let json = p.mesh(&["env", "ls", "--json"]).ok().json();
    let names: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    for name in &created {
        assert!(
            names.contains(&name.as_str()),
            "{name} was acknowledged but is gone: {names:?}"
        );
    }
    // The platform works after the crash.
    p.mesh(&["env", "create", "after-crash"]).ok();
}

#[test]
fn two_platforms_side_by_side_do_not_interfere() {
    let a = Platform::start();
    let b = Platform::start();
    assert_ne!(a.url, b.url);
    a.mesh(&["env", "create", "alpha"]).ok();
    b.mesh(&["env", "create", "beta"]).ok();
    let names = |p: &Platform| -> Vec<String> {
        p.mesh(&["env", "ls", "--json"])
            .ok()
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&a), ["alpha"]);
    assert_eq!(names(&b), ["beta"]);
    // Each home holds its own token: b's token means nothing to a.
    let b_token = std::fs::read_to_string(b.home.data_dir().join("admin-token")).unwrap();
    let mut cmd = assert_cmd::Command::from_std(a.home.command(&crate::harness::mesh_bin()));
    let output = cmd
        .env("MESH_TOKEN", b_token.trim())
        .args(["env", "ls"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("bearer token is not valid"));

    // A third one on a's address is refused, with what to do about it.
    let addr = a.url.trim_start_matches("http://");
    let third = crate::harness::Home::new();
    let out = crate::harness::run_in(&third, &["up", "--listen", addr], None);
    assert_eq!(out.code, 1, "{out:#?}");
    // `up` logs at info level before the error: the error and hint are the last lines.
    let lines: Vec<&str> = out.stderr.lines().collect();
    let n = lines.len();
    assert!(n >= 2, "{out:#?}");
    assert!(
        lines[n - 2].starts_with(&format!(
            "error: cannot start widemesh: cannot listen on {addr}"
        )),
        "{out:#?}"
    );
    assert!(
        lines[n - 1].starts_with("hint: ") && lines[n - 1].contains("--listen"),
        "{out:#?}"
    );
    assert!(!third.config_file().exists());
}
