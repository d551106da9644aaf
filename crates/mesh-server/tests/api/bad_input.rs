//! Bad input gets a clear 4xx with the error body, and changes nothing.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::*;

#[tokio::test]
async fn invalid_names_are_refused_with_the_reason() {
    let s = TestServer::start().await;
    err(
        s.post("/v1/environments", json!({"name": "Shop"})).await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "use lowercase",
    )
    .await;
    err(
        s.post("/v1/environments", json!({"name": "a".repeat(64)}))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "at most 63",
    )
    .await;
    err(
        s.post("/v1/environments", json!({"name": ""})).await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "empty",
    )
    .await;
    err(
        s.post("/v1/environments", json!({})).await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "name",
    )
    .await;
    let envs: Vec<Value> = s.get_ok("/v1/environments").await;
    assert!(envs.is_empty(), "nothing was created");
}

#[tokio::test]
async fn malformed_bodies_are_refused() {
    let s = TestServer::start().await;
    let r = s
        .req(Method::POST, "/v1/environments")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    err(
        r,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "not valid JSON",
    )
    .await;
    let r = s
        .req(Method::POST, "/v1/environments")
        .body(r#"{"name":"x"}"#)
        .send()
        .await
        .unwrap();
    err(
        r,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "Content-Type",
    )
    .await;
    let big = "x".repeat(2 * 1024 * 1024);
    let r = s.post("/v1/environments", json!({"name": big})).await;
    err(
        r,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "larger than",
    )
    .await;
    err(
        s.get("/v1/nothing").await,
        StatusCode::NOT_FOUND,
        "not_found",
        "no such API route",
    )
    .await;
    err(
        s.send(Method::PUT, "/v1/environments", json!({})).await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "not allowed",
    )
    .await;
    err(
        s.get("/v1/events?limit=many").await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "query string",
    )
    .await;
}

#[tokio::test]
async fn unknown_references_name_what_is_missing() {
    let s = TestServer::start().await;
    err(
        s.post("/v1/environments/nope/stacks", json!({"name": "app"}))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
        "environment \"nope\"",
    )
    .await;
    err(
        s.post(
            "/v1/environments",
            json!({"name": "shop", "racks": ["mars"]}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
        "mars",
    )
    .await;
    ok::<Value>(
        s.post("/v1/environments", json!({"name": "shop"})).await,
        StatusCode::CREATED,
    )
    .await;
    err(
        s.post(
            "/v1/environments/shop/stacks/nope/services",
            json!({"name": "web"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
        "stack \"nope\"",
    )
    .await;
    err(
        s.delete("/v1/environments/shop/stacks/nope").await,
        StatusCode::NOT_FOUND,
        "not_found",
        "nope",
    )
    .await;
}

#[tokio::test]
async fn services_are_checked() {
    let s = TestServer::start().await;
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
    let svc = "/v1/environments/shop/stacks/app/services";
    err(
        s.post(svc, json!({"name": "job", "schedule": "61 * * * *"}))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "out of range",
    )
    .await;
    err(
        s.post(svc, json!({"name": "job", "schedule": "@every"}))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "duration",
    )
    .await;
    err(
        s.post(svc, json!({"name": "web", "size": "huge"})).await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "size",
    )
    .await;
    err(
        s.post(svc, json!({"name": "web", "instances": 101})).await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "at most 100",
    )
    .await;
    err(
        s.post(svc, json!({"name": "web", "port": 0})).await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "port",
    )
    .await;
    err(
        s.post(svc, json!({"name": "web", "port": 70000})).await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "port",
    )
    .await;
    err(
        s.post(svc, json!({"name": "web", "command": "  "})).await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "empty",
    )
    .await;
    err(
        s.post(svc, json!({"name": "web", "health_path": "healthz"}))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "/healthz",
    )
    .await;
    err(
        s.post(svc, json!({"name": "a".repeat(60)})).await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "shorter service name",
    )
    .await;
    ok::<Value>(
        s.post(svc, json!({"name": "web"})).await,
        StatusCode::CREATED,
    )
    .await;
    err(
        s.patch(&format!("{svc}/web"), json!({})).await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "nothing to change",
    )
    .await;
    err(
        s.patch(&format!("{svc}/web"), json!({"schedule": "bad"}))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "schedule",
    )
    .await;
    err(
        s.post(&format!("{svc}/web/scale"), json!({})).await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "nothing to change",
    )
    .await;
    let web: Value = s.get_ok(&format!("{svc}/web")).await;
    assert_eq!(web["instances"], 1, "refused changes change nothing");
}

#[tokio::test]
async fn config_values_are_checked() {
    let s = TestServer::start().await;
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
    let cfg = "/v1/environments/shop/stacks/app/config";
    err(
        s.patch(cfg, json!({"set": {"A": ""}})).await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "config unset A",
    )
    .await;
    err(
        s.patch(cfg, json!({"set": {"A": "x".repeat(40_000)}}))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "at most",
    )
    .await;
    err(
        s.patch(cfg, json!({"set": {"1A": "x"}})).await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "digit",
    )
    .await;
    err(
        s.patch(cfg, json!({"set": {"PORT": "80"}})).await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "--port",
    )
    .await;
    err(
        s.patch(cfg, json!({})).await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "nothing to change",
    )
    .await;
    err(
        s.patch(cfg, json!({"set": {"A": "1"}, "unset": ["A"]}))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "both",
    )
    .await;
    err(
        s.patch(
            cfg,
            json!({"set": {"A": "1"}, "region": "local", "rack": "local"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "not both",
    )
    .await;
    let vars: Vec<Value> = s.get_ok(cfg).await;
    assert!(vars.is_empty());
}

#[tokio::test]
async fn service_hostnames_are_unique_in_an_environment() {
    let s = TestServer::start().await;
    ok::<Value>(
        s.post("/v1/environments", json!({"name": "shop"})).await,
        StatusCode::CREATED,
    )
    .await;
    for stack in ["a-b", "a"] {
        let r = s
            .post("/v1/environments/shop/stacks", json!({"name": stack}))
            .await;
        ok::<Value>(r, StatusCode::CREATED).await;
    }
    let first = s
        .post(
            "/v1/environments/shop/stacks/a-b/services",
            json!({"name": "web"}),
        )
        .await;
    ok::<Value>(first, StatusCode::CREATED).await;
    let clash = s
        .post(
            "/v1/environments/shop/stacks/a/services",
            json!({"name": "b-web"}),
        )
        .await;
    err(
        clash,
        StatusCode::CONFLICT,
        "already_exists",
        "already reachable as a-b-web",
    )
    .await;
}
