//! The agent's loop with the in-memory runtime.

use std::sync::Arc;
use std::time::Duration;

use mesh_runtime::hostnet::{HostNet, HostNetKind};
use mesh_runtime::{ExitStatus, FakeRuntime, Ipv4Net, Runtime};
use serde_json::{Value, json};

use super::*;

fn pool() -> Ipv4Net {
    Ipv4Net::new(std::net::Ipv4Addr::new(10, 250, 0, 0), 16).unwrap()
}

#[tokio::test]
async fn the_agent_runs_what_is_asked_restarts_crashes_and_survives_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let mut p = Platform::start(tmp.path().join("cp"), free_addr()).await;
    p.app("shop").await;
    p.post(
        "/v1/environments/shop/stacks/app/services",
        json!({"name": "web", "command": "httpd", "instances": 2}),
    )
    .await;
    p.post(
        "/v1/environments/shop/stacks/app/services",
        json!({"name": "worker", "command": "sleep 1000"}),
    )
    .await;
    let fake = Arc::new(FakeRuntime::new());
    // Something on the host (a leftover bridge, a VPN) already has the pool's first /24.
    fake.set_host_networks(vec![HostNet {
        network: std::net::Ipv4Addr::new(10, 250, 0, 1),
        prefix: 24,
        dev: "ncx9".into(),
        kind: HostNetKind::Address,
    }]);
    let runtime: Arc<dyn Runtime> = fake.clone();
    let agent = RunningAgent::start(&p, tmp.path().join("agent"), runtime.clone(), pool());
    // Without --egress, environments get no way out.

    let instances = p
        .wait_for(
            "/v1/environments/shop/instances",
            "three instances reported",
            Duration::from_secs(20),
            |v| v.as_array().unwrap().len() == 3,
        )
        .await;
    assert!(
        instances
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["server"] == "box-1")
    );
    // The worker counts as healthy once it has run for a moment; web services need their port.
    p.wait_for(
        "/v1/environments/shop/stacks/app/services/worker",
        "worker healthy",
        Duration::from_secs(20),
        |v| v["status"]["healthy"] == 1,
    )
    .await;
    assert!(
        fake.calls().iter().any(|c| c == "ensure_network shop"),
        "{:?}",
        fake.calls()
    );
    assert_eq!(
        fake.calls().first().map(String::as_str),
        Some("sweep"),
        "leftovers go before anything is created"
    );
    let listed = runtime.list().await.unwrap();
    assert!(
        listed
            .iter()
            .all(|i| i.address.octets()[..3] == [10, 250, 1]),
        "the /24 the host has is skipped: {listed:?}"
    );
    let servers = p.get("/v1/racks/local/servers").await;
    assert_eq!(servers[0]["name"], "box-1");

    // A crash is reported within a second, then restarted after its backoff.
    let worker_id = of_service(&instances, "worker")[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let crashed_at = tokio::time::Instant::now();
    fake.exit(
        &worker_id,
        ExitStatus {
            code: Some(3),
            signal: None,
            oom_killed: false,
        },
    );
    let v = p
        .wait_for(
            "/v1/environments/shop/instances",
            "crash reported",
            Duration::from_secs(5),
            |v| {
                of_service(v, "worker")
                    .iter()
                    .any(|i| i["exit_code"] == 3 && i["restarts"] == 1)
            },
        )
        .await;
    assert!(
        crashed_at.elapsed() < Duration::from_secs(4),
        "a crash reaches the control plane on the next ticks (benches/instances measures how fast)"
    );
    let worker = of_service(&v, "worker")[0];
    assert!(
        worker["message"]
            .as_str()
            .unwrap()
            .contains("exited with code 3"),
        "{worker}"
    );
    p.wait_for(
        "/v1/environments/shop/instances",
        "restarted",
        Duration::from_secs(10),
        |v| {
            of_service(v, "worker").iter().any(|i| {
                i["restarts"] == 1 && i["state"] != "backing_off" && i["state"] != "crashed"
            })
        },
    )
    .await;

    // Scale, and a config change (a new generation) replaces instances.
    p.post(
        "/v1/environments/shop/stacks/app/services/web/scale",
        json!({"instances": 1}),
    )
    .await;
    p.wait_for(
        "/v1/environments/shop/instances",
        "scaled to one web",
        Duration::from_secs(10),
        |v| of_service(v, "web").len() == 1,
    )
    .await;

    // The agent goes away: instances keep running, and a new agent adopts them instead of
    // starting new ones, even while the control plane is down too.
    agent.stop().await;
    p.stop().await;
    let before: Vec<String> = runtime
        .list()
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.status.is_running())
        .map(|i| i.id)
        .collect();
    let creates_before = fake
        .calls()
        .iter()
        .filter(|c| c.starts_with("create"))
        .count();
    let again = RunningAgent::start(&p, tmp.path().join("agent"), runtime.clone(), pool());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after: Vec<String> = runtime
        .list()
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.status.is_running())
        .map(|i| i.id)
        .collect();
    assert_eq!(
        before, after,
        "the cached desired state keeps the same instances running"
    );
    assert_eq!(
        fake.calls()
            .iter()
            .filter(|c| c.starts_with("create"))
            .count(),
        creates_before,
        "nothing was recreated"
    );

    // The control plane comes back on its address: the agent reconnects and reports.
    let p2 = Platform::start(p.dir.clone(), p.listen).await;
    p2.wait_for(
        "/v1/environments/shop/instances",
        "reported again",
        Duration::from_secs(20),
        |v| v.as_array().unwrap().len() == 2,
    )
    .await;

    // Deleting the environment removes its instances.
    p2.call(reqwest::Method::DELETE, "/v1/environments/shop", None)
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !runtime.list().await.unwrap().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "instances of a deleted environment are removed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    again.stop().await;
    let _: Value = Value::Null;
}

#[tokio::test]
async fn egress_is_asked_of_the_runtime_only_when_configured() {
    let tmp = tempfile::tempdir().unwrap();
    let p = Platform::start(tmp.path().join("cp"), free_addr()).await;
    p.app("shop").await;
    p.post(
        "/v1/environments/shop/stacks/app/services",
        json!({"name": "worker", "command": "sleep 1000"}),
    )
    .await;
    let fake = Arc::new(FakeRuntime::new());
    let agent = RunningAgent::start_with(&p, tmp.path().join("agent"), fake.clone(), pool(), |o| {
        o.egress = true
    });
    p.wait_for(
        "/v1/environments/shop/instances",
        "an instance",
        Duration::from_secs(20),
        |v| !v.as_array().unwrap().is_empty(),
    )
    .await;
    assert!(
        fake.calls()
            .iter()
            .any(|c| c == "ensure_network shop egress"),
        "{:?}",
        fake.calls()
    );
    agent.stop().await;
}
