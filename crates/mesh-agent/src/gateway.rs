//! The agent's side of `/v1/agent/*` on the control plane.

use futures_util::{Stream, StreamExt};
use mesh_types::agent::{LogAck, LogBatch, RegisterServer, StatusReport};
use mesh_types::api::Server;
use mesh_types::desired::WatchEvent;
use reqwest::Client;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("control plane at {url}: {source}")]
    Http { url: String, source: reqwest::Error },
    #[error("control plane answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("watch stream: {0}")]
    Decode(String),
}

#[derive(Debug, Clone)]
pub struct Gateway {
    http: Client,
    url: String,
    token: String,
}

impl Gateway {
    pub fn new(url: &str, token: &str) -> Self {
        // No overall timeout: the watch stream stays open; each call below bounds itself.
        let http = Client::builder()
            .connect_timeout(std::time::Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Self {
            http,
            url: url.trim_end_matches('/').to_string(),
            token: token.to_string(),
        }
    }

    async fn post<B: serde::Serialize, T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, GatewayError> {
        let url = format!("{}{path}", self.url);
        let err = |source| GatewayError::Http {
            url: self.url.clone(),
            source,
        };
        let resp = self
            .http
            .post(&url)
            .bearer_auth(&self.token)
            .timeout(std::time::Duration::from_secs(10))
            .json(body)
            .send()
            .await
            .map_err(err)?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            return Err(GatewayError::Status {
                status: status.as_u16(),
                body,
            });
        }
        resp.json().await.map_err(err)
    }

    pub async fn register(&self, req: &RegisterServer) -> Result<Server, GatewayError> {
        self.post("/v1/agent/register", req).await
    }

    pub async fn status(&self, report: &StatusReport) -> Result<(), GatewayError> {
        self.post::<_, serde_json::Value>("/v1/agent/status", report)
            .await
            .map(|_| ())
    }

    pub async fn logs(&self, batch: &LogBatch) -> Result<LogAck, GatewayError> {
        self.post("/v1/agent/logs", batch).await
    }

    /// The rack's desired state: a snapshot at once, then one per change, with keep-alives.
    pub async fn watch(
        &self,
    ) -> Result<impl Stream<Item = Result<WatchEvent, GatewayError>> + use<>, GatewayError> {
        let resp = self
            .http
            .get(format!("{}/v1/agent/watch", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|source| GatewayError::Http {
                url: self.url.clone(),
                source,
            })?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            return Err(GatewayError::Status {
                status: status.as_u16(),
                body,
            });
        }
        let url = self.url.clone();
        let mut buf: Vec<u8> = Vec::new();
        Ok(resp.bytes_stream().flat_map(move |chunk| {
            let mut out = Vec::new();
            match chunk {
                Err(source) => out.push(Err(GatewayError::Http {
                    url: url.clone(),
                    source,
                })),
                Ok(bytes) => {
                    buf.extend_from_slice(&bytes);
                    while let Some(i) = buf.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=i).collect();
                        out.push(
                            serde_json::from_slice::<WatchEvent>(&line)
                                .map_err(|e| GatewayError::Decode(e.to_string())),
                        );
                    }
                }
            }
            futures_util::stream::iter(out)
        }))
    }
}
