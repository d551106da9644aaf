//! Tokens, roles, request ids and metrics.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::*;

#[tokio::test]
async fn healthz_needs_no_token_and_everything_else_does() {
    let s = TestServer::start().await;
    let r = s
        .http
        .get(format!("{}/healthz", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "ok\n");

    let r = s
        .http
        .get(format!("{}/v1/environments", s.url))
        .send()
        .await
        .unwrap();
    err(
        r,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "missing bearer token",
    )
    .await;
    let r = s
        .http
        .get(format!("{}/v1/environments", s.url))
        .bearer_auth("mesh_wrong")
        .send()
        .await
        .unwrap();
    err(r, StatusCode::UNAUTHORIZED, "unauthenticated", "not valid").await;
    let r = s
        .http
        .get(format!("{}/v1/environments", s.url))
        .basic_auth("admin", Some(&s.token))
        .send()
        .await
        .unwrap();
    err(
        r,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "missing bearer token",
    )
    .await;
    let r = s
        .http
        .get(format!("{}/metrics", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = s
        .http
        .get(format!("{}/v1/nothing-here", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "unknown routes reveal nothing without a token"
    );

    let me: Value = s.get_ok("/v1/whoami").await;
    assert_eq!(me["role"], "admin");
    assert_eq!(me["token"], "admin");
}

#[tokio::test]
async fn an_agent_join_token_only_reaches_the_agent_gateway() {
    let s = TestServer::start().await;
    let join = std::fs::read_to_string(s.dir.join("local-join-token")).unwrap();
    let r = s
        .http
        .get(format!("{}/v1/environments", s.url))
        .bearer_auth(join.trim())
        .send()
        .await
        .unwrap();
    err(r, StatusCode::FORBIDDEN, "permission_denied", "join token").await;
    let tokens: Vec<Value> = s.get_ok("/v1/tokens").await;
    let agent = tokens
        .iter()
        .find(|t| t["name"] == "rack-local-join")
        .expect("the local rack has a join token");
    assert_eq!(agent["role"], "agent");
    assert_eq!(agent["rack"], "local");
}

#[tokio::test]
async fn tokens_are_shown_once_stored_hashed_and_revoked_at_once() {
    let s = TestServer::start().await;
    let created: Value = ok(
        s.post("/v1/tokens", json!({"name": "ci", "role": "admin"}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    let secret = created["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("mesh_"));
    let listed: Vec<Value> = s.get_ok("/v1/tokens").await;
    assert!(listed.iter().all(|t| t.get("secret").is_none()));
    assert!(
        !contains(&database_bytes(&s.dir), &secret),
        "token stored in plain text"
    );
    assert!(
        !contains(&database_bytes(&s.dir), &s.token),
        "admin token stored in plain text"
    );

    let as_ci = |path: &str| {
        s.http
            .get(format!("{}{path}", s.url))
            .bearer_auth(&secret)
            .send()
    };
    assert_eq!(
        as_ci("/v1/environments").await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        s.delete("/v1/tokens/ci").await.status(),
        StatusCode::NO_CONTENT
    );
    err(
        as_ci("/v1/environments").await.unwrap(),
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "not valid",
    )
    .await;

    err(
        s.delete("/v1/tokens/admin").await,
        StatusCode::CONFLICT,
        "failed_precondition",
        "last admin token",
    )
    .await;
    err(
        s.post("/v1/tokens", json!({"name": "admin", "role": "admin"}))
            .await,
        StatusCode::CONFLICT,
        "already_exists",
        "admin",
    )
    .await;
    err(
        s.delete("/v1/tokens/nope").await,
        StatusCode::NOT_FOUND,
        "not_found",
        "nope",
    )
    .await;
}

#[tokio::test]
async fn request_ids_are_made_or_passed_through() {
    let s = TestServer::start().await;
    let a = s.get("/v1/environments").await;
    let b = s.get("/v1/environments").await;
    let id = |r: &reqwest::Response| r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_ne!(id(&a), id(&b));
    let c = s
        .req(reqwest::Method::GET, "/v1/environments")
        .header("x-request-id", "trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(id(&c), "trace-42");
    let e = s.get("/v1/environments/nope").await;
    assert!(
        e.headers().contains_key("x-request-id"),
        "errors carry a request id too"
    );
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let s = TestServer::start().await;
    s.get("/v1/environments").await;
    s.get("/v1/environments/nope").await;
    let text = s.get("/metrics").await.text().await.unwrap();
    assert!(
        text.contains(
            r#"mesh_api_requests_total{method="GET",route="/v1/environments",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"route="/v1/environments/{env}",status="404""#),
        "{text}"
    );
    assert!(
        text.contains("mesh_api_request_duration_seconds_bucket"),
        "{text}"
    );
}
