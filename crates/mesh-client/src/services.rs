//! Routes of services: definition, scale and service-level config.

use mesh_types::api::{CreateService, ScaleService, Service, UpdateService};
use mesh_types::config::{ConfigChange, ConfigVar, ResolvedConfig};
use serde::Serialize;

use crate::client::Client;
use crate::error::Result;

#[derive(Serialize)]
struct ResolvedQuery<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    rack: Option<&'a str>,
}

impl Client {
    /// `GET /v1/environments/{env}/services`: the services of every stack.
    pub async fn list_environment_services(&self, env: &str) -> Result<Vec<Service>> {
        self.get(&["v1", "environments", env, "services"]).await
    }

    /// `GET /v1/environments/{env}/stacks/{stack}/services`
    pub async fn list_services(&self, env: &str, stack: &str) -> Result<Vec<Service>> {
        self.get(&["v1", "environments", env, "stacks", stack, "services"])
            .await
    }

    /// `POST /v1/environments/{env}/stacks/{stack}/services`
    pub async fn create_service(
        &self,
        env: &str,
        stack: &str,
        req: &CreateService,
    ) -> Result<Service> {
        self.post(
            &["v1", "environments", env, "stacks", stack, "services"],
            req,
        )
        .await
    }

    /// `GET /v1/environments/{env}/stacks/{stack}/services/{service}`
    pub async fn service(&self, env: &str, stack: &str, service: &str) -> Result<Service> {
        self.get(&[
            "v1",
            "environments",
            env,
            "stacks",
            stack,
            "services",
            service,
        ])
        .await
    }

    /// `PATCH /v1/environments/{env}/stacks/{stack}/services/{service}`
    pub async fn update_service(
        &self,
        env: &str,
        stack: &str,
        service: &str,
        req: &UpdateService,
    ) -> Result<Service> {
        self.patch(
            &[
                "v1",
                "environments",
                env,
                "stacks",
                stack,
                "services",
                service,
            ],
            req,
        )
        .await
    }

    /// `DELETE /v1/environments/{env}/stacks/{stack}/services/{service}`
    pub async fn delete_service(&self, env: &str, stack: &str, service: &str) -> Result<()> {
        self.delete(&[
            "v1",
            "environments",
            env,
            "stacks",
            stack,
            "services",
            service,
        ])
        .await
    }

    /// `POST /v1/environments/{env}/stacks/{stack}/services/{service}/scale`
    pub async fn scale_service(
        &self,
        env: &str,
        stack: &str,
        service: &str,
        req: &ScaleService,
    ) -> Result<Service> {
        self.post(
            &[
                "v1",
                "environments",
                env,
                "stacks",
                stack,
                "services",
                service,
                "scale",
            ],
            req,
        )
        .await
    }

    /// `GET /v1/environments/{env}/stacks/{stack}/services/{service}/config`: the variables set
    /// on the service itself (its overrides included).
    pub async fn service_config(
        &self,
        env: &str,
        stack: &str,
        service: &str,
    ) -> Result<Vec<ConfigVar>> {
        self.get(&[
            "v1",
            "environments",
            env,
            "stacks",
            stack,
            "services",
            service,
            "config",
        ])
        .await
    }

    /// `PATCH /v1/environments/{env}/stacks/{stack}/services/{service}/config`
    pub async fn change_service_config(
        &self,
        env: &str,
        stack: &str,
        service: &str,
        change: &ConfigChange,
    ) -> Result<Vec<ConfigVar>> {
        self.patch(
            &[
                "v1",
                "environments",
                env,
                "stacks",
                stack,
                "services",
                service,
                "config",
            ],
            change,
        )
        .await
    }

    /// `GET /v1/environments/{env}/stacks/{stack}/services/{service}/config/resolved?rack=`:
    /// the environment variables the service gets on a rack (the environment's first by
    /// default).
    pub async fn resolved_config(
        &self,
        env: &str,
        stack: &str,
        service: &str,
        rack: Option<&str>,
    ) -> Result<ResolvedConfig> {
        self.get_query(
            &[
                "v1",
                "environments",
                env,
                "stacks",
                stack,
                "services",
                service,
                "config",
                "resolved",
            ],
            &ResolvedQuery { rack },
        )
        .await
    }
}

impl Client {
    /// `POST /v1/environments/{env}/stacks/{stack}/runs`: a one-off instance, answered as
    /// `RunEvent` lines (started, its output, its exit).
    pub async fn run(
        &self,
        env: &str,
        stack: &str,
        req: &mesh_types::api::RunRequest,
    ) -> Result<crate::client::JsonLines> {
        let resp = self
            .post_response(&["v1", "environments", env, "stacks", stack, "runs"], req)
            .await?;
        Ok(crate::client::JsonLines::new(resp, self))
    }

    /// `POST /v1/environments/{env}/instances/{instance}/exec`
    pub async fn exec(
        &self,
        env: &str,
        instance: &str,
        req: &mesh_types::api::ExecRequest,
    ) -> Result<mesh_types::agent::TaskResult> {
        self.post(
            &["v1", "environments", env, "instances", instance, "exec"],
            req,
        )
        .await
    }
}
