//! Routes of the platform itself: identity, tokens, the audit log, providers, racks, servers.

use mesh_types::api::{
    CreateProvider, CreateRack, CreateToken, CreatedRack, CreatedToken, Event, MadeServer,
    Provider, Rack, Replacement, ResizeRack, Server, Token, UpgradeRack, WhoAmI,
};
use serde::Serialize;

use crate::client::Client;
use crate::error::Result;

#[derive(Serialize)]
struct EventsQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<u32>,
}

impl Client {
    /// `GET /healthz`: whether the control plane answers at all (no token needed).
    pub async fn healthz(&self) -> Result<String> {
        self.get_text(&["healthz"]).await
    }

    /// `GET /metrics`: OpenMetrics text.
    pub async fn metrics(&self) -> Result<String> {
        self.get_text(&["metrics"]).await
    }

    /// `GET /v1/openapi.json`: the API contract.
    pub async fn openapi(&self) -> Result<serde_json::Value> {
        self.get(&["v1", "openapi.json"]).await
    }

    /// `GET /v1/whoami`
    pub async fn whoami(&self) -> Result<WhoAmI> {
        self.get(&["v1", "whoami"]).await
    }

    /// `GET /v1/tokens`
    pub async fn list_tokens(&self) -> Result<Vec<Token>> {
        self.get(&["v1", "tokens"]).await
    }

    /// `POST /v1/tokens`: the secret is in the answer only.
    pub async fn create_token(&self, req: &CreateToken) -> Result<CreatedToken> {
        self.post(&["v1", "tokens"], req).await
    }

    /// `DELETE /v1/tokens/{token}`
    pub async fn delete_token(&self, name: &str) -> Result<()> {
        self.delete(&["v1", "tokens", name]).await
    }

    /// `GET /v1/events?limit=`: the audit log, newest first.
    pub async fn list_events(&self, limit: Option<u32>) -> Result<Vec<Event>> {
        self.get_query(&["v1", "events"], &EventsQuery { limit })
            .await
    }

    /// `GET /v1/providers`
    pub async fn list_providers(&self) -> Result<Vec<Provider>> {
        self.get(&["v1", "providers"]).await
    }

    /// `POST /v1/providers`
    pub async fn create_provider(&self, req: &CreateProvider) -> Result<Provider> {
        self.post(&["v1", "providers"], req).await
    }

    /// `GET /v1/providers/{provider}`
    pub async fn provider(&self, name: &str) -> Result<Provider> {
        self.get(&["v1", "providers", name]).await
    }

    /// `DELETE /v1/providers/{provider}`
    pub async fn delete_provider(&self, name: &str) -> Result<()> {
        self.delete(&["v1", "providers", name]).await
    }

    /// `GET /v1/racks`
    pub async fn list_racks(&self) -> Result<Vec<Rack>> {
        self.get(&["v1", "racks"]).await
    }

    /// `POST /v1/racks`: the join token is in the answer only.
    pub async fn create_rack(&self, req: &CreateRack) -> Result<CreatedRack> {
        self.post(&["v1", "racks"], req).await
    }

    /// `GET /v1/racks/{rack}`
    pub async fn rack(&self, name: &str) -> Result<Rack> {
        self.get(&["v1", "racks", name]).await
    }

    /// `DELETE /v1/racks/{rack}`
    pub async fn delete_rack(&self, name: &str) -> Result<()> {
        self.delete(&["v1", "racks", name]).await
    }

    /// `POST /v1/racks/{rack}/upgrade`: starts replacing the rack's server.
    pub async fn upgrade_rack(&self, name: &str, req: &UpgradeRack) -> Result<Replacement> {
        self.post(&["v1", "racks", name, "upgrade"], req).await
    }

    /// `POST /v1/racks/{rack}/resize`: starts replacing the rack's server with one of a size.
    pub async fn resize_rack(&self, name: &str, req: &ResizeRack) -> Result<Replacement> {
        self.post(&["v1", "racks", name, "resize"], req).await
    }

    /// `GET /v1/racks/{rack}/replacement`: the server replacement under way, if any.
    pub async fn replacement(&self, name: &str) -> Result<Option<Replacement>> {
        match self.get(&["v1", "racks", name, "replacement"]).await {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.code() == Some(mesh_types::ErrorCode::NotFound) => {
                // The rack itself must exist: that NotFound is the caller's to see.
                self.rack(name).await?;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// `GET /v1/racks/{rack}/servers`
    pub async fn list_servers(&self, rack: &str) -> Result<Vec<Server>> {
        self.get(&["v1", "racks", rack, "servers"]).await
    }

    /// The servers the rack's provider made, and how far each is.
    pub async fn list_made_servers(&self, rack: &str) -> Result<Vec<MadeServer>> {
        self.get(&["v1", "racks", rack, "made-servers"]).await
    }
}
