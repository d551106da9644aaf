//! The agent with the real runtime: runc containers, bridges, nftables, cgroups. Needs root.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use mesh_runtime::{Ipv4Net, NativeRuntime, Runtime, RuntimeOptions, Status};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// Removes everything the runtime made, even when the test fails halfway.
struct Purge(NativeRuntime);

impl Drop for Purge {
    fn drop(&mut self) {
        let rt = self.0.clone();
        let _ = std::thread::spawn(move || {
            let r = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            r.block_on(async { rt.purge().await })
        })
        .join();
    }
}

async fn logs(p: &Platform, env: &str, query: &str) -> String {
    let resp = p
        .http
        .get(format!(
            "{}/v1/environments/{env}/logs?since=10m{query}",
            p.url
        ))
        .bearer_auth(&p.token)
        .send()
        .await
        .unwrap();
    resp.text().await.unwrap()
}

async fn wait_logs(p: &Platform, env: &str, query: &str, needle: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let text = logs(p, env, query).await;
        if text.contains(needle) {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{needle:?} not in the logs within 30 s:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn http_get(addr: Ipv4Addr, port: u16) -> String {
    let mut s = tokio::net::TcpStream::connect((addr, port)).await.unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    let mut out = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out)).await;
    out
}

#[tokio::test]
async fn instances_run_for_real_restart_log_run_on_schedule_and_outlive_the_agent() {
    assert_eq!(
        nix::unistd::geteuid().as_raw(),
        0,
        "the privileged tests run as root (CI does)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let p = Platform::start(tmp.path().join("cp"), free_addr()).await;
    let mut opts = RuntimeOptions::new(tmp.path().join("runtime"));
    opts.prefix = format!("a{}", std::process::id() % 10_000);
    opts.nft_table = format!("wm_agent_test_{}", std::process::id());
    opts.cgroup_parent = format!("wm_agent_test_{}", std::process::id());
    let native = NativeRuntime::new(opts)
        .expect("runtime (is runc installed and mesh-runtime-shim built? run scripts/test)");
    let _purge = Purge(native.clone());
    let runtime: Arc<dyn Runtime> = Arc::new(native.clone());
    let pool = Ipv4Net::new(Ipv4Addr::new(10, 239, 0, 0), 16).unwrap();

    p.app("shop").await;
    p.call(
        reqwest::Method::PATCH,
        "/v1/environments/shop/stacks/app/config",
        Some(json!({"set": {"GREETING": "hi-from-config"}})),
    )
    .await;
    let svc = "/v1/environments/shop/stacks/app/services";
    p.post(
        svc,
        json!({"name": "web", "command": "httpd -f -p $PORT", "size": "nano"}),
    )
    .await;
    p.post(
        "/v1/environments/shop/endpoints/shop.localhost/publish",
        json!({"stack": "app", "service": "web"}),
    )
    .await;
    p.post(svc, json!({"name": "worker", "command": "echo \"greeting=$GREETING\"; exec sleep 1000", "size": "nano"})).await;
    p.post(
        svc,
        json!({"name": "flaky", "command": "echo boom; exit 3", "size": "nano"}),
    )
    .await;
    p.post(svc, json!({"name": "tick", "command": "echo tick-ran", "schedule": "@every 2s", "size": "nano"})).await;

    let agent = RunningAgent::start(&p, tmp.path().join("agent"), runtime.clone(), pool);
    let web = p
        .wait_for(
            "/v1/environments/shop/stacks/app/services/web",
            "web healthy",
            Duration::from_secs(60),
            |v| v["status"]["healthy"] == 1,
        )
        .await;
    assert_eq!(web["kind"], "web");
    let instances = p.get("/v1/environments/shop/instances").await;
    let web_i = of_service(&instances, "web")[0].clone();
    let addr: Ipv4Addr = web_i["address"].as_str().unwrap().parse().unwrap();
    assert!(pool.contains(addr));
    let answer = http_get(addr, 5000).await;
    assert!(
        answer.starts_with("HTTP/1."),
        "the web service answers HTTP: {answer:?}"
    );

    // Config reaches the instance's environment; output reaches `mesh logs`.
    wait_logs(&p, "shop", "&service=worker", "greeting=hi-from-config").await;
    // A crashing service is restarted with backoff and says why.
    let text = wait_logs(&p, "shop", "&service=flaky", "exited with code 3").await;
    assert!(text.contains("boom"), "{text}");
    p.wait_for(
        "/v1/environments/shop/instances",
        "flaky restarted",
        Duration::from_secs(30),
        |v| {
            of_service(v, "flaky")
                .iter()
                .any(|i| i["restarts"].as_u64().unwrap_or(0) >= 2)
        },
    )
    .await;
    // The cron job ran on its schedule.
    wait_logs(&p, "shop", "&service=tick", "tick-ran").await;

    // Peers by name: DNS on the environment's gateway answers `app-web`.
    let worker_id = of_service(&p.get("/v1/environments/shop/instances").await, "worker")[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = runtime
        .exec(&worker_id, &["nslookup".into(), "app-web".into()])
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&addr.to_string()),
        "nslookup app-web: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = runtime
        .exec(&worker_id, &["nslookup".into(), "blog-web".into()])
        .await
        .unwrap();
    assert_ne!(out.code, 0, "unknown names do not resolve");

    // The agent restarts: the web instance keeps running with the same process.
    let pid_of = |list: &[mesh_runtime::InstanceState], id: &str| {
        list.iter()
            .find(|i| i.id == id)
            .and_then(|i| match i.status {
                Status::Running { pid } => Some(pid),
                _ => None,
            })
    };
    let web_id = web_i["id"].as_str().unwrap().to_string();
    let pid = pid_of(&runtime.list().await.unwrap(), &web_id).expect("web runs");
    agent.stop().await;
    assert_eq!(
        pid_of(&runtime.list().await.unwrap(), &web_id),
        Some(pid),
        "instances outlive the agent"
    );
    let agent = RunningAgent::start(&p, tmp.path().join("agent"), runtime.clone(), pool);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        pid_of(&runtime.list().await.unwrap(), &web_id),
        Some(pid),
        "a new agent adopts, not restarts"
    );
    assert!(http_get(addr, 5000).await.starts_with("HTTP/1."));

    // Deleting the environment stops and removes everything the agent made for it.
    p.call(reqwest::Method::DELETE, "/v1/environments/shop", None)
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !runtime.list().await.unwrap().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "instances of a deleted environment are removed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    agent.stop().await;
    let _: Value = Value::Null;
}
