//! A rack's one server: a second agent is refused, heartbeats keep the server ready, a silent
//! one becomes lost (its instances unknown, one-off work refused with when it was last seen),
//! and a new server replaces a lost one.

use std::time::Duration;

use mesh_types::agent::{RegisterServer, StatusReport};
use mesh_types::api::InstanceState;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::agent::{as_agent, instance, n, register_body, world};
use super::*;

fn second_server() -> Value {
    serde_json::to_value(RegisterServer {
        name: n("box-2"),
        address: "127.0.0.2".into(),
        cpus: 4.0,
        memory_mb: 8_000,
        version: Some("0.1.0".into()),
        router: None,
    })
    .unwrap()
}

async fn report(s: &TestServer, server: &str, ids: &[&str]) {
    let report = StatusReport {
        server: n(server),
        instances: ids
            .iter()
            .map(|id| mesh_types::api::Instance {
                server: Some(n(server)),
                ..instance(id, InstanceState::Healthy)
            })
            .collect(),
    };
    ok::<Value>(
        as_agent(
            s,
            "/v1/agent/status",
            serde_json::to_value(&report).unwrap(),
        )
        .await,
        StatusCode::OK,
    )
    .await;
}

/// Polls the rack's servers until `server` is in `state` (bounded).
async fn wait_state(s: &TestServer, server: &str, state: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let servers: Vec<Value> = s.get_ok("/v1/racks/local/servers").await;
        if let Some(found) = servers.iter().find(|v| v["name"] == server)
            && found["state"] == state
        {
            return found.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{server} not {state}: {servers:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_rack_has_one_server_and_restarts_keep_it() {
    let s = TestServer::start().await;
    world(&s).await;
    let first: Value = ok(
        as_agent(&s, "/v1/agent/register", register_body()).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(first["version"], "0.1.0");
    report(&s, "box-1", &["web-a", "web-b"]).await;

    let message = err(
        as_agent(&s, "/v1/agent/register", second_server()).await,
        StatusCode::CONFLICT,
        "failed_precondition",
        "rack local already has server box-1 (ready, last seen",
    )
    .await;
    assert!(
        message.contains("several servers in one rack is the Kubernetes runtime's job"),
        "{message}"
    );
    // The refused agent cannot report either.
    let stray = json!({"server": "box-2", "instances": []});
    err(
        as_agent(&s, "/v1/agent/status", stray).await,
        StatusCode::CONFLICT,
        "failed_precondition",
        "server box-2 is not registered in rack local",
    )
    .await;

    // The first server's agent restarting registers again, keeping when it joined.
    let again: Value = ok(
        as_agent(&s, "/v1/agent/register", register_body()).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(again["created_at"], first["created_at"]);
    let servers: Vec<Value> = s.get_ok("/v1/racks/local/servers").await;
    assert_eq!(servers.len(), 1);
    assert_eq!(servers[0]["name"], "box-1");
    assert_eq!(servers[0]["state"], "ready");
    assert_eq!(servers[0]["version"], "0.1.0");
    assert_eq!(servers[0]["instances"], 2);
    assert_eq!(servers[0]["cpus"], 2.0);
    assert_eq!(servers[0]["memory_mb"], 24_000);
}

#[tokio::test]
async fn a_silent_server_is_lost_until_it_reports_and_then_replaced() {
    let s = TestServer::start_with_lost_after(Duration::from_secs(1)).await;
    world(&s).await;
    ok::<Value>(
        as_agent(&s, "/v1/agent/register", register_body()).await,
        StatusCode::OK,
    )
    .await;
    report(&s, "box-1", &["web-a"]).await;
    let seen: Vec<Value> = s.get_ok("/v1/racks/local/servers").await;
    let beat = seen[0]["last_heartbeat"].as_i64().unwrap();

    let lost = wait_state(&s, "box-1", "lost").await;
    assert_eq!(lost["last_heartbeat"].as_i64().unwrap(), beat);
    let list: Vec<Value> = s.get_ok("/v1/environments/shop/instances").await;
    assert_eq!(list[0]["state"], "unknown", "{list:?}");
    // The sweeper marks it in the store within a third of the threshold: services count it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let web: Value = s
            .get_ok("/v1/environments/shop/stacks/app/services/web")
            .await;
        if web["status"]["healthy"] == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{web}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // One-off work is refused at once, saying which server and when it was last seen.
    let run = json!({"command": "echo hi"});
    err(
        s.post("/v1/environments/shop/stacks/app/runs", run.clone())
            .await,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "server box-1 of rack local is lost: last seen",
    )
    .await;

    // A status report is a heartbeat: ready again, its instances as reported.
    report(&s, "box-1", &["web-a"]).await;
    let back: Vec<Value> = s.get_ok("/v1/racks/local/servers").await;
    assert_eq!(back[0]["state"], "ready");
    assert!(back[0]["last_heartbeat"].as_i64().unwrap() > beat);
    let list: Vec<Value> = s.get_ok("/v1/environments/shop/instances").await;
    assert_eq!(list[0]["state"], "healthy");
    assert_eq!(list[0]["rack"], "local", "{list:?}");
    // `mesh run --rack` names one of the environment's racks, or is refused before it runs.
    err(
        s.post(
            "/v1/environments/shop/stacks/app/runs",
            json!({"command": "echo hi", "rack": "west"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "rack west is not one of the environment's racks (local)",
    )
    .await;

    // Lost again, another server takes its place; the lost one and its instances are gone.
    wait_state(&s, "box-1", "lost").await;
    let replacing: Value = ok(
        as_agent(&s, "/v1/agent/register", second_server()).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(replacing["name"], "box-2");
    let servers: Vec<Value> = s.get_ok("/v1/racks/local/servers").await;
    let names: Vec<&str> = servers
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["box-2"]);
    let list: Vec<Value> = s.get_ok("/v1/environments/shop/instances").await;
    assert!(list.is_empty(), "{list:?}");
    // And the old agent, back, is refused: the rack has box-2 now.
    err(
        as_agent(&s, "/v1/agent/register", register_body()).await,
        StatusCode::CONFLICT,
        "failed_precondition",
        "rack local already has server box-2",
    )
    .await;
}

#[tokio::test]
async fn listing_servers_is_for_admins() {
    let s = TestServer::start().await;
    let r = s
        .http
        .get(format!("{}/v1/racks/local/servers", s.url))
        .bearer_auth(super::agent::join_token(&s))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    err(
        s.get("/v1/racks/nope/servers").await,
        StatusCode::NOT_FOUND,
        "not_found",
        "rack \"nope\"",
    )
    .await;
}
