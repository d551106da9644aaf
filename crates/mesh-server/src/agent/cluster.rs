//! `PUT /v1/agent/kubeconfig`: the first server of a Kubernetes rack whose servers a provider
//! made (k3s, `mesh_provider::k3s`) hands over its cluster. The control plane checks the cluster
//! as it checks one given with `--kubeconfig`, installs the rack's agent and routers into it
//! (`mesh_kube::install`, the objects of `mesh rack agent-manifest`), and keeps the kubeconfig
//! sealed on the rack. Only the rack's own join token reaches it.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::{Extension, Json};
use mesh_types::agent::ClusterTaken;
use mesh_types::api::{Rack, RackRuntime};

use super::gateway::caller_rack;
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::provision;

/// The routers' addresses on every node of a made cluster.
const HTTP_LISTEN: &str = "0.0.0.0:80";
const HTTPS_LISTEN: &str = "0.0.0.0:443";
/// The longest the agent's install may take before the server is told to try again.
const INSTALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Whether a rack takes a kubeconfig from its first server: a Kubernetes rack whose servers
/// a provider makes, without a different kubeconfig already.
pub fn may_take(
    rack: &Rack,
    made_by_provider: bool,
    current: Option<&str>,
    offered: &str,
) -> Result<Taking, ApiError> {
    let name = rack.name.as_str();
    if rack.runtime != RackRuntime::Kubernetes {
        return Err(ApiError::precondition(format!(
            "rack {name} runs the {} runtime: only a Kubernetes rack has a cluster",
            rack.runtime
        )));
    }
    if !made_by_provider {
        return Err(ApiError::precondition(format!(
            "rack {name}'s cluster was given with --kubeconfig, not made by its provider: it takes no kubeconfig from a server"
        )));
    }
    if offered.trim().is_empty() {
        return Err(ApiError::invalid(
            "the body must be the cluster's kubeconfig (YAML)",
        ));
    }
    match current {
        None => Ok(Taking::New),
        Some(c) if c == offered => Ok(Taking::Again),
        Some(_) => Err(ApiError::new(
            mesh_types::ErrorCode::AlreadyExists,
            format!(
                "rack {name} has its cluster's kubeconfig already, and this one differs: a rack's cluster is made once (delete the rack and create it again to start over)"
            ),
        )),
    }
}

/// What taking an offered kubeconfig does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taking {
    /// The first: check the cluster, keep it, install the agent.
    New,
    /// The one already kept (the server did not hear the answer): install the agent again.
    Again,
}

pub async fn kubeconfig(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: String,
) -> ApiResult<Json<ClusterTaken>> {
    let rack = caller_rack(&state, &caller).await?;
    let name = rack.name.to_string();
    let made = provision::rack_driver(&state, rack.provider.as_str())
        .await?
        .map(|(p, _)| p);
    let current = state.store().rack_kubeconfig(&name).await?;
    let taking = may_take(&rack, made.is_some(), current.as_deref(), &body)?;
    let Some(p) = made else {
        return Err(ApiError::precondition(
            "this control plane makes no servers",
        ));
    };
    // Only a kubeconfig that names its server over https with the cluster's CA, and nothing
    // the control plane would read or run; then the cluster must answer with the agent's
    // rights (the server offers again until it does).
    mesh_kube::client::validate_made(&body).map_err(|e| ApiError::invalid(e.to_string()))?;
    let version = crate::kube::check_cluster(&body).await?;
    let token = crate::auth::bearer_header(&headers).ok_or_else(|| {
        ApiError::new(
            mesh_types::ErrorCode::Unauthenticated,
            "missing bearer token",
        )
    })?;
    // Taken once, in one write: of two offers racing, one is the rack's; the other is refused
    // before anything is installed into its cluster.
    let mut taken = false;
    if taking == Taking::New {
        taken = state.store().set_rack_kubeconfig(&name, &body).await?;
        if !taken {
            let now = state.store().rack_kubeconfig(&name).await?;
            may_take(&rack, true, now.as_deref(), &body)?;
        }
    }
    if taken {
        // In the audit log (`mesh events`), as the API's changes are.
        let detail = format!("cluster {version} made by provider {}", rack.provider);
        if let Err(e) = state
            .store()
            .record_event(&caller.name, "rack.cluster", &name, &detail, state.now())
            .await
        {
            tracing::error!(error = %e, rack = %name, "could not write the audit log");
        }
    }
    // Installed after the kubeconfig is kept: should this fail, the server's next offer (the
    // same kubeconfig) installs again.
    let install = mesh_kube::install::AgentInstall {
        rack: name.clone(),
        api_url: p.advertise_url.clone(),
        // The token the server was given: the installed agent joins with the same one.
        join_token: token,
        tag: "latest".into(),
        http_listen: Some(HTTP_LISTEN.into()),
        https_listen: Some(HTTPS_LISTEN.into()),
    };
    let installed = tokio::time::timeout(INSTALL_TIMEOUT, async {
        let client = mesh_kube::client::connect_checked(&body).await?;
        mesh_kube::install::install(&client, &install).await
    })
    .await
    .map_err(|_| {
        ApiError::precondition(format!(
            "installing the agent into rack {name}'s cluster took over {}s",
            INSTALL_TIMEOUT.as_secs()
        ))
    })?;
    installed.map_err(|e| ApiError::precondition(e.to_string()))?;
    tracing::info!(rack = %name, %version, "took the cluster a provider made; its agent is installed");
    state.notify_change();
    Ok(Json(ClusterTaken {
        rack: rack.name,
        version,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_types::api::RackState;

    fn rack(runtime: RackRuntime) -> Rack {
        Rack {
            name: "k3".parse().unwrap(),
            provider: "hz".parse().unwrap(),
            region: "fsn1".parse().unwrap(),
            size: "cx22".into(),
            domain: mesh_types::Domain::parse("k3.test").unwrap(),
            address: "203.0.113.9".into(),
            state: RackState::Ready,
            created_at: 1,
            runtime,
        }
    }

    #[test]
    fn only_a_made_clusters_first_kubeconfig_is_taken_and_the_same_one_again() {
        let k = rack(RackRuntime::Kubernetes);
        assert_eq!(may_take(&k, true, None, "a: b").unwrap(), Taking::New);
        assert_eq!(
            may_take(&k, true, Some("a: b"), "a: b").unwrap(),
            Taking::Again
        );
        let e = may_take(&k, true, Some("a: b"), "a: c").unwrap_err();
        assert_eq!(e.code, mesh_types::ErrorCode::AlreadyExists);
        assert!(e.message.contains("differs"), "{}", e.message);
        let e = may_take(&k, false, None, "a: b").unwrap_err();
        assert!(
            e.message.contains("given with --kubeconfig"),
            "{}",
            e.message
        );
        let e = may_take(&rack(RackRuntime::Native), true, None, "a: b").unwrap_err();
        assert!(
            e.message.contains("only a Kubernetes rack"),
            "{}",
            e.message
        );
        let e = may_take(&k, true, None, " \n").unwrap_err();
        assert_eq!(e.code, mesh_types::ErrorCode::InvalidArgument);
    }
}
