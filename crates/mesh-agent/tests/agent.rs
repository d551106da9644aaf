//! The agent against a real control plane: with the in-memory runtime (no root needed), and
//! with the real runc runtime (privileged).

#[path = "agent/fake.rs"]
mod fake;
#[path = "agent/native.rs"]
mod native;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mesh_agent::{Agent, AgentOptions};
use mesh_runtime::{Ipv4Net, Runtime};
use mesh_server::{RunningServer, ServerOptions};
use mesh_types::Name;
use serde_json::{Value, json};
use tokio::sync::watch;

pub struct Platform {
    pub server: Option<RunningServer>,
    pub url: String,
    pub token: String,
    pub join: String,
    pub dir: PathBuf,
    pub listen: std::net::SocketAddr,
    pub http: reqwest::Client,
}

impl Platform {
    pub async fn start(dir: PathBuf, listen: std::net::SocketAddr) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let opts = ServerOptions {
            listen,
            data_dir: dir.clone(),
            database_url: None,
            local_rack: true,
            acme: None,
            builder: Some(std::sync::Arc::new(
                mesh_build::builder::fake::FakeBuilder::new(mesh_build::BlobDir::new(
                    dir.join("blobs"),
                )),
            )),
            max_upload_bytes: 64 * 1024 * 1024,
            uploads: mesh_server::UploadLimits::default(),
            listener: None,
            server_lost_after: mesh_server::DEFAULT_SERVER_LOST_AFTER,
        };
        let server = mesh_server::start(opts).await.unwrap();
        let listen = server.addr();
        let token = std::fs::read_to_string(dir.join("admin-token"))
            .unwrap()
            .trim()
            .to_string();
        let join = std::fs::read_to_string(dir.join("local-join-token"))
            .unwrap()
            .trim()
            .to_string();
        Platform {
            url: format!("http://{listen}"),
            server: Some(server),
            token,
            join,
            dir,
            listen,
            http: reqwest::Client::new(),
        }
    }

    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown();
            let _ = s.wait().await;
        }
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.url))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// Polls `path` until `check` holds (bounded), returning the last answer.
    pub async fn wait_for(
        &self,
        path: &str,
        what: &str,
        within: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let v = self.get(path).await;
            if check(&v) {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: not within {within:?}; last: {v:#}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// An environment `env` with stack `app` on the busybox image.
    pub async fn app(&self, env: &str) {
        self.post("/v1/environments", json!({"name": env})).await;
        self.post(
            &format!("/v1/environments/{env}/stacks"),
            json!({"name": "app"}),
        )
        .await;
        self.call(
            reqwest::Method::PATCH,
            &format!("/v1/environments/{env}/stacks/app"),
            Some(json!({"image": "busybox"})),
        )
        .await;
    }
}

pub struct RunningAgent {
    pub agent: Arc<Agent>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningAgent {
    pub fn start(p: &Platform, data: PathBuf, runtime: Arc<dyn Runtime>, pool: Ipv4Net) -> Self {
        Self::start_with(p, data, runtime, pool, |_| {})
    }

    pub fn start_with(
        p: &Platform,
        data: PathBuf,
        runtime: Arc<dyn Runtime>,
        pool: Ipv4Net,
        adjust: impl FnOnce(&mut AgentOptions),
    ) -> Self {
        let mut opts = AgentOptions::new(&p.url, &p.join, data, Name::parse("box-1").unwrap());
        opts.subnet_pool = pool;
        opts.tick = Duration::from_millis(200);
        opts.stop_grace = Duration::from_secs(2);
        adjust(&mut opts);
        let agent = Agent::new(opts, runtime).unwrap();
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(agent.clone().run(rx));
        RunningAgent { agent, stop, task }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(20), self.task).await;
    }
}

pub fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The instances of a service, from the control plane.
pub fn of_service<'a>(instances: &'a Value, service: &str) -> Vec<&'a Value> {
    instances
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["service"] == service)
        .collect()
}
