//! Scoped access: every route tried with every role, token creation rules, expiry, the audit
//! log naming the token, and the agent gateway acting only for its rack. On SQLite and on
//! PostgreSQL.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::*;

async fn create_env(s: &TestServer, name: &str) {
    ok::<Value>(
        s.post("/v1/environments", json!({ "name": name })).await,
        StatusCode::CREATED,
    )
    .await;
}

async fn token(s: &TestServer, body: Value) -> String {
    let created: Value = ok(s.post("/v1/tokens", body).await, StatusCode::CREATED).await;
    created["secret"].as_str().unwrap().to_string()
}

async fn call(s: &TestServer, bearer: &str, method: Method, path: &str) -> reqwest::Response {
    let mut req = s
        .http
        .request(method.clone(), format!("{}{path}", s.url))
        .bearer_auth(bearer);
    if method != Method::GET && method != Method::DELETE {
        req = req.json(&json!({}));
    }
    req.send().await.unwrap()
}

/// The route's path with `{env}` as `env` and every other parameter naming nothing, so an
/// allowed call changes nothing (it answers 400 or 404).
fn concrete(template: &str, env: &str) -> String {
    template
        .split('/')
        .map(|seg| match seg {
            "{env}" => env.to_string(),
            s if s.starts_with('{') => "ghost".to_string(),
            s => s.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum As {
    Admin,
    DevOfShop,
    ViewerOfShop,
    Agent,
}

/// Whether `who` may call a route of `policy` in environment `env`.
fn allowed(who: As, policy: &str, env: &str) -> bool {
    let shop = env == "shop";
    match (who, policy) {
        (As::Agent, p) => p == "agent" || p == "any_token",
        (_, "agent") => false,
        (As::Admin, _) => true,
        (_, "any_token" | "env_list") => true,
        (_, "admin") => false,
        (As::DevOfShop, "upload") => true,
        (As::DevOfShop, _) => shop,
        (As::ViewerOfShop, "env_read") => shop,
        (As::ViewerOfShop, _) => false,
    }
}

async fn every_role_against_every_route(s: &TestServer) {
    create_env(s, "shop").await;
    create_env(s, "bank").await;
    let dev = token(
        s,
        json!({"name": "dev", "role": "developer", "environments": ["shop"]}),
    )
    .await;
    let viewer = token(
        s,
        json!({"name": "view", "role": "viewer", "environments": ["shop"]}),
    )
    .await;
    let join = std::fs::read_to_string(s.dir.join("local-join-token"))
        .unwrap()
        .trim()
        .to_string();
    let who = [
        (As::Admin, s.token.clone()),
        (As::DevOfShop, dev),
        (As::ViewerOfShop, viewer),
        (As::Agent, join),
    ];
    let mut failures = Vec::new();
    let mut tried = 0;
    for (method, template) in mesh_server::ROUTES.iter() {
        if template == "/healthz" {
            continue;
        }
        let policy = mesh_server::policy::of(method, template)
            .unwrap_or_else(|| panic!("{method} {template} has no policy"))
            .as_str();
        let envs: &[&str] = if template.contains("{env}") {
            &["shop", "bank"]
        } else {
            &["-"]
        };
        for env in envs {
            // Every other parameter names nothing, so an allowed change answers 400 or 404.
            let target = concrete(template, env);
            for (as_, bearer) in &who {
                let ok = allowed(*as_, policy, env);
                let path = if ok && *as_ == As::Admin && template.contains("{env}") {
                    // An admin reaches every environment: show it on one that does not exist,
                    // so its changes are refused with 404 and the data stays as it is.
                    concrete(template, "ghost")
                } else {
                    target.clone()
                };
                tried += 1;
                let r = call(s, bearer, method.clone(), &path).await;
                let status = r.status();
                drop(r);
                let bad = if ok {
                    status == StatusCode::FORBIDDEN || status == StatusCode::UNAUTHORIZED
                } else {
                    status != StatusCode::FORBIDDEN
                };
                if bad {
                    failures.push(format!(
                        "{as_:?} {method} {path} ({policy}): {status}, expected {}",
                        if ok { "not 401/403" } else { "403" }
                    ));
                }
            }
        }
    }
    assert!(tried > 200, "only {tried} calls");
    assert!(failures.is_empty(), "{failures:#?}");
    // Nothing the sweep did removed what exists.
    let envs: Vec<Value> = s.get_ok("/v1/environments").await;
    assert_eq!(envs.len(), 2, "{envs:?}");
}

#[tokio::test]
async fn every_role_against_every_route_on_sqlite() {
    let s = TestServer::start().await;
    every_role_against_every_route(&s).await;
}

#[tokio::test]
async fn every_role_against_every_route_on_postgres() {
    let (url, db) = super::postgres::fresh_database().await;
    let tmp = tempfile::TempDir::new().unwrap();
    let mut s = TestServer::start_in(tmp.path().join("data"), Some(url), true).await;
    every_role_against_every_route(&s).await;
    scoped_tokens(&s).await;
    s.stop().await;
    super::postgres::drop_database(&db).await;
}

async fn as_token(
    s: &TestServer,
    bearer: &str,
    method: Method,
    path: &str,
    body: Value,
) -> reqwest::Response {
    s.http
        .request(method, format!("{}{path}", s.url))
        .bearer_auth(bearer)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Token creation rules, what developers and viewers see and do, the audit log and expiry.
async fn scoped_tokens(s: &TestServer) {
    for (body, status, fragment) in [
        (
            json!({"name": "t1"}),
            StatusCode::BAD_REQUEST,
            "say which role",
        ),
        (
            json!({"name": "t1", "role": "developer"}),
            StatusCode::BAD_REQUEST,
            "at least one environment",
        ),
        (
            json!({"name": "t1", "role": "admin", "environments": ["shop"]}),
            StatusCode::BAD_REQUEST,
            "reaches every environment",
        ),
        (
            json!({"name": "t1", "role": "agent"}),
            StatusCode::BAD_REQUEST,
            "are made with their rack",
        ),
        (
            json!({"name": "t1", "role": "viewer", "environments": ["nope"]}),
            StatusCode::NOT_FOUND,
            "environment \"nope\"",
        ),
        (
            json!({"name": "t1", "role": "viewer", "environments": ["shop"], "expires_in_secs": 0}),
            StatusCode::BAD_REQUEST,
            "out of range",
        ),
        (
            json!({"name": "t1", "role": "root"}),
            StatusCode::BAD_REQUEST,
            "",
        ),
    ] {
        let r = s.post("/v1/tokens", body.clone()).await;
        assert_eq!(r.status(), status, "{body}");
        let answer: Value = r.json().await.unwrap();
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(fragment), "{body}: {answer}");
    }
    let dev = token(
        s,
        json!({"name": "dev2", "role": "developer", "environments": ["shop"], "expires_in_secs": 3600}),
    )
    .await;
    let viewer = token(
        s,
        json!({"name": "view2", "role": "viewer", "environments": ["shop"]}),
    )
    .await;
    let me: Value = ok(
        as_token(s, &dev, Method::GET, "/v1/whoami", Value::Null).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(me["role"], "developer");
    assert_eq!(me["environments"], json!(["shop"]));
    assert!(me["expires_at"].as_i64().unwrap() > 0);
    let listed: Vec<Value> = s.get_ok("/v1/tokens").await;
    let row = listed.iter().find(|t| t["name"] == "dev2").unwrap();
    assert_eq!(
        (&row["role"], &row["environments"]),
        (&json!("developer"), &json!(["shop"]))
    );

    // A developer lists only its environments, changes them, and mints nothing.
    let envs: Vec<Value> = ok(
        as_token(s, &dev, Method::GET, "/v1/environments", Value::Null).await,
        StatusCode::OK,
    )
    .await;
    let names: Vec<&str> = envs.iter().filter_map(|e| e["name"].as_str()).collect();
    assert_eq!(names, ["shop"]);
    err(
        as_token(
            s,
            &dev,
            Method::POST,
            "/v1/tokens",
            json!({"name": "mine", "role": "admin"}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "permission_denied",
        "needs an admin token",
    )
    .await;
    err(
        as_token(
            s,
            &dev,
            Method::GET,
            "/v1/environments/bank/stacks",
            Value::Null,
        )
        .await,
        StatusCode::FORBIDDEN,
        "permission_denied",
        "does not reach environment \"bank\"",
    )
    .await;
    ok::<Value>(
        as_token(
            s,
            &dev,
            Method::POST,
            "/v1/environments/shop/stacks",
            json!({"name": "app"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    ok::<Value>(
        as_token(
            s,
            &dev,
            Method::PATCH,
            "/v1/environments/shop/stacks/app/config",
            json!({"set": {"API_KEY": "s3cret"}}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    // A buildpack on the build host's disk is the operator's to name: a developer pointing one
    // at a host directory or a file:// URL would have the build host copy it.
    for hostile in ["/etc", "/var/lib/widemesh", "file:///root/bp.tgz"] {
        err(
            as_token(
                s,
                &dev,
                Method::PATCH,
                "/v1/environments/shop/stacks/app",
                json!({"buildpacks": [hostile]}),
            )
            .await,
            StatusCode::FORBIDDEN,
            "permission_denied",
            "is on the build host's disk: only an admin token may set one",
        )
        .await;
    }
    ok::<Value>(
        as_token(
            s,
            &dev,
            Method::PATCH,
            "/v1/environments/shop/stacks/app",
            json!({"buildpacks": ["https://example.com/bp.tgz"]}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    ok::<Value>(
        s.patch(
            "/v1/environments/shop/stacks/app",
            json!({"buildpacks": ["/srv/buildpacks/mine"]}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let events: Vec<Value> = s.get_ok("/v1/events?limit=20").await;
    assert!(
        events.iter().any(|e| e["actor"] == "dev2"
            && e["action"] == "stack.create"
            && e["target"].as_str().unwrap().contains("app")),
        "the change names the developer's token: {events:#?}"
    );
    assert!(
        events.iter().any(|e| e["actor"] == "admin"
            && e["action"] == "token.create"
            && e["target"] == "dev2"),
        "{events:#?}"
    );

    // A viewer reads, but no config values, no changes, no exec.
    ok::<Value>(
        as_token(
            s,
            &viewer,
            Method::GET,
            "/v1/environments/shop/stacks/app",
            Value::Null,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let denied = err(
        as_token(
            s,
            &viewer,
            Method::GET,
            "/v1/environments/shop/stacks/app/config",
            Value::Null,
        )
        .await,
        StatusCode::FORBIDDEN,
        "permission_denied",
        "a viewer token may not read config values",
    )
    .await;
    assert!(!denied.contains("s3cret"));
    err(
        as_token(
            s,
            &viewer,
            Method::POST,
            "/v1/environments/shop/stacks/app/runs",
            json!({"command": "env"}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "permission_denied",
        "may not run or exec",
    )
    .await;

    // An expired token is refused with a message saying so.
    let brief = token(
        s,
        json!({"name": "brief", "role": "viewer", "environments": ["shop"], "expires_in_secs": 1}),
    )
    .await;
    ok::<Value>(
        as_token(s, &brief, Method::GET, "/v1/whoami", Value::Null).await,
        StatusCode::OK,
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    err(
        as_token(s, &brief, Method::GET, "/v1/whoami", Value::Null).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "expired",
    )
    .await;
}

#[tokio::test]
async fn scoped_tokens_on_sqlite() {
    let s = TestServer::start().await;
    create_env(&s, "shop").await;
    create_env(&s, "bank").await;
    scoped_tokens(&s).await;
}
