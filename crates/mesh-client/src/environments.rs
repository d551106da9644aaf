//! Routes of environments and stacks: placement, stack settings, stack config, deployments,
//! logs and instances.

use mesh_types::Version;
use mesh_types::api::{
    CreateDeployment, CreateEnvironment, CreateStack, Deployment, Environment, EnvironmentDetails,
    Instance, RollbackRequest, SourceUploaded, Stack, UpdateEnvironment, UpdateStack,
};
use mesh_types::config::{ConfigChange, ConfigVar};
use serde::Serialize;

use crate::client::{Client, JsonLines};
use crate::error::Result;

/// Which log lines to read: the last `since` (`30s`, `15m`, `1h`; the server's default is one
/// minute), of one stack, service or instance, and with `follow` the new ones as they come.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LogQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Only lines stored after the line with this id (each line the API sends carries its
    /// `id`): how a follower resumes where it stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub follow: bool,
}

impl Client {
    /// `GET /v1/environments`
    pub async fn list_environments(&self) -> Result<Vec<Environment>> {
        self.get(&["v1", "environments"]).await
    }

    /// `POST /v1/environments`
    pub async fn create_environment(&self, req: &CreateEnvironment) -> Result<Environment> {
        self.post(&["v1", "environments"], req).await
    }

    /// `GET /v1/environments/{env}`: the environment with its stacks, services and endpoints.
    pub async fn environment(&self, env: &str) -> Result<EnvironmentDetails> {
        self.get(&["v1", "environments", env]).await
    }

    /// `PATCH /v1/environments/{env}`: places it on these racks, the newest last.
    pub async fn update_environment(
        &self,
        env: &str,
        req: &UpdateEnvironment,
    ) -> Result<Environment> {
        self.patch(&["v1", "environments", env], req).await
    }

    /// `DELETE /v1/environments/{env}`: the environment and everything in it.
    pub async fn delete_environment(&self, env: &str) -> Result<()> {
        self.delete(&["v1", "environments", env]).await
    }

    /// `GET /v1/environments/{env}/logs?since=&stack=&service=&instance=&follow=`: the output
    /// of the environment's instances, one JSON line each, oldest first.
    pub async fn logs(&self, env: &str, query: &LogQuery) -> Result<JsonLines> {
        let resp = self
            .get_response(&["v1", "environments", env, "logs"], query)
            .await?;
        Ok(JsonLines::new(resp, self))
    }

    /// `GET /v1/environments/{env}/instances`
    pub async fn list_instances(&self, env: &str) -> Result<Vec<Instance>> {
        self.get(&["v1", "environments", env, "instances"]).await
    }

    /// `GET /v1/environments/{env}/stacks`
    pub async fn list_stacks(&self, env: &str) -> Result<Vec<Stack>> {
        self.get(&["v1", "environments", env, "stacks"]).await
    }

    /// `POST /v1/environments/{env}/stacks`
    pub async fn create_stack(&self, env: &str, req: &CreateStack) -> Result<Stack> {
        self.post(&["v1", "environments", env, "stacks"], req).await
    }

    /// `GET /v1/environments/{env}/stacks/{stack}`
    pub async fn stack(&self, env: &str, stack: &str) -> Result<Stack> {
        self.get(&["v1", "environments", env, "stacks", stack])
            .await
    }

    /// `PATCH /v1/environments/{env}/stacks/{stack}`
    pub async fn update_stack(&self, env: &str, stack: &str, req: &UpdateStack) -> Result<Stack> {
        self.patch(&["v1", "environments", env, "stacks", stack], req)
            .await
    }

    /// `DELETE /v1/environments/{env}/stacks/{stack}`
    pub async fn delete_stack(&self, env: &str, stack: &str) -> Result<()> {
        self.delete(&["v1", "environments", env, "stacks", stack])
            .await
    }

    /// `GET /v1/environments/{env}/stacks/{stack}/config`: every variable of the stack, in
    /// every scope.
    pub async fn stack_config(&self, env: &str, stack: &str) -> Result<Vec<ConfigVar>> {
        self.get(&["v1", "environments", env, "stacks", stack, "config"])
            .await
    }

    /// `PATCH /v1/environments/{env}/stacks/{stack}/config`
    pub async fn change_stack_config(
        &self,
        env: &str,
        stack: &str,
        change: &ConfigChange,
    ) -> Result<Vec<ConfigVar>> {
        self.patch(
            &["v1", "environments", env, "stacks", stack, "config"],
            change,
        )
        .await
    }

    /// `GET /v1/environments/{env}/stacks/{stack}/deployments`
    pub async fn list_deployments(&self, env: &str, stack: &str) -> Result<Vec<Deployment>> {
        self.get(&["v1", "environments", env, "stacks", stack, "deployments"])
            .await
    }

    /// `POST /v1/environments/{env}/stacks/{stack}/deployments`: starts a deployment of an
    /// uploaded source or image archive.
    pub async fn create_deployment(
        &self,
        env: &str,
        stack: &str,
        req: &CreateDeployment,
    ) -> Result<Deployment> {
        self.post(
            &["v1", "environments", env, "stacks", stack, "deployments"],
            req,
        )
        .await
    }

    /// `POST /v1/environments/{env}/stacks/{stack}/rollback`: a new deployment running an
    /// earlier one's image (the one before the current when `version` is none).
    pub async fn rollback(
        &self,
        env: &str,
        stack: &str,
        version: Option<Version>,
    ) -> Result<Deployment> {
        self.post(
            &["v1", "environments", env, "stacks", stack, "rollback"],
            &RollbackRequest { version },
        )
        .await
    }

    /// `PUT /v1/sources/{digest}`: uploads a source archive (`kind` `source`) or an image
    /// archive (`image`) of `size` bytes, stored under its SHA-256 digest.
    pub async fn upload(
        &self,
        digest: &str,
        kind: &str,
        size: u64,
        body: impl Into<reqwest::Body>,
    ) -> Result<SourceUploaded> {
        let size = size.to_string();
        let resp = self
            .send(
                self.request(reqwest::Method::PUT, &["v1", "sources", digest])
                    .map(|r| r.query(&[("kind", kind), ("size", &size)]).body(body)),
            )
            .await?;
        self.decode(resp).await
    }

    /// `GET .../deployments/{version}/log?follow=true`: the log so far, then more as it comes,
    /// until the deployment ends; read it line by line.
    pub async fn follow_deployment_log(
        &self,
        env: &str,
        stack: &str,
        version: Version,
    ) -> Result<JsonLines> {
        let v = version.to_string();
        let resp = self
            .get_response(
                &[
                    "v1",
                    "environments",
                    env,
                    "stacks",
                    stack,
                    "deployments",
                    &v,
                    "log",
                ],
                &[("follow", "true")],
            )
            .await?;
        Ok(JsonLines::new(resp, self))
    }

    /// `GET /v1/environments/{env}/stacks/{stack}/deployments/{version}`
    pub async fn deployment(&self, env: &str, stack: &str, version: Version) -> Result<Deployment> {
        let v = version.to_string();
        self.get(&[
            "v1",
            "environments",
            env,
            "stacks",
            stack,
            "deployments",
            &v,
        ])
        .await
    }

    /// `GET /v1/environments/{env}/stacks/{stack}/deployments/{version}/log`: the stored output.
    pub async fn deployment_log(&self, env: &str, stack: &str, version: Version) -> Result<String> {
        let v = version.to_string();
        self.get_text(&[
            "v1",
            "environments",
            env,
            "stacks",
            stack,
            "deployments",
            &v,
            "log",
        ])
        .await
    }
}
