//! The control plane's side of Kubernetes racks: before it makes one, the cluster must answer
//! and grant every right the agent uses; before it places an environment on one, the namespace
//! the agent would make must not be someone else's. The checks are `mesh_kube::check`'s; this
//! module turns their errors into API answers, bounded in time.

use std::time::Duration;

use mesh_kube::KubeError;
use mesh_types::api::{Rack, RackRuntime};

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};

/// The longest a cluster check may take before the request fails with what is known.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

fn api_error(e: KubeError) -> ApiError {
    match e {
        KubeError::Kubeconfig(_) => ApiError::invalid(e.to_string()),
        _ => ApiError::precondition(e.to_string()),
    }
}

async fn bounded<T>(
    what: &str,
    f: impl std::future::Future<Output = Result<T, KubeError>>,
) -> ApiResult<T> {
    tokio::time::timeout(CHECK_TIMEOUT, f)
        .await
        .map_err(|_| {
            ApiError::precondition(format!(
                "{what}: the cluster did not answer within {}s",
                CHECK_TIMEOUT.as_secs()
            ))
        })?
        .map_err(api_error)
}

/// The kubeconfig is usable, the cluster answers and grants the agent's rights; the answer
/// names the cluster's version.
pub async fn check_cluster(kubeconfig: &str) -> ApiResult<String> {
    mesh_kube::client::validate(kubeconfig).map_err(api_error)?;
    bounded("checking the cluster", async {
        let client = mesh_kube::client::connect(kubeconfig).await?;
        mesh_kube::check::preflight(&client).await
    })
    .await
}

/// For a Kubernetes rack, the namespace of `environment` is free or already this rack's.
pub async fn check_namespace(state: &AppState, rack: &Rack, environment: &str) -> ApiResult<()> {
    if rack.runtime != RackRuntime::Kubernetes {
        return Ok(());
    }
    let Some(kubeconfig) = state.store().rack_kubeconfig(rack.name.as_str()).await? else {
        return Err(ApiError::precondition(format!(
            "rack {} runs on a cluster its provider is still making: its first server has not sent the cluster's kubeconfig yet (wait until `mesh rack servers {}` lists its agent)",
            rack.name, rack.name
        )));
    };
    bounded(
        &format!("checking namespace of {environment} on rack {}", rack.name),
        async {
            let client = mesh_kube::client::connect_checked(&kubeconfig).await?;
            mesh_kube::check::namespace_free(&client, rack.name.as_str(), environment).await
        },
    )
    .await
}
