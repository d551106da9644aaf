//! Providers, racks and their servers.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use mesh_types::api::{
    CreateProvider, CreateRack, CreatedRack, CreatedServer, MadeServer, MadeServerState, Provider,
    ProviderKind, Rack, RackRuntime, Role, Server,
};

use super::{Created, JsonBody, audit, created};
use crate::app::AppState;
use crate::auth::Caller;
use crate::domain::racks::{self, join_token_name, rack_from_request, servers_to_make};
use crate::error::{ApiError, ApiResult};
use crate::provision;
use crate::tokens;

/// Longest provider secret value (an SSH private key fits easily).
const MAX_SECRET_LEN: usize = 64 * 1024;

pub async fn list_providers(State(state): State<AppState>) -> ApiResult<Json<Vec<Provider>>> {
    Ok(Json(state.store().list_providers().await?))
}

pub async fn get_provider(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Provider>> {
    Ok(Json(state.store().get_provider(&name).await?))
}

pub async fn create_provider(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(req): JsonBody<CreateProvider>,
) -> ApiResult<Created<Provider>> {
    for (k, v) in &req.secrets {
        if k.is_empty()
            || k.len() > 255
            || !k
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(ApiError::invalid(format!(
                "provider secret name {k:?} is invalid: use letters, digits, '-' and '_'"
            )));
        }
        if v.is_empty() || v.len() > MAX_SECRET_LEN {
            return Err(ApiError::invalid(format!(
                "provider secret {k} must be 1 to {MAX_SECRET_LEN} bytes long"
            )));
        }
    }
    provision::check_provider(req.kind, &req.secrets).map_err(ApiError::invalid)?;
    let provider = state.store().create_provider(&req, state.now()).await?;
    audit(
        &state,
        &caller,
        "provider.create",
        req.name.as_str(),
        req.kind.as_str(),
    )
    .await;
    Ok(created(provider))
}

