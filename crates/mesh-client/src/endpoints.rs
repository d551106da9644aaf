//! Routes of endpoints, their routes, and certificates.

use mesh_types::api::{
    Certificate, CreateEndpoint, Endpoint, PublishService, UnpublishService, UploadCertificate,
};

use crate::client::Client;
use crate::error::Result;

impl Client {
    /// `GET /v1/environments/{env}/endpoints`
    pub async fn list_endpoints(&self, env: &str) -> Result<Vec<Endpoint>> {
        self.get(&["v1", "environments", env, "endpoints"]).await
    }

    /// `POST /v1/environments/{env}/endpoints`: a custom domain; the answer holds the DNS
    /// records to create.
    pub async fn create_endpoint(&self, env: &str, req: &CreateEndpoint) -> Result<Endpoint> {
        self.post(&["v1", "environments", env, "endpoints"], req)
            .await
    }

    /// `GET /v1/environments/{env}/endpoints/{domain}`
    pub async fn endpoint(&self, env: &str, domain: &str) -> Result<Endpoint> {
        self.get(&["v1", "environments", env, "endpoints", domain])
            .await
    }

    /// `DELETE /v1/environments/{env}/endpoints/{domain}`
    /// `PATCH /v1/environments/{env}/endpoints/{domain}`: the endpoint's settings.
    pub async fn update_endpoint(
        &self,
        env: &str,
        domain: &str,
        req: &mesh_types::api::UpdateEndpoint,
    ) -> Result<Endpoint> {
        self.patch(&["v1", "environments", env, "endpoints", domain], req)
            .await
    }

    pub async fn delete_endpoint(&self, env: &str, domain: &str) -> Result<()> {
        self.delete(&["v1", "environments", env, "endpoints", domain])
            .await
    }

    /// `POST /v1/environments/{env}/endpoints/{domain}/publish`
    pub async fn publish(&self, env: &str, domain: &str, req: &PublishService) -> Result<Endpoint> {
        self.post(
            &["v1", "environments", env, "endpoints", domain, "publish"],
            req,
        )
        .await
    }

    /// `POST /v1/environments/{env}/endpoints/{domain}/unpublish`
    pub async fn unpublish(
        &self,
        env: &str,
        domain: &str,
        req: &UnpublishService,
    ) -> Result<Endpoint> {
        self.post(
            &["v1", "environments", env, "endpoints", domain, "unpublish"],
            req,
        )
        .await
    }

    /// `GET /v1/environments/{env}/certificates`
    pub async fn list_certificates(&self, env: &str) -> Result<Vec<Certificate>> {
        self.get(&["v1", "environments", env, "certificates"]).await
    }

    /// `POST /v1/environments/{env}/certificates`: PEM texts in order, the private key last.
    pub async fn upload_certificate(
        &self,
        env: &str,
        req: &UploadCertificate,
    ) -> Result<Certificate> {
        self.post(&["v1", "environments", env, "certificates"], req)
            .await
    }

    /// `DELETE /v1/environments/{env}/certificates/{fingerprint}` (a unique prefix is enough).
    pub async fn delete_certificate(&self, env: &str, fingerprint: &str) -> Result<()> {
        self.delete(&["v1", "environments", env, "certificates", fingerprint])
            .await
    }
}
