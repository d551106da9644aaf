//! A rack's server, as a user sees it: `mesh up`'s agent is the local rack's server, shown by
//! `mesh rack servers` with its version; a second agent joining the rack is refused; a server
//! that stops sending heartbeats becomes lost and `mesh run` says so at once.
//! The first test runs an agent: privileged (CI runs it as root).

use std::time::{Duration, Instant};

use mesh_client::Client;
use mesh_types::Name;
use mesh_types::agent::RegisterServer;
use serde_json::Value;

use crate::harness::*;
use crate::web::{Purge, assert_root};

const PREFIX: &str = "sv";
const POOL: &str = "10.212.0.0/16";

fn join_client(p: &Platform) -> Client {
    let token = std::fs::read_to_string(p.home.data_dir().join("local-join-token")).unwrap();
    Client::new(&p.url, token.trim()).unwrap()
}

fn register(p: &Platform, name: &str) -> Result<mesh_types::api::Server, mesh_client::Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(join_client(p).register_server(&RegisterServer {
        name: Name::parse(name).unwrap(),
        address: "127.0.0.1".into(),
        cpus: 1.0,
        memory_mb: 512,
        version: Some("0.0.1".into()),
        router: None,
    }))
}

/// `mesh rack servers local --json`, until `check` holds (bounded).
fn servers_until(p: &Platform, what: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = p.mesh(&["rack", "servers", "local", "--json"]).ok();
        let list = out.json().as_array().unwrap().clone();
        if check(&list) {
            return list;
        }
        assert!(Instant::now() < deadline, "{what}: {list:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn mesh_up_is_the_local_racks_one_server() {
    assert_root();
    let home = Home::new();
    let _purge = Purge::with_home(home.path().to_path_buf(), home.data_dir(), PREFIX);
    let p = Platform::start_with(
        home,
        &[
            "--net-prefix",
            PREFIX,
            "--subnet-pool",
            POOL,
            "--http-listen",
            "127.0.0.1:0",
            "--https-listen",
            "127.0.0.1:0",
            "--server-lost-after",
            "30",
        ],
    );
    let list = servers_until(&p, "mesh up's agent registers", |l| {
        l.len() == 1 && l[0]["state"] == "ready"
    });
    let server = list[0]["name"].as_str().unwrap().to_string();
    assert_eq!(list[0]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(list[0]["instances"], 0);
    assert!(list[0]["cpus"].as_f64().unwrap() >= 1.0);

    let out = p.mesh(&["rack", "servers", "local"]).ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("LAST SEEN"),
        "{out:#?}"
    );
    let cols: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(cols[0], server, "{out:#?}");
    assert_eq!(cols[1], "ready", "{out:#?}");
    assert!(cols[2].ends_with('s') && cols[3] == "ago", "{out:#?}");
    assert_eq!(cols[4], env!("CARGO_PKG_VERSION"), "{out:#?}");

    // A second agent joining the local rack is refused, saying why.
    let e = register(&p, "sv-second").unwrap_err();
    assert_eq!(e.code(), Some(mesh_types::ErrorCode::FailedPrecondition));
    let message = e.to_string();
    assert!(
        message.contains(&format!("rack local already has server {server} (ready")),
        "{message}"
    );
    assert!(message.contains("Kubernetes runtime"), "{message}");
    let list = servers_until(&p, "the rack keeps its one server", |l| l.len() == 1);
    assert_eq!(list[0]["name"], server.as_str());
}

#[test]
fn a_silent_server_is_lost_and_one_off_work_says_so() {
    let p = Platform::start_with(Home::new(), &["--no-agent", "--server-lost-after", "1"]);
    p.mesh(&["env", "create", "shop"]).ok();
    p.mesh(&["create", "stack", "app", "--env", "shop"]).ok();
    p.mesh(&[
        "stack",
        "set-image",
        "busybox",
        "--env",
        "shop",
        "--stack",
        "app",
    ])
    .ok();
    register(&p, "box-1").unwrap();
    servers_until(&p, "box-1 goes lost", |l| {
        l.len() == 1 && l[0]["state"] == "lost"
    });
    let out = p.mesh(&["rack", "servers", "local"]).ok();
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("box-1 ") && l.contains(" lost ") && l.contains("0.0.1")),
        "{out:#?}"
    );
    let started = Instant::now();
    let run = p
        .mesh_for(
            &["run", "--env", "shop", "--stack", "app", "--", "echo hi"],
            Duration::from_secs(60),
        )
        .fails();
    assert!(
        run.stderr
            .contains("server box-1 of rack local is lost: last seen"),
        "{run:#?}"
    );
    assert!(started.elapsed() < Duration::from_secs(30), "{run:#?}");

    // Another server takes the lost one's place.
    register(&p, "box-2").unwrap();
    let list = servers_until(&p, "box-2 replaces box-1", |l| {
        l.len() == 1 && l[0]["name"] == "box-2"
    });
    assert_eq!(list[0]["state"], "ready");
}
