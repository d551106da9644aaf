//! Routes of the agent gateway (`/v1/agent`), called with a rack's join token.

use mesh_types::agent::{AgentRack, LogAck, LogBatch, RegisterServer, StatusReport};
use mesh_types::api::Server;

use crate::client::{Client, JsonLines};
use crate::error::Result;

impl Client {
    /// `GET /v1/agent/rack`: the token's rack, its runtime and (a Kubernetes rack's) cluster.
    pub async fn agent_rack(&self) -> Result<AgentRack> {
        self.get(&["v1", "agent", "rack"]).await
    }

    /// `POST /v1/agent/register`: announces this server in the token's rack (also a heartbeat).
    pub async fn register_server(&self, req: &RegisterServer) -> Result<Server> {
        self.post(&["v1", "agent", "register"], req).await
    }

    /// `GET /v1/agent/watch`: the rack's desired state, as `WatchEvent` lines (a snapshot at
    /// once, another after every change, keep-alives between), for the token's rack or, with
    /// `server`, for that server of it (which differs while the rack's server is replaced).
    pub async fn watch(&self, server: Option<&str>) -> Result<JsonLines> {
        let query: Vec<(&str, &str)> = server.map(|s| ("server", s)).into_iter().collect();
        let resp = self.get_response(&["v1", "agent", "watch"], &query).await?;
        Ok(JsonLines::new(resp, self))
    }

    /// `POST /v1/agent/status`: every instance of one server as observed now.
    pub async fn report_status(&self, report: &StatusReport) -> Result<serde_json::Value> {
        self.post(&["v1", "agent", "status"], report).await
    }

    /// `POST /v1/agent/tasks/{task}/result`: how a task handed to this agent ended.
    pub async fn report_task_result(
        &self,
        task: &str,
        result: &mesh_types::agent::TaskResult,
    ) -> Result<()> {
        self.post_response(&["v1", "agent", "tasks", task, "result"], result)
            .await
            .map(|_| ())
    }

    /// `POST /v1/agent/logs`: ships instance output; lines at or below an instance's last kept
    /// offset are counted as duplicates, so resending is safe.
    pub async fn ship_logs(&self, batch: &LogBatch) -> Result<LogAck> {
        self.post(&["v1", "agent", "logs"], batch).await
    }

    /// `GET /v1/agent/blobs/{digest}`: an image layer; read it with [`Download::chunk`].
    pub async fn blob(&self, digest: &str) -> Result<Download> {
        let resp = self
            .get_response(&["v1", "agent", "blobs", digest], &[] as &[(&str, &str)])
            .await?;
        Ok(Download {
            resp,
            shown: self.base_url().to_string(),
        })
    }
}

/// A body read piece by piece.
pub struct Download {
    resp: reqwest::Response,
    shown: String,
}

impl std::fmt::Debug for Download {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download")
            .field("from", &self.shown)
            .finish()
    }
}

impl Download {
    /// The next piece, or `None` at the end.
    pub async fn chunk(&mut self) -> Result<Option<Vec<u8>>> {
        self.resp
            .chunk()
            .await
            .map(|c| c.map(|b| b.to_vec()))
            .map_err(|e| {
                crate::Error::Other(format!("download from {} broke off: {e}", self.shown))
            })
    }
}
