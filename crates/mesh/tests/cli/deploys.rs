//! `mesh deploy` on `mesh up`, as a new user runs it, with the platform's test builder (the
//! source on the busybox image, no build containers: the build formulas have their own tests) and
//! real instances behind the real edge router. A first deploy creates the environment and stack
//! and links the directory; redeploys and config changes under steady load drop no request; a
//! broken build, a failing release command and a web process that never gets healthy each fail
//! with why and leave the running version serving; a rollback returns to an earlier image.
//! Privileged: CI runs it as root.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;
use crate::web::{Load, Purge, assert_root, free_port, get, wait_for_body, wait_no_netns};

const PREFIX: &str = "e4d";
const POOL: &str = "10.237.0.0/16";
const HOST: &str = "webapp.localhost";

fn write_app(dir: &Path, page: &str, release: &str, web: &str) {
    std::fs::create_dir_all(dir.join("public")).unwrap();
    std::fs::write(dir.join("public/index.html"), format!("{page}\n")).unwrap();
    std::fs::write(
        dir.join("Procfile"),
        format!("web: {web}\nrelease: {release}\n"),
    )
    .unwrap();
}

const WEB: &str = "httpd -f -p $PORT -h /app/public";

fn deployments(p: &Platform) -> Vec<Value> {
    p.mesh(&[
        "deployments",
        "list",
        "--env",
        "webapp",
        "--stack",
        "webapp",
        "--json",
    ])
    .ok()
    .json()
    .as_array()
    .unwrap()
    .clone()
}

