//! The control plane's HTTP API, exercised over loopback against a real store.

#[path = "api/access.rs"]
mod access;
#[path = "api/agent.rs"]
mod agent;
#[path = "api/auth.rs"]
mod auth;
#[path = "api/bad_input.rs"]
mod bad_input;
#[path = "api/flow.rs"]
mod flow;
#[path = "api/openapi.rs"]
mod openapi;
#[path = "api/postgres.rs"]
mod postgres;
#[path = "api/registry.rs"]
mod registry;
#[path = "api/servers.rs"]
mod servers;
#[path = "api/uploads.rs"]
mod uploads;

use std::path::PathBuf;

use mesh_server::{RunningServer, ServerOptions, UploadLimits};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tempfile::TempDir;

/// A control plane on 127.0.0.1 with its own data directory.
pub struct TestServer {
    pub running: Option<RunningServer>,
    pub dir: PathBuf,
    _tmp: Option<TempDir>,
    pub url: String,
    pub token: String,
    pub http: reqwest::Client,
}

pub fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl TestServer {
    /// `mesh up`'s control plane: SQLite and the local rack.
    pub async fn start() -> Self {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path().join("data");
        let mut s = Self::start_in(dir, None, true).await;
        s._tmp = Some(tmp);
        s
    }

    /// `mesh up`'s control plane with these upload limits.
    pub async fn start_with_uploads(uploads: UploadLimits) -> Self {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path().join("data");
        let mut s = Self::start_opts(dir, None, true, uploads).await;
        s._tmp = Some(tmp);
        s
    }

    /// `mesh up`'s control plane, whose servers are lost after `after` without a heartbeat.
    pub async fn start_with_lost_after(after: std::time::Duration) -> Self {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path().join("data");
        let mut s = Self::start_full(dir, None, true, UploadLimits::default(), after).await;
        s._tmp = Some(tmp);
        s
    }

    pub async fn start_in(dir: PathBuf, database_url: Option<String>, local_rack: bool) -> Self {
        Self::start_opts(dir, database_url, local_rack, UploadLimits::default()).await
    }

    async fn start_opts(
        dir: PathBuf,
        database_url: Option<String>,
        local_rack: bool,
        uploads: UploadLimits,
    ) -> Self {
        let lost_after = mesh_server::DEFAULT_SERVER_LOST_AFTER;
        Self::start_full(dir, database_url, local_rack, uploads, lost_after).await
    }

    async fn start_full(
        dir: PathBuf,
        database_url: Option<String>,
        local_rack: bool,
        uploads: UploadLimits,
        server_lost_after: std::time::Duration,
    ) -> Self {
        init();
        let opts = ServerOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.clone(),
            database_url,
            local_rack,
            acme: None,
            builder: Some(std::sync::Arc::new(
                mesh_build::builder::fake::FakeBuilder::new(mesh_build::BlobDir::new(
                    dir.join("blobs"),
                )),
            )),
            max_upload_bytes: 64 * 1024 * 1024,
            uploads,
            listener: None,
            server_lost_after,
        };
        let running = mesh_server::start(opts)
            .await
            .expect("control plane starts");
        let url = format!("http://{}", running.addr());
        let token = match running.admin_token() {
            Some(t) => t.to_string(),
            None => std::fs::read_to_string(dir.join("admin-token"))
                .unwrap_or_default()
                .trim()
                .to_string(),
        };
        Self {
            running: Some(running),
            dir,
            _tmp: None,
            url,
            token,
            http: reqwest::Client::new(),
        }
    }

    /// Stops the server, keeping its data directory.
    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown();
            r.wait().await.unwrap();
        }
    }

    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.req(Method::GET, path).send().await.unwrap()
    }

    pub async fn send(&self, method: Method, path: &str, body: Value) -> Response {
        self.req(method, path).json(&body).send().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.send(Method::POST, path, body).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Response {
        self.send(Method::PATCH, path, body).await
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.req(Method::DELETE, path).send().await.unwrap()
    }

    /// GETs and decodes a 200 answer.
    pub async fn get_ok<T: DeserializeOwned>(&self, path: &str) -> T {
        ok(self.get(path).await, StatusCode::OK).await
    }
}

/// Asserts the status and decodes the body.
pub async fn ok<T: DeserializeOwned>(resp: Response, status: StatusCode) -> T {
    let got = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(got, status, "body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Asserts an error answer: its status, code, and a fragment of its message.
pub async fn err(resp: Response, status: StatusCode, code: &str, fragment: &str) -> String {
    let got = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(got, status, "body: {body}");
    assert_eq!(body["error"]["code"], code, "body: {body}");
    let message = body["error"]["message"].as_str().unwrap().to_string();
    assert!(
        message.contains(fragment),
        "{message:?} should contain {fragment:?}"
    );
    message
}

/// Every byte of the SQLite database and its journal files.
pub fn database_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        if let Ok(b) = std::fs::read(dir.join(format!("widemesh.db{suffix}"))) {
            all.extend(b);
        }
    }
    all
}

pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}
