//! The agent's side of `/v1/agent/*`, through the typed API client.

use mesh_client::{Client, JsonLines};
use mesh_types::agent::{LogAck, LogBatch, RegisterServer, StatusReport, TaskResult};
use mesh_types::api::Server;
use mesh_types::desired::WatchEvent;

pub use mesh_client::Error as GatewayError;

#[derive(Debug, Clone)]
pub struct Gateway {
    client: Client,
}

/// The rack's desired state as it arrives: a snapshot at once, then one per change, with
/// keep-alives and tasks between.
pub struct Watch {
    lines: JsonLines,
}

impl Watch {
    pub async fn next(&mut self) -> Result<Option<WatchEvent>, GatewayError> {
        let Some(line) = self.lines.next_line().await? else {
            return Ok(None);
        };
        serde_json::from_str(&line).map(Some).map_err(|e| {
            GatewayError::Other(format!(
                "the watch stream sent a line this agent does not understand: {e}"
            ))
        })
    }
}

impl Gateway {
    pub fn new(url: &str, token: &str) -> Result<Self, GatewayError> {
        Ok(Self {
            client: Client::new(url, token)?,
        })
    }

    pub async fn register(&self, req: &RegisterServer) -> Result<Server, GatewayError> {
        self.client.register_server(req).await
    }

    /// The token's rack: its runtime and, for a Kubernetes rack, the cluster's kubeconfig.
    pub async fn rack(&self) -> Result<mesh_types::agent::AgentRack, GatewayError> {
        self.client.agent_rack().await
    }

    pub async fn status(&self, report: &StatusReport) -> Result<(), GatewayError> {
        self.client.report_status(report).await.map(|_| ())
    }

    pub async fn logs(&self, batch: &LogBatch) -> Result<LogAck, GatewayError> {
        self.client.ship_logs(batch).await
    }

    pub async fn task_result(&self, task: &str, result: &TaskResult) -> Result<(), GatewayError> {
        self.client.report_task_result(task, result).await
    }

    /// The desired state of this server (`server`, as registered) of the token's rack.
    pub async fn watch(&self, server: &mesh_types::Name) -> Result<Watch, GatewayError> {
        Ok(Watch {
            lines: self.client.watch(Some(server.as_str())).await?,
        })
    }

    /// The rack's own document, for a process that is none of its servers (a Kubernetes rack's
    /// router on one of its nodes).
    pub async fn watch_rack(&self) -> Result<Watch, GatewayError> {
        Ok(Watch {
            lines: self.client.watch(None).await?,
        })
    }
}

#[async_trait::async_trait]
impl crate::images::BlobSource for Gateway {
    async fn fetch(&self, digest: &str, dest: &std::path::Path) -> Result<(), String> {
        use tokio::io::AsyncWriteExt;
        let mut download = self.client.blob(digest).await.map_err(|e| e.to_string())?;
        let mut file = tokio::fs::File::create(dest)
            .await
            .map_err(|e| format!("{}: {e}", dest.display()))?;
        while let Some(chunk) = download.chunk().await.map_err(|e| e.to_string())? {
            file.write_all(&chunk)
                .await
                .map_err(|e| format!("{}: {e}", dest.display()))?;
        }
        file.flush().await.map_err(|e| e.to_string())
    }
}