fn status_of(p: &Platform, v: &str) -> String {
    deployments(p)
        .into_iter()
        .find(|d| d["version"] == v)
        .map(|d| d["status"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

#[test]
fn deploys_roll_out_without_dropping_requests_and_failures_leave_the_old_version_serving() {
    assert_root();
    let home = Home::new();
    let _purge = Purge::with_home(home.path().to_path_buf(), home.data_dir(), PREFIX);
    let http = free_port();
    let https = free_port();
    let (http_s, https_s) = (format!("127.0.0.1:{http}"), format!("127.0.0.1:{https}"));
    let p = Platform::start_with(
        home,
        &[
            "--net-prefix",
            PREFIX,
            "--subnet-pool",
            POOL,
            "--builder",
            "fake",
            "--http-listen",
            &http_s,
            "--https-listen",
            &https_s,
        ],
    );
    let src = tempfile::tempdir().unwrap();
    let app = src.path().join("webapp");
    let app_s = app.to_str().unwrap();

    // A first deploy: environment and stack made, directory linked, web answers on the alias.
    write_app(&app, "v1", "echo release ran with GREETING=$GREETING", WEB);
    let out = p.mesh(&["deploy", "--dir", app_s]);
    assert_eq!(out.code, 0, "{}\n{}\n{}", out.stdout, out.stderr, p.log());
    assert!(
        out.stderr.contains("created environment webapp"),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout.contains("release ran with GREETING="),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("web answers at http://webapp.localhost/"),
        "{}",
        out.stdout
    );
    let link = std::fs::read_to_string(app.join(".mesh/link.toml")).unwrap();
    assert!(link.contains("environment = \"webapp\""), "{link}");
    wait_for_body(http, HOST, "v1", Duration::from_secs(30));

    // A redeploy under steady load: the new version takes over, nothing is dropped.
    write_app(&app, "v2", "echo release two", WEB);
    let load = Load::start(http, HOST, &["v1", "v2"]);
    let out = p.mesh(&["deploy", "--dir", app_s]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    wait_for_body(http, HOST, "v2", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    let (sent, failures) = load.finish();
    assert!(sent > 50, "the load loop sent only {sent} requests");
    assert!(
        failures.is_empty(),
        "{} of {sent} requests failed: {failures:?}",
        failures.len()
    );

    // A config change is a new release of the same image, rolled out the same way.
    let load = Load::start(http, HOST, &["v2"]);
    p.mesh(&[
        "config",
        "set",
        "GREETING=hi",
        "--env",
        "webapp",
        "--stack",
        "webapp",
    ])
    .ok();
    let deadline = Instant::now() + Duration::from_secs(60);
    while status_of(&p, "v2") != "succeeded" {
        assert!(
            Instant::now() < deadline,
            "the config change did not roll out: {:?}",
            deployments(&p)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (sent, failures) = load.finish();
    assert!(
        failures.is_empty(),
        "{} of {sent} requests failed: {failures:?}",
        failures.len()
    );
    let v2 = deployments(&p)
        .into_iter()
        .find(|d| d["version"] == "v2")
        .unwrap();
    assert!(
        v2["description"]
            .as_str()
            .unwrap()
            .starts_with("config change"),
        "{v2}"
    );

    // A broken build fails in its build step and changes nothing.
    std::fs::write(app.join("FAIL_BUILD"), "").unwrap();
    let out = p.mesh(&["deploy", "--dir", app_s]);
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stderr.contains("build step: the build failed"),
        "{}",
        out.stderr
    );
    std::fs::remove_file(app.join("FAIL_BUILD")).unwrap();
    assert_eq!(get(http, HOST).unwrap(), (200, "v2".to_string()));

    // A failing release command stops the deployment before its rollout.
    write_app(&app, "v3", "exit 3", WEB);
    let out = p.mesh(&["deploy", "--dir", app_s]);
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stderr.contains("release command failed"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("exited with code 3"), "{}", out.stderr);
    assert_eq!(get(http, HOST).unwrap(), (200, "v2".to_string()));

    // A web process that never gets healthy is rolled back by the platform.
    write_app(&app, "v4", "echo fine", "exit 3");
    let load = Load::start(http, HOST, &["v2"]);
    let out = p.mesh(&["deploy", "--dir", app_s]);
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(out.stderr.contains("rolled_back"), "{}", out.stderr);
    assert!(
        out.stderr.contains("did not become healthy"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("rolled back to v2"), "{}", out.stderr);
    let (sent, failures) = load.finish();
    assert!(
        failures.is_empty(),
        "{} of {sent} requests failed: {failures:?}",
        failures.len()
    );
    let svc = p
        .mesh(&["services", "list", "--env", "webapp", "--json"])
        .ok()
        .json();
    let web = svc
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "web")
        .unwrap()
        .clone();
    assert_eq!(
        web["command"], WEB,
        "the rollback put the old command back: {web}"
    );

    // `mesh rollback v0` returns to the first image as a new deployment.
    let out = p.mesh(&["rollback", "v0", "--env", "webapp", "--stack", "webapp"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    wait_for_body(http, HOST, "v1", Duration::from_secs(30));

    // The history: every deployment with what it was, how it ended and its steps.
    let list = deployments(&p);
    let statuses: Vec<&str> = list.iter().map(|d| d["status"].as_str().unwrap()).collect();
    assert_eq!(
        statuses,
        [
            "succeeded",
            "succeeded",
            "succeeded",
            "failed",
            "failed",
            "rolled_back",
            "succeeded"
        ],
        "{list:?}"
    );
    assert_eq!(list[6]["description"], "rollback to v0");
    let steps: Vec<&str> = list[0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["build", "release", "rollout"]);
    let shown = p
        .mesh(&[
            "deployments",
            "show",
            "v4",
            "--env",
            "webapp",
            "--stack",
            "webapp",
        ])
        .ok();
    assert!(shown.stdout.contains("release"), "{}", shown.stdout);
    assert!(
        shown.stdout.contains("exited with code 3"),
        "{}",
        shown.stdout
    );

    // Deleting the environment removes its instances.
    p.mesh(&["env", "delete", "webapp", "--yes"]).ok();
    wait_no_netns(PREFIX, Duration::from_secs(60));
}
