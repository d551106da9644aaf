//! The model end to end through the API, as the CLI drives it.

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;

use super::*;

const ENV: &str = "/v1/environments/shop";
const APP: &str = "/v1/environments/shop/stacks/app";

async fn shop_with_app(s: &TestServer) {
    ok::<Value>(
        s.post("/v1/environments", json!({"name": "shop"})).await,
        StatusCode::CREATED,
    )
    .await;
    ok::<Value>(
        s.post(&format!("{ENV}/stacks"), json!({"name": "app"}))
            .await,
        StatusCode::CREATED,
    )
    .await;
}

#[tokio::test]
async fn a_fresh_platform_has_the_local_provider_and_rack() {
    let s = TestServer::start().await;
    let providers: Vec<Value> = s.get_ok("/v1/providers").await;
    assert_eq!(providers.len(), 1);
    assert_eq!(providers[0]["kind"], "local");
    let rack: Value = s.get_ok("/v1/racks/local").await;
    assert_eq!(rack["region"], "local");
    assert_eq!(rack["domain"], "localhost");
    assert_eq!(rack["address"], "127.0.0.1");
    let events: Vec<Value> = s.get_ok("/v1/events").await;
    assert!(
        events
            .iter()
            .any(|e| e["action"] == "rack.create" && e["actor"] == "bootstrap")
    );
}

