//! Instances on `mesh up`, driven by the CLI as a new user would: services of a busybox stack
//! run as containers with their limits, find each other by name, cannot reach another
//! environment or the host, restart after a crash, run on a schedule, show output in
//! `mesh logs`, run one-off commands, and keep running through a restart of `mesh up`.
//! Privileged: CI runs it as root.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;
use crate::web::{Purge, assert_root, wait_no_netns};

const PREFIX: &str = "e3i";
const POOL: &str = "10.236.0.0/16";

fn wait_until(
    p: &Platform,
    what: &str,
    within: Duration,
    args: &[&str],
    check: impl Fn(&Out) -> bool,
) -> Out {
    let deadline = Instant::now() + within;
    loop {
        let out = p.mesh(args);
        if check(&out) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {within:?}; last: {}\n{}",
            out.stdout,
            out.stderr
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn instances(p: &Platform, env: &str) -> Vec<Value> {
    p.mesh(&["instances", "--env", env, "--json"])
        .ok()
        .json()
        .as_array()
        .unwrap()
        .clone()
}

fn of(list: &[Value], service: &str) -> Value {
    list.iter()
        .find(|i| i["service"] == service)
        .cloned()
        .unwrap_or_else(|| panic!("no {service} instance in {list:?}"))
}

fn healthy(p: &Platform, env: &str, service: &str) -> bool {
    let out = p.mesh(&["services", "list", "--env", env, "--json"]);
    out.code == 0
        && out
            .json()
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == service && s["status"]["healthy"] == 1)
}

#[test]
fn services_run_as_isolated_supervised_instances() {
    assert_root();
    let home = Home::new();
    let _purge = Purge::with_home(home.path().to_path_buf(), home.data_dir(), PREFIX);
    let mut p = Platform::start_with(home, &["--net-prefix", PREFIX, "--subnet-pool", POOL]);
    let api_port = p.url.rsplit(':').next().unwrap().to_string();

    for (env, cmds) in [
        (
            "shop",
            vec![
                vec![
                    "svc",
                    "create",
                    "-n",
                    "web",
                    "--size",
                    "nano",
                    "--",
                    "httpd -f -p $PORT",
                ],
                vec![
                    "svc",
                    "create",
                    "-n",
                    "worker",
                    "--size",
                    "nano",
                    "--",
                    // An escape sequence (red, then reset) in its output, too.
                    "echo \"greeting=$GREETING\"; printf 'esc=\\033[31mred\\033[0m\\n'; exec sleep 1000",
                ],
                vec![
                    "svc",
                    "create",
                    "-n",
                    "flaky",
                    "--size",
                    "nano",
                    "--",
                    "echo boom; exit 3",
                ],
                vec![
                    "svc",
                    "create",
                    "-n",
                    "tick",
                    "--size",
                    "nano",
                    "--schedule",
                    "@every 2s",
                    "--",
                    "echo tick-ran",
                ],
            ],
        ),
        (
            "blog",
            vec![vec![
                "svc",
                "create",
                "-n",
                "worker",
                "--size",
                "nano",
                "--",
                "exec sleep 1000",
            ]],
        ),
    ] {
        p.mesh(&["env", "create", env]).ok();
        p.mesh(&["create", "stack", "app", "--env", env]).ok();
        p.mesh(&[
            "stack",
            "set-image",
            "busybox",
            "--env",
            env,
            "--stack",
            "app",
        ])
        .ok();
        p.mesh(&[
            "stack",
            "config",
            "set",
            "--env",
            env,
            "--stack",
            "app",
            "GREETING=hello",
        ])
        .ok();
        for c in cmds {
            let mut args = c.clone();
            args.extend(["--env", env, "--stack", "app"]);
            // Flags after `--` would be part of the command: put them before it.
            let split = args.iter().position(|a| *a == "--").unwrap();
            let tail: Vec<&str> = args.drain(split..split + 2).collect();
            args.extend(tail);
            p.mesh(&args).ok();
        }
    }
    p.mesh(&[
        "endpoint",
        "publish",
        "shop.localhost",
        "--env",
        "shop",
        "--stack",
        "app",
        "--service",
        "web",
    ])
    .ok();
    for (env, svc) in [("shop", "web"), ("shop", "worker"), ("blog", "worker")] {
        wait_until(
            &p,
            &format!("{env}/{svc} healthy"),
            Duration::from_secs(60),
            &["services", "list", "--env", env, "--json"],
            |o| o.code == 0 && healthy(&p, env, svc),
        );
    }
    let shop = instances(&p, "shop");
    let (web, worker) = (of(&shop, "web"), of(&shop, "worker"));
    let web_addr = web["address"].as_str().unwrap().to_string();
    let worker_id = worker["id"].as_str().unwrap().to_string();
    let blog_worker = of(&instances(&p, "blog"), "worker")["id"]
        .as_str()
        .unwrap()
        .to_string();

    // The size's limits are the container's: nano is 256 MB.
    let mem = p
        .mesh(&[
            "exec",
            "--env",
            "shop",
            &worker_id,
            "--",
            "cat",
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        ])
        .ok();
    assert_eq!(mem.stdout.trim(), (256u64 * 1024 * 1024).to_string());
    let who = p
        .mesh(&["exec", "--env", "shop", &worker_id, "--", "id", "-u"])
        .ok();
    assert_eq!(who.stdout.trim(), "65534", "instances do not run as root");
    let events = p.mesh(&["events", "--json", "--limit", "20"]).ok().json();
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "instance.exec"
                && e["actor"] == "admin"
                && e["target"] == format!("shop/{worker_id}").as_str()
                && e["detail"].as_str().unwrap().contains("\"id\"")),
        "the audit log names who exec'd what: {events:#}"
    );

    // Under Docker's seccomp profile: no user namespaces (the service's process and exec alike).
    let filtered = "grep '^Seccomp:' /proc/self/status /proc/1/status; \
                    unshare -U true && echo userns-made || echo userns-denied";
    let sandbox = p
        .mesh(&[
            "exec", "--env", "shop", &worker_id, "--", "sh", "-c", filtered,
        ])
        .ok();
    for line in [
        "/proc/self/status:Seccomp:\t2",
        "/proc/1/status:Seccomp:\t2",
        "userns-denied",
    ] {
        assert!(
            sandbox.stdout.lines().any(|l| l == line),
            "{line:?} missing: {}",
            sandbox.stdout
        );
    }

    // Peers find each other by <stack>-<service>; other environments and the host are out of reach.
    let looked = p
        .mesh(&[
            "exec", "--env", "shop", &worker_id, "--", "nslookup", "app-web",
        ])
        .ok();
    assert!(looked.stdout.contains(&web_addr), "{}", looked.stdout);
    let http = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 app-web 5000";
    let got = p
        .mesh(&["exec", "--env", "shop", &worker_id, "--", "sh", "-c", http])
        .ok();
    assert!(got.stdout.starts_with("HTTP/1."), "{}", got.stdout);
    let across = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {web_addr} 5000");
    let blocked = p.mesh(&[
        "exec",
        "--env",
        "blog",
        &blog_worker,
        "--",
        "sh",
        "-c",
        &across,
    ]);
    assert!(
        !blocked.stdout.contains("HTTP/1."),
        "another environment reached shop's web: {}",
        blocked.stdout
    );
    let no_name = p.mesh(&[
        "exec",
        "--env",
        "blog",
        &blog_worker,
        "--",
        "nslookup",
        "app-web",
    ]);
    assert_ne!(no_name.code, 0, "blog cannot resolve shop's services");
    let gateway = format!("{}.1", web_addr.rsplit_once('.').unwrap().0);
    let api = format!("printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {gateway} {api_port}");
    let host = p.mesh(&["exec", "--env", "shop", &worker_id, "--", "sh", "-c", &api]);
    assert!(
        !host.stdout.contains("HTTP/1."),
        "an instance reached the control plane's port: {}",
        host.stdout
    );

    // Output, config, crashes and cron runs show in `mesh logs`.
    let logs = |query: &[&str]| {
        let mut args = vec!["logs", "--env", "shop", "--since", "10m"];
        args.extend(query);
        p.mesh(&args)
    };
    wait_until(
        &p,
        "worker output",
        Duration::from_secs(20),
        &[
            "logs",
            "--env",
            "shop",
            "--since",
            "10m",
            "--service",
            "worker",
        ],
        |o| o.stdout.contains("greeting=hello"),
    );
    wait_until(
        &p,
        "crash noted",
        Duration::from_secs(30),
        &[
            "logs",
            "--env",
            "shop",
            "--since",
            "10m",
            "--service",
            "flaky",
        ],
        |o| o.stdout.contains("boom") && o.stdout.contains("exited with code 3"),
    );
    wait_until(
        &p,
        "flaky restarted",
        Duration::from_secs(30),
        &["instances", "--env", "shop", "--json"],
        |o| {
            o.code == 0
                && o.json()
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|i| i["service"] == "flaky" && i["restarts"].as_u64().unwrap_or(0) >= 2)
        },
    );
    wait_until(
        &p,
        "cron ran",
        Duration::from_secs(30),
        &[
            "logs",
            "--env",
            "shop",
            "--since",
            "10m",
            "--service",
            "tick",
        ],
        |o| o.stdout.contains("tick-ran"),
    );
    assert!(logs(&["--service", "web"]).stdout.contains("started at"));
    // An app's escape sequences print escaped, or as sent with --raw.
    let escaped = logs(&["--service", "worker"]).ok();
    assert!(
        escaped.stdout.contains("esc=\\x1b[31mred\\x1b[0m"),
        "{}",
        escaped.stdout
    );
    assert!(!escaped.stdout.contains('\x1b'), "{}", escaped.stdout);
    let raw = logs(&["--service", "worker", "--raw"]).ok();
    assert!(
        raw.stdout.contains("esc=\x1b[31mred\x1b[0m"),
        "{}",
        raw.stdout
    );
    let json = logs(&["--service", "worker", "--json"]).ok();
    assert!(
        json.stdout.contains(r"esc=\u001b[31mred\u001b[0m"),
        "{}",
        json.stdout
    );

    // A one-off command with the stack's config, and its exit code.
    let one = p.mesh(&[
        "run",
        "--env",
        "shop",
        "--stack",
        "app",
        "--",
        "echo \"once $GREETING\"; grep '^Seccomp:' /proc/self/status; \
         unshare -U true || echo userns-denied; echo run-stderr >&2; exit 4",
    ]);
    assert_eq!(one.code, 4, "{}", one.stderr);
    assert!(one.stdout.contains("once hello"), "{}", one.stdout);
    // stderr has its own offsets: its lines are not taken for resends of stdout's.
    assert!(one.stderr.contains("run-stderr"), "{}", one.stderr);
    for line in ["Seccomp:\t2", "userns-denied"] {
        assert!(
            one.stdout.lines().any(|l| l == line),
            "{line:?}: {}",
            one.stdout
        );
    }
    // A window-title sequence and a C1 CSI from `mesh run`, escaped unless --raw.
    let title = "printf 'out=\\033]0;owned\\007\\n'; printf 'csi=\\302\\233;2J\\n'";
    let run = |raw: bool| {
        let mut args = vec!["run", "--env", "shop", "--stack", "app"];
        if raw {
            args.push("--raw");
        }
        args.extend(["--", title]);
        p.mesh(&args).ok()
    };
    let escaped = run(false);
    assert!(
        escaped.stdout.contains("out=\\x1b]0;owned\\x07"),
        "{}",
        escaped.stdout
    );
    assert!(
        escaped.stdout.contains("csi=\\u{9b};2J"),
        "{}",
        escaped.stdout
    );
    let raw = run(true);
    assert!(
        raw.stdout.contains("out=\x1b]0;owned\x07"),
        "{}",
        raw.stdout
    );

    // `mesh up` restarts (its agent with it): instances keep running and are adopted.
    p.stop();
    p.restart();
    let after = instances(&p, "shop");
    let web_after = of(&after, "web");
    assert_eq!(
        web_after["id"], web["id"],
        "the same instance, not a new one"
    );
    assert_eq!(web_after["restarts"], 0);
    // The restarted agent's watch stream may take a moment to connect (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(30);
    let got = loop {
        let got = p.mesh(&["exec", "--env", "shop", &worker_id, "--", "sh", "-c", http]);
        if got.code == 0
            || !got.stderr.contains("is connected to this control plane")
            || Instant::now() > deadline
        {
            break got.ok();
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(
        got.stdout.starts_with("HTTP/1."),
        "still serving: {}",
        got.stdout
    );

    // Deleting the environments removes their instances and networks.
    for env in ["shop", "blog"] {
        p.mesh(&["env", "delete", env, "--yes"]).ok();
    }
    wait_no_netns(PREFIX, Duration::from_secs(60));
    p.stop();
}
