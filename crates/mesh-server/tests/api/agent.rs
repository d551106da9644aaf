//! The agent gateway: registration, the desired-state stream, status reports and logs.

use std::time::Duration;

use futures_util::StreamExt;
use mesh_types::Name;
use mesh_types::agent::{LogBatch, LogLine, LogStream, RegisterServer, StatusReport};
use mesh_types::api::{Instance, InstanceState};
use mesh_types::desired::WatchEvent;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::*;

pub(crate) fn n(s: &str) -> Name {
    Name::parse(s).unwrap()
}

pub(crate) fn join_token(s: &TestServer) -> String {
    std::fs::read_to_string(s.dir.join("local-join-token"))
        .unwrap()
        .trim()
        .to_string()
}

pub(crate) async fn as_agent(s: &TestServer, path: &str, body: Value) -> reqwest::Response {
    s.http
        .post(format!("{}{path}", s.url))
        .bearer_auth(join_token(s))
        .json(&body)
        .send()
        .await
        .unwrap()
}

pub(crate) async fn world(s: &TestServer) {
    ok::<Value>(
        s.post("/v1/environments", json!({"name": "shop"})).await,
        StatusCode::CREATED,
    )
    .await;
    ok::<Value>(
        s.post("/v1/environments/shop/stacks", json!({"name": "app"}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    ok::<Value>(
        s.patch(
            "/v1/environments/shop/stacks/app",
            json!({"image": "busybox"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let svc = json!({"name": "web", "command": "httpd -f -p $PORT", "instances": 2});
    ok::<Value>(
        s.post("/v1/environments/shop/stacks/app/services", svc)
            .await,
        StatusCode::CREATED,
    )
    .await;
    let publish = json!({"stack": "app", "service": "web"});
    ok::<Value>(
        s.post(
            "/v1/environments/shop/endpoints/shop.localhost/publish",
            publish,
        )
        .await,
        StatusCode::OK,
    )
    .await;
}

pub(crate) fn register_body() -> Value {
    serde_json::to_value(RegisterServer {
        name: n("box-1"),
        address: "127.0.0.1".into(),
        cpus: 2.0,
        memory_mb: 24_000,
        version: Some("0.1.0".into()),
        router: None,
    })
    .unwrap()
}

/// Reads watch lines until a snapshot arrives (bounded).
async fn next_snapshot(
    lines: &mut (impl futures_util::Stream<Item = String> + Unpin),
) -> (String, mesh_types::desired::DesiredState) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let line = tokio::time::timeout_at(deadline, lines.next())
            .await
            .expect("a snapshot within 20 s")
            .expect("stream open");
        match serde_json::from_str::<WatchEvent>(&line).unwrap() {
            WatchEvent::Snapshot { digest, state } => return (digest, state),
            WatchEvent::KeepAlive | WatchEvent::Task { .. } => continue,
        }
    }
}

#[tokio::test]
async fn only_join_tokens_use_the_gateway() {
    let s = TestServer::start().await;
    let r = s.post("/v1/agent/register", register_body()).await;
    err(r, StatusCode::FORBIDDEN, "permission_denied", "join token").await;
    let server: Value = ok(
        as_agent(&s, "/v1/agent/register", register_body()).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(server["rack"], "local");
    let servers: Vec<Value> = s.get_ok("/v1/racks/local/servers").await;
    assert_eq!(servers.len(), 1);
    assert_eq!(servers[0]["state"], "ready");
    let report = json!({"server": "not-registered", "instances": []});
    err(
        as_agent(&s, "/v1/agent/status", report).await,
        StatusCode::CONFLICT,
        "failed_precondition",
        "register it first",
    )
    .await;
}

#[tokio::test]
async fn the_watch_stream_sends_the_resolved_state_and_every_change() {
    let s = TestServer::start().await;
    world(&s).await;
    ok::<Value>(
        s.patch(
            "/v1/environments/shop/stacks/app/config",
            json!({"set": {"GREETING": "hi"}}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let resp = s
        .http
        .get(format!("{}/v1/agent/watch", s.url))
        .bearer_auth(join_token(&s))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut buf = String::new();
    let mut lines = Box::pin(resp.bytes_stream().flat_map(move |chunk| {
        buf.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        let mut out = Vec::new();
        while let Some(i) = buf.find('\n') {
            out.push(buf[..i].to_string());
            buf.drain(..=i);
        }
        futures_util::stream::iter(out)
    }));
    let (d1, state) = next_snapshot(&mut lines).await;
    assert_eq!(state.rack.as_str(), "local");
    let env = &state.environments[0];
    assert_eq!(env.environment.as_str(), "shop");
    let web = &env.stacks[0].services[0];
    assert_eq!(
        env.stacks[0].image,
        Some(mesh_types::desired::ImageRef::Builtin {
            name: "busybox".into()
        })
    );
    assert_eq!(web.instances, 2);
    assert_eq!(web.env["GREETING"], "hi");
    assert_eq!(web.env["PORT"], "5000");
    assert_eq!(web.limits.memory_mb, 1024);
    assert_eq!(env.routes[0].host, "shop.localhost");

    let changed_at = tokio::time::Instant::now();
    ok::<Value>(
        s.patch(
            "/v1/environments/shop/stacks/app/config",
            json!({"set": {"GREETING": "hello"}}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let (d2, state) = next_snapshot(&mut lines).await;
    assert_ne!(d1, d2);
    assert_eq!(
        state.environments[0].stacks[0].services[0].env["GREETING"],
        "hello"
    );
    assert!(
        changed_at.elapsed() < Duration::from_secs(4),
        "a change reaches the agent at once, not at the next poll"
    );
}

pub(crate) fn instance(id: &str, state: InstanceState) -> Instance {
    Instance {
        id: id.into(),
        environment: n("shop"),
        stack: n("app"),
        service: n("web"),
        deployment: None,
        server: None,
        rack: None,
        state,
        address: Some("10.231.0.2".into()),
        restarts: 0,
        exit_code: None,
        message: None,
        started_at: Some(1),
        updated_at: 1,
    }
}

#[tokio::test]
async fn status_reports_show_in_services_and_instances() {
    let s = TestServer::start().await;
    world(&s).await;
    ok::<Value>(
        as_agent(&s, "/v1/agent/register", register_body()).await,
        StatusCode::OK,
    )
    .await;
    let report = StatusReport {
        server: n("box-1"),
        instances: vec![
            instance("web-a", InstanceState::Healthy),
            instance("web-b", InstanceState::Starting),
        ],
    };
    ok::<Value>(
        as_agent(
            &s,
            "/v1/agent/status",
            serde_json::to_value(&report).unwrap(),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let web: Value = s
        .get_ok("/v1/environments/shop/stacks/app/services/web")
        .await;
    assert_eq!(
        web["status"],
        json!({"desired": 2, "running": 1, "healthy": 1})
    );
    let list: Vec<Value> = s.get_ok("/v1/environments/shop/instances").await;
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["server"], "box-1");
    let report = StatusReport {
        server: n("box-1"),
        instances: vec![instance("web-a", InstanceState::Crashed)],
    };
    ok::<Value>(
        as_agent(
            &s,
            "/v1/agent/status",
            serde_json::to_value(&report).unwrap(),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let list: Vec<Value> = s.get_ok("/v1/environments/shop/instances").await;
    assert_eq!(list.len(), 1, "a report replaces the last one");
    assert_eq!(list[0]["state"], "crashed");
}

fn log(offset: u64, service: &str, text: &str) -> LogLine {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    LogLine {
        at: now,
        environment: n("shop"),
        stack: n("app"),
        service: n(service),
        instance: format!("{service}-1"),
        stream: LogStream::Stdout,
        text: text.into(),
        offset,
        rack: None,
    }
}

async fn ship(s: &TestServer, lines: Vec<LogLine>) -> Value {
    ok(
        as_agent(
            s,
            "/v1/agent/logs",
            serde_json::to_value(LogBatch { lines }).unwrap(),
        )
        .await,
        StatusCode::OK,
    )
    .await
}

fn parse_lines(text: &str) -> Vec<LogLine> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn logs_are_shipped_deduplicated_filtered_and_followed() {
    let s = TestServer::start().await;
    world(&s).await;
    let svc = json!({"name": "worker", "command": "sleep 100"});
    ok::<Value>(
        s.post("/v1/environments/shop/stacks/app/services", svc)
            .await,
        StatusCode::CREATED,
    )
    .await;
    // An agent cannot say its lines come from another rack. (Lines made in shipping order: a
    // line stored after one printed later may be left out of a `since` read.)
    let mut lines = vec![
        log(6, "web", "GET / 200"),
        log(12, "web", "GET /x 404"),
        log(9, "worker", "job done"),
    ];
    lines[2].rack = Some(n("east"));
    let ack = ship(&s, lines).await;
    assert_eq!(ack, json!({"accepted": 3, "duplicates": 0}));
    let ack = ship(
        &s,
        vec![
            log(6, "web", "GET / 200"),
            log(12, "web", "GET /x 404"),
            log(20, "web", "GET /y 200"),
        ],
    )
    .await;
    assert_eq!(
        ack,
        json!({"accepted": 1, "duplicates": 2}),
        "a resend after an agent restart adds nothing twice"
    );

    let all = parse_lines(
        &s.get("/v1/environments/shop/logs")
            .await
            .text()
            .await
            .unwrap(),
    );
    assert_eq!(all.len(), 4);
    assert!(
        all.iter()
            .all(|l| l.rack.as_ref().map(|r| r.as_str()) == Some("local")),
        "every line names the rack of the token that shipped it: {all:?}"
    );
    let web = parse_lines(
        &s.get("/v1/environments/shop/logs?since=15m&service=web")
            .await
            .text()
            .await
            .unwrap(),
    );
    assert_eq!(
        web.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(),
        ["GET / 200", "GET /x 404", "GET /y 200"]
    );
    err(
        s.get("/v1/environments/shop/logs?since=2h").await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "one hour",
    )
    .await;
    err(
        s.get("/v1/environments/shop/logs?since=soon").await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "since",
    )
    .await;

    let resp = s
        .get("/v1/environments/shop/logs?follow=true&service=worker")
        .await;
    let mut body = resp.bytes_stream();
    let first = tokio::time::timeout(Duration::from_secs(10), body.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&first).contains("job done"));
    ship(
        &s,
        vec![
            log(30, "web", "not for this follower"),
            log(40, "worker", "next job"),
        ],
    )
    .await;
    let next = tokio::time::timeout(Duration::from_secs(10), body.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&next);
    assert!(
        text.contains("next job") && !text.contains("not for this follower"),
        "{text}"
    );
}

/// The next NDJSON line of a streamed body, within 10 s.
async fn next_json(
    body: &mut (impl futures_util::Stream<Item = reqwest::Result<axum::body::Bytes>> + Unpin),
    buf: &mut String,
) -> Value {
    loop {
        if let Some(i) = buf.find('\n') {
            let line: String = buf.drain(..=i).collect();
            return serde_json::from_str(line.trim()).unwrap();
        }
        let chunk = tokio::time::timeout(Duration::from_secs(10), body.next())
            .await
            .expect("a line within 10 s")
            .expect("the stream goes on")
            .unwrap();
        buf.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn logs_survive_a_restart_and_every_control_plane_serves_them() {
    let mut s = TestServer::start().await;
    world(&s).await;
    ship(&s, vec![log(6, "web", "before"), log(12, "web", "restart")]).await;
    s.stop().await;

    // The same data directory, a new process: the lines and the offsets kept are still there.
    let s = TestServer::start_in(s.dir.clone(), None, true).await;
    let all: Vec<Value> = s
        .get("/v1/environments/shop/logs")
        .await
        .text()
        .await
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        all.iter()
            .map(|l| l["text"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["before", "restart"]
    );
    let ack = ship(&s, vec![log(6, "web", "before"), log(12, "web", "restart")]).await;
    assert_eq!(
        ack,
        json!({"accepted": 0, "duplicates": 2}),
        "an agent resending after the restart doubles nothing"
    );

    // A follower resuming after the first line gets the rest, once.
    let first = all[0]["id"].as_i64().unwrap();
    let resp = s
        .get(&format!(
            "/v1/environments/shop/logs?follow=true&after={first}"
        ))
        .await;
    let mut body = resp.bytes_stream();
    let mut buf = String::new();
    assert_eq!(next_json(&mut body, &mut buf).await["text"], "restart");

    // A second control plane on the same database: what it stores reaches this follower.
    let other = TestServer::start_in(s.dir.clone(), None, true).await;
    ship(&other, vec![log(20, "web", "via the other one")]).await;
    let line = next_json(&mut body, &mut buf).await;
    assert_eq!(line["text"], "via the other one");
    assert!(line["id"].as_i64().unwrap() > all[1]["id"].as_i64().unwrap());

    err(
        s.get("/v1/environments/shop/logs?after=-1").await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "after",
    )
    .await;
}

#[tokio::test]
async fn large_log_batches_are_taken_and_counted() {
    let s = TestServer::start().await;
    world(&s).await;
    // 10,000 lines of 200 bytes: about 3.5 MB of JSON, more than other requests may carry.
    let text = "x".repeat(200);
    let lines: Vec<LogLine> = (1..=10_000).map(|i| log(i * 201, "web", &text)).collect();
    let ack = ship(&s, lines).await;
    assert_eq!(ack, json!({"accepted": 10_000, "duplicates": 0}));
    let metrics = s.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("mesh_api_log_lines_total 10000"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_join_token_acts_only_for_its_rack() {
    let s = TestServer::start().await;
    join_token_scope(&s).await;
}

#[tokio::test]
async fn a_join_token_acts_only_for_its_rack_on_postgres() {
    let (url, db) = super::postgres::fresh_database().await;
    let tmp = tempfile::TempDir::new().unwrap();
    let mut s = TestServer::start_in(tmp.path().join("data"), Some(url), true).await;
    join_token_scope(&s).await;
    s.stop().await;
    super::postgres::drop_database(&db).await;
}

async fn join_token_scope(s: &TestServer) {
    world(s).await;
    ok::<Value>(
        as_agent(s, "/v1/agent/register", register_body()).await,
        StatusCode::OK,
    )
    .await;

    // Status: only instances of environments placed on the rack.
    let mut stranger = instance("bank-1", InstanceState::Healthy);
    stranger.environment = n("bank");
    let report = StatusReport {
        server: n("box-1"),
        instances: vec![instance("web-a", InstanceState::Healthy), stranger],
    };
    err(
        as_agent(
            s,
            "/v1/agent/status",
            serde_json::to_value(&report).unwrap(),
        )
        .await,
        StatusCode::FORBIDDEN,
        "permission_denied",
        "environment \"bank\", which is not placed on rack \"local\"",
    )
    .await;
    let list: Vec<Value> = s.get_ok("/v1/environments/shop/instances").await;
    assert!(
        list.is_empty(),
        "a refused report changes nothing: {list:?}"
    );

    // Logs: only the rack's environments, offsets 1 to 2^50.
    let mut foreign = log(5, "web", "not mine");
    foreign.environment = n("bank");
    err(
        as_agent(
            s,
            "/v1/agent/logs",
            serde_json::to_value(LogBatch {
                lines: vec![foreign],
            })
            .unwrap(),
        )
        .await,
        StatusCode::FORBIDDEN,
        "permission_denied",
        "not placed on rack \"local\"",
    )
    .await;
    for offset in [0, (1u64 << 50) + 1, u64::MAX - 1] {
        err(
            as_agent(
                s,
                "/v1/agent/logs",
                serde_json::to_value(LogBatch {
                    lines: vec![log(offset, "web", "huge")],
                })
                .unwrap(),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            "offsets are 1 to",
        )
        .await;
    }
    // The refused huge offset did not hide later real lines.
    let ack = ship(s, vec![log(10, "web", "real")]).await;
    assert_eq!(ack["accepted"], 1, "{ack}");
    let out = s
        .get("/v1/environments/shop/logs")
        .await
        .text()
        .await
        .unwrap();
    assert!(out.contains("real") && !out.contains("huge"), "{out}");

    // Blobs: never a source archive, nor anything the rack's images do not name.
    let tree = tempfile::TempDir::new().unwrap();
    std::fs::write(tree.path().join("secret.txt"), "the source\n").unwrap();
    let packed = mesh_build::pack(tree.path()).unwrap();
    let digest = format!("sha256:{}", packed.digest);
    let r = s
        .req(reqwest::Method::PUT, &format!("/v1/sources/{digest}"))
        .body(packed.bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let get_blob = |d: String| {
        s.http
            .get(format!("{}/v1/agent/blobs/{d}", s.url))
            .bearer_auth(join_token(s))
            .send()
    };
    err(
        get_blob(digest.clone()).await.unwrap(),
        StatusCode::FORBIDDEN,
        "permission_denied",
        "not a layer of any image rack \"local\" runs",
    )
    .await;
    err(
        get_blob(format!("sha256:{}", "0".repeat(64)))
            .await
            .unwrap(),
        StatusCode::FORBIDDEN,
        "permission_denied",
        "join token fetches only its own rack's image layers",
    )
    .await;
    // An admin token is not an agent's.
    err(
        s.post("/v1/agent/logs", json!({"lines": []})).await,
        StatusCode::FORBIDDEN,
        "permission_denied",
        "only a rack's join token",
    )
    .await;
}

/// A second rack `east` with a registered server; its join token.
async fn east_with_server(s: &TestServer) -> String {
    let created: Value = ok(
        s.post(
            "/v1/racks",
            json!({"name": "east", "provider": "local", "region": "east", "domain": "east.test"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let token = created["join_token"].as_str().unwrap().to_string();
    let body = serde_json::to_value(RegisterServer {
        name: n("box-east"),
        address: "127.0.0.2".into(),
        cpus: 1.0,
        memory_mb: 1024,
        version: None,
        router: Some("127.0.0.2:8080".into()),
    })
    .unwrap();
    let resp = s
        .http
        .post(format!("{}/v1/agent/register", s.url))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    token
}

#[tokio::test]
async fn a_rack_being_left_keeps_reporting_until_it_is_left() {
    let s = TestServer::start().await;
    world(&s).await;
    ok::<Value>(
        as_agent(&s, "/v1/agent/register", register_body()).await,
        StatusCode::OK,
    )
    .await;
    const ENV: &str = "/v1/environments/shop";

    // east exists but has no server yet: taking local (live) away is refused.
    ok::<Value>(
        s.post(
            "/v1/racks",
            json!({"name": "west", "provider": "local", "region": "west", "domain": "west.test"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    err(
        s.patch(ENV, json!({"racks": ["west"]})).await,
        StatusCode::CONFLICT,
        "failed_precondition",
        "nowhere to run",
    )
    .await;
    err(
        s.patch(ENV, json!({"racks": ["local"], "drain_grace_s": 86_401}))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "at most 86400s",
    )
    .await;
    let env: Value = s.get_ok(ENV).await;
    assert_eq!(env["racks"], json!(["local"]));
    assert_eq!(env["placement"][0]["rack"], "local");
    assert_eq!(env["placement"][0]["state"], "starting", "{env}");
    assert_eq!(
        env["placement"][0]["detail"], "app-web 0/2 healthy",
        "{env}"
    );

    // Moving to east: local is leaving and still serving.
    let east_token = east_with_server(&s).await;
    let moved: Value = ok(
        s.patch(ENV, json!({"racks": ["east"], "drain_grace_s": 60}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(moved["racks"], json!(["east"]));
    assert_eq!(moved["leaving"][0]["rack"], "local");
    assert_eq!(moved["leaving"][0]["drain_grace_ms"], 60_000);
    assert!(moved["leaving"][0]["forwarding_since"].is_null());
    let env: Value = s.get_ok(ENV).await;
    let states: Vec<(&str, &str)> = env["placement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["rack"].as_str().unwrap(), p["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("east", "starting"), ("local", "leaving")]);
    // Both aliases stay while local is being left.
    let domains: Vec<String> = s
        .get_ok::<Vec<Value>>("/v1/environments/shop/endpoints")
        .await
        .iter()
        .map(|e| e["domain"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(domains, ["shop.east.test", "shop.localhost"]);

    // local's agent still reports the environment's instances and ships their output.
    let report_as = |token: String, server: &str, ids: [&str; 2]| {
        let report = StatusReport {
            server: n(server),
            instances: ids
                .iter()
                .map(|id| {
                    let mut i = instance(id, InstanceState::Healthy);
                    i.server = Some(n(server));
                    i
                })
                .collect(),
        };
        let req = s
            .http
            .post(format!("{}/v1/agent/status", s.url))
            .bearer_auth(token)
            .json(&report);
        async move { assert_eq!(req.send().await.unwrap().status(), StatusCode::OK) }
    };
    report_as(join_token(&s), "box-1", ["web-a", "web-b"]).await;
    let listed: Vec<Value> = s.get_ok("/v1/environments/shop/instances").await;
    assert_eq!(listed[0]["rack"], "local", "{listed:?}");
    let ack = ship(&s, vec![log(6, "web", "still here")]).await;
    assert_eq!(ack["accepted"], 1);

    // Both racks healthy (two web instances each): local, while leaving, counts as healthy, so
    // it alone may be put back (the move is cancelled) and east taken out.
    report_as(east_token, "box-east", ["web-c", "web-d"]).await;
    let env: Value = s.get_ok(ENV).await;
    assert_eq!(env["placement"][0]["state"], "healthy", "{env}");
    let back: Value = ok(
        s.patch(ENV, json!({"racks": ["local"], "drain_grace_s": 0}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(back["racks"], json!(["local"]), "{back}");
    assert_eq!(back["leaving"][0]["rack"], "east", "{back}");
}