#[tokio::test]
async fn environments_stacks_and_services() {
    let s = TestServer::start().await;
    shop_with_app(&s).await;
    err(
        s.post("/v1/environments", json!({"name": "shop"})).await,
        StatusCode::CONFLICT,
        "already_exists",
        "shop",
    )
    .await;
    let env: Value = s.get_ok(ENV).await;
    assert_eq!(env["racks"], json!(["local"]));
    assert_eq!(env["endpoints"][0]["domain"], "shop.localhost");
    assert_eq!(env["endpoints"][0]["kind"], "alias");
    assert_eq!(env["stacks"][0]["formula"], "buildpack");

    let docker: Value = ok(
        s.post(
            &format!("{ENV}/stacks"),
            json!({"name": "api", "formula": "dockerfile"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(docker["formula"], "dockerfile");
    err(
        s.post(&format!("{ENV}/stacks"), json!({"name": "app"}))
            .await,
        StatusCode::CONFLICT,
        "already_exists",
        "app",
    )
    .await;

    let stack: Value = ok(
        s.patch(
            APP,
            json!({"release_command": "rails db:migrate", "builder": "heroku/buildpacks:20"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(stack["release_command"], "rails db:migrate");
    assert_eq!(stack["builder"], "heroku/buildpacks:20");
    let stack: Value = ok(
        s.patch(APP, json!({"release_command": ""})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(stack["release_command"], Value::Null);
    assert_eq!(
        stack["builder"], "heroku/buildpacks:20",
        "absent fields are kept"
    );
    let stack: Value = ok(
        s.patch(APP, json!({"image": "busybox"})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(stack["image"], "busybox");
    let bad = s.patch(APP, json!({"image": "ubuntu"})).await;
    err(
        bad,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "busybox, debian",
    )
    .await;

    let web: Value = ok(
        s.post(
            &format!("{APP}/services"),
            json!({"name": "web", "command": "gunicorn app:wsgi"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(web["kind"], "worker", "private until published");
    assert_eq!(web["port"], 5000);
    assert_eq!(web["hostname"], "app-web");
    assert_eq!(web["size"], "small");
    assert_eq!(
        web["status"],
        json!({"desired": 1, "running": 0, "healthy": 0})
    );
    let cron: Value = ok(
        s.post(
            &format!("{APP}/services"),
            json!({"name": "emailsender", "schedule": "@hourly", "command": "node send-emails.js"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(cron["kind"], "cron");
    err(
        s.post(&format!("{APP}/services"), json!({"name": "web"}))
            .await,
        StatusCode::CONFLICT,
        "already_exists",
        "web",
    )
    .await;

    let scaled: Value = ok(
        s.post(
            &format!("{APP}/services/web/scale"),
            json!({"instances": 3, "size": "nano"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (scaled["instances"].clone(), scaled["size"].clone()),
        (json!(3), json!("nano"))
    );
    let updated: Value = ok(
        s.patch(
            &format!("{APP}/services/web"),
            json!({"command": "app server", "health_path": "/healthz"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(updated["command"], "app server");
    assert_eq!(updated["health"]["http_path"], "/healthz");
    assert_eq!(updated["instances"], 3, "an update keeps the scale");
    let updated: Value = ok(
        s.patch(
            &format!("{APP}/services/emailsender"),
            json!({"schedule": "5 4 * * *"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(updated["schedule"], "5 4 * * *");

    let all: Vec<Value> = s.get_ok(&format!("{ENV}/services")).await;
    assert_eq!(all.len(), 2);
    assert_eq!(
        s.delete(&format!("{APP}/services/emailsender"))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    err(
        s.get(&format!("{APP}/services/emailsender")).await,
        StatusCode::NOT_FOUND,
        "not_found",
        "emailsender",
    )
    .await;
    let instances: Vec<Value> = s.get_ok(&format!("{ENV}/instances")).await;
    assert!(instances.is_empty());
}

#[tokio::test]
async fn config_layers_resolve_and_values_are_sealed() {
    let s = TestServer::start().await;
    shop_with_app(&s).await;
    ok::<Value>(
        s.post(&format!("{APP}/services"), json!({"name": "web"}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    ok::<Value>(
        s.post(
            "/v1/racks",
            json!({"name": "eu-1", "provider": "local", "region": "eu", "domain": "eu.test"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    ok::<Value>(
        s.patch(ENV, json!({"racks": ["local", "eu-1"]})).await,
        StatusCode::OK,
    )
    .await;

    let marker = "sealed-marker-7f3a9c";
    let vars: Vec<Value> = ok(
        s.patch(
            &format!("{APP}/config"),
            json!({"set": {"MESSAGE": "Hello World", "SECRET": marker, "DB": "stack-db"}}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(vars.len(), 3);
    ok::<Value>(
        s.patch(
            &format!("{APP}/services/web/config"),
            json!({"set": {"MESSAGE": "from web"}}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    ok::<Value>(
        s.patch(
            &format!("{APP}/config"),
            json!({"set": {"DB": "eu-db"}, "region": "eu"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    ok::<Value>(
        s.patch(
            &format!("{APP}/config"),
            json!({"set": {"DB": "eu-1-db"}, "rack": "eu-1"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;

    let local: Value = s
        .get_ok(&format!("{APP}/services/web/config/resolved"))
        .await;
    assert_eq!(local["rack"], "local");
    assert_eq!(local["vars"]["MESSAGE"]["value"], "from web");
    assert_eq!(local["vars"]["DB"]["value"], "stack-db");
    assert_eq!(
        local["vars"]["PORT"],
        json!({"value": "5000", "from": "platform"})
    );
    let eu: Value = s
        .get_ok(&format!("{APP}/services/web/config/resolved?rack=eu-1"))
        .await;
    assert_eq!(eu["region"], "eu");
    assert_eq!(
        eu["vars"]["DB"],
        json!({"value": "eu-1-db", "from": "stack @rack eu-1"})
    );

    let web_only: Vec<Value> = s.get_ok(&format!("{APP}/services/web/config")).await;
    assert_eq!(web_only.len(), 1);
    let vars: Vec<Value> = ok(
        s.patch(&format!("{APP}/config"), json!({"unset": ["SECRET"]}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert!(vars.iter().all(|v| v["key"] != "SECRET"));
    err(
        s.patch(&format!("{APP}/config"), json!({"unset": ["SECRET"]}))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
        "SECRET",
    )
    .await;
    err(
        s.patch(
            &format!("{APP}/config"),
            json!({"set": {"X": "1"}, "region": "mars"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "no rack is in region",
    )
    .await;
    err(
        s.patch(
            &format!("{APP}/config"),
            json!({"set": {"X": "1"}, "rack": "nope"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
        "nope",
    )
    .await;
    err(
        s.get(&format!("{APP}/services/web/config/resolved?rack=nope"))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "not placed on rack",
    )
    .await;

    // The value was written and removed again; neither may have reached the disk in clear.
    ok::<Value>(
        s.patch(&format!("{APP}/config"), json!({"set": {"KEPT": marker}}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert!(
        !contains(&database_bytes(&s.dir), marker),
        "a config value is stored in plain text"
    );
    assert!(!contains(&database_bytes(&s.dir), "Hello World"));
    let events: Vec<Value> = s.get_ok("/v1/events").await;
    assert!(
        events
            .iter()
            .all(|e| !e["detail"].as_str().unwrap().contains(marker)),
        "values stay out of the audit log"
    );
}

#[tokio::test]
async fn endpoints_routes_and_dns() {
    let s = TestServer::start().await;
    shop_with_app(&s).await;
    ok::<Value>(
        s.post(&format!("{APP}/services"), json!({"name": "web"}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    ok::<Value>(
        s.post(&format!("{APP}/services"), json!({"name": "api"}))
            .await,
        StatusCode::CREATED,
    )
    .await;

    let ep: Value = ok(
        s.post(
            &format!("{ENV}/endpoints"),
            json!({"domain": "App.Example.com"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(ep["domain"], "app.example.com");
    assert_eq!(ep["kind"], "custom");
    assert_eq!(
        ep["dns"],
        json!([{"type": "A", "name": "app.example.com", "value": "127.0.0.1"}])
    );
    err(
        s.post(
            &format!("{ENV}/endpoints"),
            json!({"domain": "app.example.com"}),
        )
        .await,
        StatusCode::CONFLICT,
        "already_exists",
        "app.example.com",
    )
    .await;
    err(
        s.post(
            &format!("{ENV}/endpoints"),
            json!({"domain": "blog.localhost"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "platform alias domain",
    )
    .await;

    let alias = format!("{ENV}/endpoints/shop.localhost");
    let ep: Value = ok(
        s.post(
            &format!("{alias}/publish"),
            json!({"stack": "app", "service": "web"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        ep["routes"],
        json!([{"path": "/", "stack": "app", "service": "web"}])
    );
    ok::<Value>(
        s.post(
            &format!("{alias}/publish"),
            json!({"stack": "app", "service": "api", "path": "/api"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    err(
        s.post(
            &format!("{alias}/publish"),
            json!({"stack": "app", "service": "api"}),
        )
        .await,
        StatusCode::CONFLICT,
        "failed_precondition",
        "already routes to app-web",
    )
    .await;
    err(
        s.post(
            &format!("{alias}/publish"),
            json!({"stack": "app", "service": "nope"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
        "nope",
    )
    .await;
    err(
        s.post(
            &format!("{alias}/publish"),
            json!({"stack": "app", "service": "api", "path": "api"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "start with '/'",
    )
    .await;
    let web: Value = s.get_ok(&format!("{APP}/services/web")).await;
    assert_eq!(web["kind"], "web", "publishing makes a web service");

    ok::<Value>(
        s.post(
            &format!("{alias}/unpublish"),
            json!({"stack": "app", "service": "api"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    err(
        s.post(
            &format!("{alias}/unpublish"),
            json!({"stack": "app", "service": "api"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
        "route",
    )
    .await;
    err(
        s.delete(&alias).await,
        StatusCode::CONFLICT,
        "failed_precondition",
        "platform alias",
    )
    .await;
    assert_eq!(
        s.delete(&format!("{ENV}/endpoints/app.example.com"))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );

    // Deleting a published service removes its routes.
    assert_eq!(
        s.delete(&format!("{APP}/services/web")).await.status(),
        StatusCode::NO_CONTENT
    );
    let ep: Value = s.get_ok(&alias).await;
    assert_eq!(ep["routes"], json!([]));
}

#[tokio::test]
async fn racks_providers_and_placement() {
    let s = TestServer::start().await;
    err(
        s.post("/v1/providers", json!({"name": "hetzner", "kind": "ssh"}))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "private_key",
    )
    .await;
    let marker = "ssh-key-marker-41c2";
    let p: Value = ok(
        s.post(
            "/v1/providers",
            json!({"name": "hetzner", "kind": "ssh", "secrets": {"private_key": marker}}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(p["secret_keys"], json!(["private_key"]));
    assert!(
        !contains(&database_bytes(&s.dir), marker),
        "provider secrets are sealed"
    );
    err(
        s.post("/v1/providers", json!({"name": "gcp", "kind": "gcp"}))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "kind",
    )
    .await;
    // A cloud provider without its credentials is refused, saying which.
    err(
        s.post("/v1/providers", json!({"name": "aws", "kind": "aws"}))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "access_key_id",
    )
    .await;

    err(
        s.post(
            "/v1/racks",
            json!({"name": "fsn", "provider": "hetzner", "region": "eu-central"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "--size",
    )
    .await;
    let created: Value = ok(s.post("/v1/racks", json!({"name": "fsn", "provider": "hetzner", "region": "eu-central", "size": "cx22", "domain": "fsn.example.net", "address": "203.0.113.7"})).await, StatusCode::CREATED).await;
    assert!(created["join_token"].as_str().unwrap().starts_with("mesh_"));
    err(
        s.post(
            "/v1/racks",
            json!({"name": "x", "provider": "nope", "region": "r"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
        "nope",
    )
    .await;

    ok::<Value>(
        s.post(
            "/v1/environments",
            json!({"name": "shop", "racks": ["local", "fsn"]}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let env: Value = s.get_ok(ENV).await;
    let domains: Vec<&str> = env["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["domain"].as_str().unwrap())
        .collect();
    assert!(
        domains.contains(&"shop.localhost") && domains.contains(&"shop.fsn.example.net"),
        "{domains:?}"
    );
    let ep: Value = ok(
        s.post(
            &format!("{ENV}/endpoints"),
            json!({"domain": "shop.example.com"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        ep["dns"].as_array().unwrap().len(),
        2,
        "one record per rack address: {ep}"
    );

    err(
        s.delete("/v1/racks/fsn").await,
        StatusCode::CONFLICT,
        "failed_precondition",
        "shop",
    )
    .await;
    err(
        s.delete("/v1/providers/hetzner").await,
        StatusCode::CONFLICT,
        "failed_precondition",
        "fsn",
    )
    .await;
    // Its server is not made by the platform: the platform cannot replace it.
    err(
        s.post("/v1/racks/fsn/upgrade", json!({})).await,
        StatusCode::CONFLICT,
        "failed_precondition",
        "not made by the platform",
    )
    .await;
    err(
        s.post("/v1/racks/fsn/resize", json!({"size": "cx32"}))
            .await,
        StatusCode::CONFLICT,
        "failed_precondition",
        "not made by the platform",
    )
    .await;
    err(
        s.post("/v1/racks/fsn/resize", json!({"size": "cx 32"}))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "cx 32",
    )
    .await;
    err(
        s.post("/v1/racks/fsn/upgrade", json!({"drain_grace_s": 100000}))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "--drain-grace",
    )
    .await;
    err(
        s.get("/v1/racks/fsn/replacement").await,
        StatusCode::NOT_FOUND,
        "not_found",
        "server replacement of rack",
    )
    .await;

    let env: Value = ok(
        s.patch(ENV, json!({"racks": ["local"]})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(env["racks"], json!(["local"]));
    err(
        s.patch(ENV, json!({"racks": []})).await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "at least one rack",
    )
    .await;
    err(
        s.patch(ENV, json!({"racks": ["local", "local"]})).await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "twice",
    )
    .await;
    assert_eq!(
        s.delete("/v1/racks/fsn").await.status(),
        StatusCode::NO_CONTENT
    );
    let tokens: Vec<Value> = s.get_ok("/v1/tokens").await;
    assert!(
        tokens.iter().all(|t| t["name"] != "rack-fsn-join"),
        "a deleted rack's join token goes with it"
    );
    assert_eq!(
        s.delete("/v1/providers/hetzner").await.status(),
        StatusCode::NO_CONTENT
    );
    let servers: Vec<Value> = s.get_ok("/v1/racks/local/servers").await;
    assert!(servers.is_empty());
}

#[tokio::test]
async fn a_deployment_needs_exactly_one_upload() {
    let s = TestServer::start().await;
    shop_with_app(&s).await;
    let list: Vec<Value> = s.get_ok(&format!("{APP}/deployments")).await;
    assert!(list.is_empty());
    err(
        s.post(&format!("{APP}/deployments"), json!({})).await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "give exactly one of source",
    )
    .await;
    let logs = s.get(&format!("{ENV}/logs")).await;
    assert_eq!(logs.status(), StatusCode::OK);
    assert_eq!(
        logs.text().await.unwrap(),
        "",
        "no instance has written anything yet"
    );
    err(
        s.get(&format!("{APP}/deployments/v0")).await,
        StatusCode::NOT_FOUND,
        "not_found",
        "v0",
    )
    .await;
    err(
        s.get(&format!("{APP}/deployments/latest")).await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "v0, v1",
    )
    .await;
}

#[tokio::test]
async fn deleting_an_environment_removes_everything_in_it() {
    let s = TestServer::start().await;
    shop_with_app(&s).await;
    ok::<Value>(
        s.post(&format!("{APP}/services"), json!({"name": "web"}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    ok::<Value>(
        s.patch(&format!("{APP}/config"), json!({"set": {"A": "1"}}))
            .await,
        StatusCode::OK,
    )
    .await;
    ok::<Value>(
        s.post(
            &format!("{ENV}/endpoints"),
            json!({"domain": "shop.example.com"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(s.delete(ENV).await.status(), StatusCode::NO_CONTENT);
    err(s.get(ENV).await, StatusCode::NOT_FOUND, "not_found", "shop").await;
    err(s.get(APP).await, StatusCode::NOT_FOUND, "not_found", "shop").await;
    // Its names are free again.
    ok::<Value>(
        s.post("/v1/environments", json!({"name": "blog"})).await,
        StatusCode::CREATED,
    )
    .await;
    ok::<Value>(
        s.post(
            "/v1/environments/blog/endpoints",
            json!({"domain": "shop.example.com"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    ok::<Value>(
        s.post("/v1/environments", json!({"name": "shop"})).await,
        StatusCode::CREATED,
    )
    .await;
    let events: Vec<Value> = s.get_ok("/v1/events?limit=500").await;
    assert!(events.iter().any(|e| e["action"] == "environment.delete"
        && e["target"] == "shop"
        && e["actor"] == "admin"));
}

#[tokio::test]
async fn state_and_the_admin_token_survive_a_restart() {
    let mut s = TestServer::start().await;
    shop_with_app(&s).await;
    ok::<Value>(
        s.patch(&format!("{APP}/config"), json!({"set": {"A": "persisted"}}))
            .await,
        StatusCode::OK,
    )
    .await;
    let token = s.token.clone();
    s.stop().await;
    let t = TestServer::start_in(s.dir.clone(), None, true).await;
    assert_eq!(t.token, token, "the admin token is kept");
    let vars: Vec<Value> = t.get_ok(&format!("{APP}/config")).await;
    assert_eq!(vars[0]["value"], "persisted");
    let providers: Vec<Value> = t.get_ok("/v1/providers").await;
    assert_eq!(providers.len(), 1, "bootstrap runs once");
}

#[tokio::test]
async fn certificates_upload_list_delete() {
    use rcgen::{CertificateParams, KeyPair};
    let s = TestServer::start().await;
    shop_with_app(&s).await;
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["shop.example.com".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let marker_key = key.serialize_pem();
    let c: Value = ok(
        s.post(
            &format!("{ENV}/certificates"),
            json!({"files": [cert.pem(), marker_key.clone()]}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(c["domains"], json!(["shop.example.com"]));
    assert_eq!(c["source"], "uploaded");
    assert_eq!(c["state"], "issued");
    let body = marker_key.lines().nth(1).unwrap();
    assert!(
        !contains(&database_bytes(&s.dir), body),
        "certificate keys are sealed"
    );
    err(
        s.post(
            &format!("{ENV}/certificates"),
            json!({"files": [marker_key, cert.pem()]}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "must come last",
    )
    .await;
    let list: Vec<Value> = s.get_ok(&format!("{ENV}/certificates")).await;
    assert_eq!(list.len(), 1);
    let short = &c["fingerprint"].as_str().unwrap()[..12];
    assert_eq!(
        s.delete(&format!("{ENV}/certificates/{short}"))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    let list: Vec<Value> = s.get_ok(&format!("{ENV}/certificates")).await;
    assert!(list.is_empty());
}

/// A config ciphertext copied in the database from one environment's row to another's does not
/// open there: reading that stack's config answers 409 naming the key, other stacks read, and
/// setting the value again repairs it.
#[tokio::test]
async fn a_config_value_copied_to_another_environment_does_not_open() {
    let s = TestServer::start().await;
    shop_with_app(&s).await;
    ok::<Value>(
        s.post("/v1/environments", json!({"name": "bank"})).await,
        StatusCode::CREATED,
    )
    .await;
    ok::<Value>(
        s.post("/v1/environments/bank/stacks", json!({"name": "app"}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    const BANK: &str = "/v1/environments/bank/stacks/app";
    for (path, value) in [(APP, "shop-secret"), (BANK, "bank-secret")] {
        ok::<Value>(
            s.patch(
                &format!("{path}/config"),
                json!({"set": {"SECRET": value, "OTHER": "other"}}),
            )
            .await,
            StatusCode::OK,
        )
        .await;
    }

    sqlx::any::install_default_drivers();
    let db = format!("sqlite://{}", s.dir.join("widemesh.db").display());
    let mut conn = sqlx::AnyConnection::connect(&db).await.unwrap();
    let of = |env: &str| {
        format!(
            "(SELECT c.id FROM config_vars c JOIN stacks st ON st.id = c.stack_id \
             JOIN environments e ON e.id = st.environment_id \
             WHERE e.name = '{env}' AND c.key = 'SECRET')"
        )
    };
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE config_vars SET value = (SELECT value FROM config_vars WHERE id = {}) \
         WHERE id = {}",
        of("shop"),
        of("bank")
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();

    let message = err(
        s.get(&format!("{BANK}/config")).await,
        StatusCode::CONFLICT,
        "failed_precondition",
        "config variable \"SECRET\" of environment \"bank\", stack \"app\" (stack) cannot be \
         opened: its value was sealed for a different owner",
    )
    .await;
    assert!(
        message.contains("`mesh config set SECRET=...`"),
        "{message}"
    );
    assert!(!message.contains("shop-secret"), "{message}");
    // The environment it came from reads as before.
    let shop: Vec<Value> = s.get_ok(&format!("{APP}/config")).await;
    assert!(
        shop.iter()
            .any(|v| v["key"] == "SECRET" && v["value"] == "shop-secret"),
        "{shop:?}"
    );
    // Setting the value again repairs it.
    ok::<Value>(
        s.patch(
            &format!("{BANK}/config"),
            json!({"set": {"SECRET": "bank-secret-2"}}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let bank: Vec<Value> = s.get_ok(&format!("{BANK}/config")).await;
    assert_eq!(bank.len(), 2, "{bank:?}");
    assert!(
        bank.iter()
            .any(|v| v["key"] == "SECRET" && v["value"] == "bank-secret-2"),
        "{bank:?}"
    );
}
