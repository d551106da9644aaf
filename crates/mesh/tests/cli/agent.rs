//! What agents report reaches the CLI: log lines shipped through the agent gateway with the
//! local rack's join token come out of `mesh logs`, instances out of `mesh instances`.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use mesh_client::Client;
use mesh_types::Name;
use mesh_types::agent::{LogBatch, LogLine, LogStream, RegisterServer, StatusReport};
use mesh_types::api::{Instance, InstanceState};

use crate::harness::{Platform, mesh_bin};

fn name(s: &str) -> Name {
    Name::parse(s).unwrap()
}

fn line(service: &str, instance: &str, stream: LogStream, text: &str, offset: u64) -> LogLine {
    LogLine {
        at: now_ms(),
        environment: name("shop"),
        stack: name("app"),
        service: name(service),
        instance: instance.into(),
        stream,
        text: text.into(),
        offset,
        rack: None,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn agent(p: &Platform) -> Client {
    let token = std::fs::read_to_string(p.home.data_dir().join("local-join-token")).unwrap();
    Client::new(&p.url, token.trim()).unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn shipped_logs_come_out_of_mesh_logs() {
    let p = Platform::start();
    p.mesh(&["env", "create", "shop"]).ok();
    p.mesh(&["create", "stack", "app", "--env", "shop"]).ok();
    let agent = agent(&p);
    let rt = rt();
    let batch = LogBatch {
        lines: vec![
            line("web", "web-1", LogStream::Stdout, "hello from web", 15),
            line("web", "web-1", LogStream::Stderr, "oops\n", 20),
            line("worker", "worker-1", LogStream::Stdout, "working", 8),
        ],
    };
    let ack = rt.block_on(agent.ship_logs(&batch)).unwrap();
    assert_eq!(ack.accepted, 3);
    // The join token is the agent's alone: the admin API refuses it.
    let e = rt.block_on(agent.list_environments()).unwrap_err();
    assert_eq!(e.code(), Some(mesh_types::ErrorCode::PermissionDenied));

    let out = p.mesh(&["logs", "--env", "shop"]).ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{out:#?}");
    assert!(
        lines[0].ends_with(" app-web[web-1] hello from web"),
        "{out:#?}"
    );
    assert!(
        lines[1].ends_with(" app-web[web-1] (stderr) oops"),
        "{out:#?}"
    );
    assert!(
        lines[2].ends_with(" app-worker[worker-1] working"),
        "{out:#?}"
    );

    let out = p
        .mesh(&[
            "logs",
            "--env",
            "shop",
            "--stack",
            "app",
            "--service",
            "web",
        ])
        .ok();
    assert_eq!(out.stdout.lines().count(), 2, "{out:#?}");
    let out = p
        .mesh(&["logs", "--env", "shop", "--instance", "worker-1", "--json"])
        .ok();
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(v["text"], "working");

    // Follow: lines shipped later arrive while the command runs.
    let mut child = p
        .home
        .command(&mesh_bin())
        .args(["logs", "--env", "shop", "--service", "worker", "-f"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines() {
            let Ok(l) = l else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(first.ends_with("working"), "{first}");
    let later = LogBatch {
        lines: vec![line("worker", "worker-1", LogStream::Stdout, "later", 30)],
    };
    rt.block_on(agent.ship_logs(&later)).unwrap();
    let next = rx.recv_timeout(Duration::from_secs(20));
    let _ = child.kill();
    let _ = child.wait();
    assert!(next.unwrap().ends_with(" app-worker[worker-1] later"));
}

#[test]
fn logs_shipped_before_a_restart_come_out_after_it() {
    let mut p = Platform::start();
    p.mesh(&["env", "create", "shop"]).ok();
    p.mesh(&["create", "stack", "app", "--env", "shop"]).ok();
    let rt = rt();
    let batch = LogBatch {
        lines: vec![
            line("web", "web-1", LogStream::Stdout, "before the restart", 19),
            line("web", "web-1", LogStream::Stderr, "an error before it", 19),
        ],
    };
    let ack = rt.block_on(agent(&p).ship_logs(&batch)).unwrap();
    assert_eq!(ack.accepted, 2);

    p.stop();
    p.restart();
    let out = p.mesh(&["logs", "--env", "shop"]).ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{out:#?}");
    assert!(
        lines[0].ends_with(" app-web[web-1] before the restart"),
        "{out:#?}"
    );
    assert!(
        lines[1].ends_with(" app-web[web-1] (stderr) an error before it"),
        "{out:#?}"
    );
    // The agent resends what it is not sure was kept: the restarted control plane still knows.
    let ack = rt.block_on(agent(&p).ship_logs(&batch)).unwrap();
    assert_eq!((ack.accepted, ack.duplicates), (0, 2));
    let out = p.mesh(&["logs", "--env", "shop", "--json"]).ok();
    assert_eq!(out.stdout.lines().count(), 2, "{out:#?}");
}

#[test]
fn reported_instances_come_out_of_mesh_instances() {
    let p = Platform::start();
    p.mesh(&["env", "create", "shop"]).ok();
    p.mesh(&["create", "stack", "app", "--env", "shop"]).ok();
    p.mesh(&[
        "svc", "create", "-n", "web", "--env", "shop", "--stack", "app",
    ])
    .ok();
    let agent = agent(&p);
    let rt = rt();
    let server = rt
        .block_on(agent.register_server(&RegisterServer {
            name: name("srv1"),
            address: "127.0.0.1".into(),
            cpus: 2.0,
            memory_mb: 4096,
            version: Some("9.9.9".into()),
            router: None,
        }))
        .unwrap();
    assert_eq!(server.rack.as_str(), "local");
    let out = p.mesh(&["rack", "servers", "local"]).ok();
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("srv1 ") && l.contains("4096 MB")),
        "{out:#?}"
    );

    let instance = Instance {
        id: "web-abc123".into(),
        environment: name("shop"),
        stack: name("app"),
        service: name("web"),
        deployment: None,
        server: None,
        rack: None,
        state: InstanceState::Healthy,
        address: Some("10.231.0.2".into()),
        restarts: 1,
        exit_code: None,
        message: None,
        started_at: Some(now_ms()),
        updated_at: now_ms(),
    };
    rt.block_on(agent.report_status(&StatusReport {
        server: name("srv1"),
        instances: vec![instance],
    }))
    .unwrap();

    let out = p.mesh(&["instances", "--env", "shop"]).ok();
    let row = out
        .stdout
        .lines()
        .find(|l| l.starts_with("web-abc123 "))
        .unwrap_or_else(|| panic!("{out:#?}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        &cols[..8],
        [
            "web-abc123",
            "app-web",
            "healthy",
            "-",
            "local",
            "srv1",
            "10.231.0.2",
            "1"
        ]
    );
    let json = p
        .mesh(&["instances", "--env", "shop", "--json"])
        .ok()
        .json();
    assert_eq!(json[0]["server"], "srv1");
    assert_eq!(json[0]["rack"], "local");
    let json = p
        .mesh(&["instances", "--env", "shop", "--stack", "other", "--json"])
        .ok()
        .json();
    assert_eq!(json, serde_json::json!([]));
}
