//! Providers, racks and their servers.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use mesh_types::api::{
    CreateProvider, CreateRack, CreatedRack, Provider, Rack, RackRuntime, Role, Server,
};

use super::{Created, JsonBody, audit, created};
use crate::app::AppState;
use crate::auth::Caller;
use crate::domain::racks::{join_token_name, rack_from_request};
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
    let wanted = rack_from_request(&req, provider.kind, state.now())?;
    let mut cluster = None;
    let rack = match (&req.kubeconfig, wanted.runtime) {
        (Some(kubeconfig), RackRuntime::Kubernetes) => {
            let secrets = state
                .store()
                .provider_secrets(provider.name.as_str())
                .await?;
            if provision::makes_servers(provider.kind, &secrets) {
                return Err(ApiError::invalid(format!(
                    "provider {} makes servers, and a Kubernetes rack runs on a cluster that \
                     exists: use a provider that makes none (such as one of kind local) with \
                     --kubeconfig (making the cluster's servers with k3s is not built yet)",
                    provider.name
                )));
            }
            // Checked before anything is stored: a cluster that does not answer, or
            // credentials without the agent's rights, leave nothing behind.
            cluster = Some(crate::kube::check_cluster(kubeconfig).await?);
            state.store().create_kube_rack(&wanted, kubeconfig).await?
        }
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
    if let Some((p, driver)) = provision::rack_driver(&state, rack.provider.as_str()).await? {
        // The rack's one server, made now: the rack goes again if it cannot be made, so that
        // the same command can be run again once the cause is fixed. In a task of its own, so
        // that a client hanging up mid-way leaves a made server or none, never half of one.
        let task = tokio::spawn({
            let (state, rack, join_token) = (state.clone(), rack.clone(), join_token.clone());
            async move { make_or_undo(&state, &p, driver.as_ref(), &rack, &join_token).await }
        });
        let made = task.await.map_err(|e| {
            ApiError::new(
                mesh_types::ErrorCode::Internal,
                format!("making the rack's server failed: {e}"),
            )
        })??;
        detail.push_str(&format!(" server {} on {}", made.name, made.address));
    }
    audit(&state, &caller, "rack.create", rack.name.as_str(), &detail).await;
    Ok(created(CreatedRack { rack, join_token }))
}

/// Makes the rack's server, or removes the rack and its join token again.
async fn make_or_undo(
    state: &AppState,
    p: &provision::Provision,
    driver: &dyn mesh_provider::Driver,
    rack: &Rack,
    join_token: &str,
) -> ApiResult<mesh_provider::MadeServer> {
    let t = std::time::Instant::now();
    let name = provision::server_name(rack.name.as_str(), 1);
    match provision::make_server(p, driver, rack, &name, &rack.size, join_token).await {
        Ok(made) => {
            tracing::info!(rack = %rack.name, server = %made.name, address = %made.address, elapsed = ?t.elapsed(), "made the rack's server: agent installed and started");
            Ok(made)
        }
        Err(e) => {
            state.store().delete_rack(rack.name.as_str()).await?;
            let token = join_token_name(rack.name.as_str());
            match state.store().delete_token(&token).await {
                Ok(()) | Err(mesh_store::StoreError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
            state.tokens().evict_name(&token);
            Err(provision::api_error(e))
        }
    }
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

pub async fn list_servers(
    State(state): State<AppState>,
    Path(rack): Path<String>,
) -> ApiResult<Json<Vec<Server>>> {
    state.store().get_rack(&rack).await?;
    let servers = state.store().list_servers(&rack).await?;
    Ok(Json(state.liveness().view(servers)))
}