pub async fn delete_provider(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    state.store().delete_provider(&name).await?;
    // Its driver's state (host keys seen, servers made: none, as no rack is left) goes too, so
    // a provider added again under this name trusts its servers' keys afresh.
    if let Some(p) = state.provision() {
        provision::forget(&p, &name);
    }
    audit(&state, &caller, "provider.delete", &name, "").await;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_racks(State(state): State<AppState>) -> ApiResult<Json<Vec<Rack>>> {
    Ok(Json(state.store().list_racks().await?))
}

pub async fn get_rack(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Rack>> {
    Ok(Json(state.store().get_rack(&name).await?))
}

pub async fn create_rack(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(req): JsonBody<CreateRack>,
) -> ApiResult<Created<CreatedRack>> {
    let provider = state.store().get_provider(req.provider.as_str()).await?;
    let secrets = state
        .store()
        .provider_secrets(provider.name.as_str())
        .await?;
    let makes = provision::makes_servers(provider.kind, &secrets);
    let wanted = rack_from_request(&req, provider.kind, makes, state.now())?;
    let count = servers_to_make(&req, makes)?;
    if wanted.runtime == RackRuntime::Kubernetes && makes && provider.kind == ProviderKind::Ssh {
        return Err(ApiError::invalid(format!(
            "provider {} is an ssh pool, which runs native racks: a Kubernetes rack's cluster is made by a cloud provider (aws, hetzner), or given with --kubeconfig and a provider of kind local",
            provider.name
        )));
    }
    let mut cluster = None;
    let rack = match &req.kubeconfig {
        Some(kubeconfig) if wanted.runtime == RackRuntime::Kubernetes => {
            // Checked before anything is stored: a cluster that does not answer, or
            // credentials without the agent's rights, leave nothing behind.
            cluster = Some(crate::kube::check_cluster(kubeconfig).await?);
            state.store().create_kube_rack(&wanted, kubeconfig).await?
        }
        // A native rack, or a Kubernetes rack whose cluster the provider makes: its first
        // server sends the kubeconfig (`PUT /v1/agent/kubeconfig`).
        _ => state.store().create_rack(&wanted).await?,
    };
    let join_token = tokens::generate();
    state
        .store()
        .create_token(
            &join_token_name(rack.name.as_str()),
            Role::Agent,
            Some(&rack.name),
            &tokens::hash(&join_token),
        )
        .await?;
    let mut detail = format!(
        "provider {} region {} size {} runtime {}",
        rack.provider, rack.region, rack.size, rack.runtime
    );
    if let Some(version) = cluster {
        detail.push_str(&format!(" cluster {version}"));
    }
    let mut servers = Vec::new();
    if let Some((p, driver)) = provision::rack_driver(&state, rack.provider.as_str()).await? {
        // The rack's servers, made now: the rack goes again if one cannot be made, so that
        // the same command can be run again once the cause is fixed. In a task of its own, so
        // that a client hanging up mid-way leaves made servers or none, never half of one.
        let kube =
            (rack.runtime == RackRuntime::Kubernetes).then(|| provision::k3s_release(&secrets));
        let task = tokio::spawn({
            let (state, rack, join_token) = (state.clone(), rack.clone(), join_token.clone());
            async move {
                make_or_undo(&state, &p, driver.as_ref(), &rack, &join_token, count, kube).await
            }
        });
        let made = task.await.map_err(|e| {
            ApiError::new(
                mesh_types::ErrorCode::Internal,
                format!("making the rack's servers failed: {e}"),
            )
        })??;
        for m in made {
            detail.push_str(&format!(" server {} on {}", m.name, m.address));
            servers.push(CreatedServer {
                name: m.name,
                address: m.address,
            });
        }
    }
    audit(&state, &caller, "rack.create", rack.name.as_str(), &detail).await;
    Ok(created(CreatedRack {
        rack,
        join_token,
        servers,
    }))
}

/// Makes the rack's `count` servers (a Kubernetes rack's: k3s from `k3s_release`, the first
/// running the cluster's server and the others joining it), or removes what was made, the
/// rack and its join token again.
async fn make_or_undo(
    state: &AppState,
    p: &provision::Provision,
    driver: &dyn mesh_provider::Driver,
    rack: &Rack,
    join_token: &str,
    count: u32,
    k3s_release: Option<String>,
) -> ApiResult<Vec<mesh_provider::MadeServer>> {
    let t = std::time::Instant::now();
    // A made cluster's secrets, kept only in its servers' user data (a replacement node is not
    // made yet, see docs/providers.md): the server token on the first server only, the agent
    // token (which lets a node join, nothing more) on every one.
    let (server_token, agent_token) = (tokens::generate(), tokens::generate());
    let mut made: Vec<mesh_provider::MadeServer> = Vec::new();
    for n in 1..=count {
        let name = provision::server_name(rack.name.as_str(), n);
        let kube = k3s_release
            .as_ref()
            .map(|release| mesh_provider::k3s::KubeNode {
                agent_token: agent_token.clone(),
                server_token: made.is_empty().then(|| server_token.clone()),
                release: release.clone(),
                join: made.first().map(|first| first.host.clone()),
            });
        match provision::make_server(p, driver, rack, &name, &rack.size, join_token, kube).await {
            Ok(m) => {
                tracing::info!(rack = %rack.name, server = %m.name, address = %m.address, elapsed = ?t.elapsed(), "made a server of the rack");
                made.push(m);
            }
            Err(e) => {
                // Every server the provider holds for the rack goes: those made, and one the
                // cloud made while its request failed. What cannot be deleted is said.
                let left = undo_servers(driver, rack.name.as_str(), &made).await;
                state.store().delete_rack(rack.name.as_str()).await?;
                let token = join_token_name(rack.name.as_str());
                match state.store().delete_token(&token).await {
                    Ok(()) | Err(mesh_store::StoreError::NotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
                state.tokens().evict_name(&token);
                let e = provision::api_error(e);
                let mut message = if count > 1 {
                    format!("server {name}: {}", e.message)
                } else {
                    e.message
                };
                if !left.is_empty() {
                    message.push_str(&format!(
                        " (and these servers of the rack could not be deleted, delete them with the provider's console: {})",
                        left.join(", ")
                    ));
                }
                return Err(ApiError::new(e.code, message));
            }
        }
    }
    Ok(made)
}

pub async fn delete_rack(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let rack = state.store().get_rack(&name).await?;
    if let Some((_, driver)) = provision::rack_driver(&state, rack.provider.as_str()).await? {
        // The servers go first, only when no environment is on the rack (the store checks
        // again when the rack goes).
        let envs = state.store().list_environments().await?;
        if let Some(env) = envs
            .iter()
            .find(|e| e.racks.contains(&rack.name) || e.leaving.iter().any(|l| l.rack == rack.name))
        {
            return Err(ApiError::precondition(format!(
                "rack {name:?} hosts environment {:?}: move it off the rack first (`mesh env update {} --rack ...`)",
                env.name.as_str(),
                env.name.as_str()
            )));
        }
        let made = driver.list().await.map_err(provision::api_error)?;
        for server in made.iter().filter(|m| m.rack == name) {
            match driver.delete(&server.name).await {
                Ok(()) | Err(mesh_provider::ProviderError::NotFound(_)) => {}
                Err(e) => return Err(provision::api_error(e)),
            }
        }
    }
    state.store().delete_rack(&name).await?;
    let token = join_token_name(&name);
    match state.store().delete_token(&token).await {
        Ok(()) | Err(mesh_store::StoreError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    state.tokens().evict_name(&token);
    audit(&state, &caller, "rack.delete", &name, "").await;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/racks/{rack}/made-servers`: the servers the rack's provider made, and how far each
/// is (its agent; a cluster's node). Empty when its provider makes none.
pub async fn list_made_servers(
    State(state): State<AppState>,
    Path(rack): Path<String>,
) -> ApiResult<Json<Vec<MadeServer>>> {
    let r = state.store().get_rack(&rack).await?;
    let Some((_, driver)) = provision::rack_driver(&state, r.provider.as_str()).await? else {
        return Ok(Json(Vec::new()));
    };
    let mut made: Vec<_> = driver
        .list()
        .await
        .map_err(provision::api_error)?
        .into_iter()
        .filter(|m| m.rack == rack)
        .collect();
    made.sort_by_key(|m| server_number(&m.name));
    let state_of: Box<dyn Fn(&str) -> MadeServerState + Send> = match r.runtime {
        RackRuntime::Native => {
            let agents = state
                .liveness()
                .view(state.store().list_servers(&rack).await?);
            Box::new(move |name| {
                racks::native_server_state(
                    agents
                        .iter()
                        .find(|a| a.name.as_str() == name)
                        .map(|a| a.state),
                )
            })
        }
        RackRuntime::Kubernetes => {
            let seen = match state.store().rack_kubeconfig(&rack).await? {
                None => racks::ClusterSeen::NotHandedOver,
                Some(kubeconfig) => {
                    let asked = tokio::time::timeout(std::time::Duration::from_secs(10), async {
                        let client = mesh_kube::client::connect_checked(&kubeconfig).await?;
                        mesh_kube::check::nodes(&client).await
                    })
                    .await;
                    match asked {
                        Ok(Ok(nodes)) => racks::ClusterSeen::Nodes(nodes),
                        Ok(Err(e)) => {
                            tracing::warn!(rack, error = %e, "cannot list the cluster's nodes");
                            racks::ClusterSeen::Unreachable
                        }
                        Err(_) => racks::ClusterSeen::Unreachable,
                    }
                }
            };
            Box::new(move |name| racks::node_state(&seen, name))
        }
    };
    Ok(Json(
        made.into_iter()
            .map(|m| MadeServer {
                state: state_of(&m.name),
                name: m.name,
                address: m.address,
            })
            .collect(),
    ))
}

/// Deletes every server `driver` holds for `rack` (listed, and those in `made`); the names of
/// those that could not be deleted.
async fn undo_servers(
    driver: &dyn mesh_provider::Driver,
    rack: &str,
    made: &[mesh_provider::MadeServer],
) -> Vec<String> {
    let mut names: Vec<String> = made.iter().map(|m| m.name.clone()).collect();
    let mut left = Vec::new();
    match driver.list().await {
        Ok(listed) => {
            for m in listed.into_iter().filter(|m| m.rack == rack) {
                if !names.contains(&m.name) {
                    names.push(m.name);
                }
            }
        }
        Err(e) => {
            tracing::warn!(rack, error = %e, "cannot list the provider's servers to undo a rack");
            left.push(format!(
                "any server labelled with rack {rack} (the provider's servers could not be listed: {e})"
            ));
        }
    }
    for name in names {
        match driver.delete(&name).await {
            Ok(()) | Err(mesh_provider::ProviderError::NotFound(_)) => {}
            Err(e) => {
                tracing::warn!(rack, server = %name, error = %e, "cannot delete a server made for a rack that could not be made");
                left.push(name);
            }
        }
    }
    left
}

/// The number of server `<rack>-<n>`, for listing a rack's servers in the order made.
fn server_number(name: &str) -> (u64, String) {
    let n = name
        .rsplit_once('-')
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(u64::MAX);
    (n, name.to_string())
}

pub async fn list_servers(
    State(state): State<AppState>,
    Path(rack): Path<String>,
) -> ApiResult<Json<Vec<Server>>> {
    state.store().get_rack(&rack).await?;
    let servers = state.store().list_servers(&rack).await?;
    Ok(Json(state.liveness().view(servers)))
}
