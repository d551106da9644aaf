//! `widemesh.system/agent`: the image a Kubernetes rack's agent runs when it is installed into
//! its cluster (`mesh rack agent-manifest`): the Debian base and this control plane's own `mesh`
//! ([`mesh_build::agent_image`]). Any rack's join token pulls it (the same executable
//! `GET /v1/agent/mesh` gives it). Tags: this control plane's version and `latest`, or the
//! manifest's digest.

use super::*;
use mesh_build::agent_image::{AGENT_REPOSITORY, CA_BUNDLE, agent_image};

/// Whether `env`/`stack` of a registry path is the agent image's repository.
pub fn is_repository(env: &str, stack: &str) -> bool {
    (env, stack) == AGENT_REPOSITORY
}

/// The tag of the agent image of this control plane.
pub fn tag() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// One making of the image at a time (the first pull of a new executable packs it).
static MAKING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The agent image, for a caller holding a rack's join token.
async fn image(state: &AppState, caller: &Caller) -> Result<(BlobDir, BuiltImage), OciError> {
    caller_rack(state, caller).await.map_err(denied)?;
    let blobs = blob_dir(state)?;
    let exe = crate::agent::binary::binary_path(state).map_err(internal)?;
    let _one = MAKING.lock().await;
    let (dir, b) = (bases_dir(&blobs), blobs.clone());
    let started = Instant::now();
    // The CA certificates this control plane's machine trusts, which the agent needs.
    let ca = std::path::Path::new(CA_BUNDLE);
    let ca = ca.exists().then(|| ca.to_path_buf());
    let image = tokio::task::spawn_blocking(move || agent_image(&dir, &exe, ca.as_deref(), &b))
        .await
        .map_err(internal)?
        .map_err(internal)?;
    if started.elapsed() > Duration::from_secs(1) {
        tracing::info!(
            image = %image.digest,
            seconds = started.elapsed().as_secs_f64(),
            "this control plane's mesh is an image of the registry API (widemesh.system/agent)"
        );
    }
    Ok((blobs, image))
}

/// `GET|HEAD /v2/widemesh.system/agent/manifests/{reference}`.
pub async fn manifest(
    state: &AppState,
    caller: &Caller,
    method: &Method,
    reference: &str,
) -> Result<Response, OciError> {
    let unknown = || {
        OciError::new(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            format!(
                "widemesh.system/agent has no image {reference:?}: this control plane serves \
                 its own version, {} (or latest)",
                tag()
            ),
        )
    };
    let by_tag = reference == tag() || reference == "latest";
    if !by_tag && digest_hex(reference).is_none() {
        return Err(unknown());
    }
    let (blobs, image) = image(state, caller).await?;
    let d = distributed(&blobs, &image).await?;
    if !by_tag && reference != d.manifest_digest {
        return Err(unknown());
    }
    Ok(bytes_response(
        method,
        MANIFEST_MEDIA_TYPE,
        &d.manifest_digest,
        d.manifest.clone(),
    ))
}

/// `GET|HEAD /v2/widemesh.system/agent/blobs/{digest}`: its config and layers only.
pub async fn blob(
    state: &AppState,
    caller: &Caller,
    method: &Method,
    digest: &str,
) -> Result<Response, OciError> {
    let (blobs, image) = image(state, caller).await?;
    let d = distributed(&blobs, &image).await?;
    if d.config_digest == digest {
        return Ok(bytes_response(
            method,
            "application/octet-stream",
            digest,
            d.config.clone(),
        ));
    }
    if d.layers.iter().any(|l| l.digest == digest) {
        return layer_response(method, &blobs, digest).await;
    }
    Err(OciError::new(
        StatusCode::NOT_FOUND,
        "BLOB_UNKNOWN",
        format!("blob {digest} is not a layer or config of widemesh.system/agent"),
    ))
}
