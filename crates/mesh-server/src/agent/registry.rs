//! The pull side of the OCI distribution API, under `/v2/`: what a Kubernetes rack's nodes
//! (containerd) fetch the platform's built images with. See docs/registry.md.
//!
//! - Repositories are `<environment>/<stack>`; a reference is `sha256-<hex>` (the image digest
//!   the desired state names, as a tag), `v<N>` (a deployment version of that stack) or the
//!   manifest's own `sha256:<hex>` digest.
//! - Credentials are a rack's join token (HTTP Basic with any user name, or Bearer), and it
//!   reaches only the images its rack runs or may run: [`super::scope::RackScope`], the same
//!   check as `GET /v1/agent/blobs/{digest}`. Blobs are an image's layers and its config, never
//!   another blob of the store (source archives live there too).
//! - Manifests and configs are generated from the `BuiltImage` ([`mesh_build::distribution`]),
//!   the same bytes every time; generated ones are kept in memory by image digest.
//! - An image on a built-in base (`busybox`, `debian`: buildpack builds, `FROM debian`
//!   Dockerfiles) has that base as its first layer: the control plane makes the base as native
//!   agents do, packs it once into the blob store ([`mesh_build::base_layer`], remembered in
//!   `<data dir>/bases/` by the base's fingerprint) and serves it as a blob of the images of the
//!   repository on that base. One making per base at a time, in a task of its own, so pulls
//!   waiting for it (and other requests) are not held up by each other, and a pull given up
//!   does not stop it ([`base_layer`]).
//! - `widemesh.system/agent` is the image of a Kubernetes rack's agent installed into its
//!   cluster: this control plane's own `mesh` on the Debian base ([`agent_image`]).
//! - Nothing is pushed: other methods answer 405 `UNSUPPORTED`. Every error under `/v2` is the
//!   distribution spec's `{"errors":[{"code","message","detail"}]}` ([`oci_errors`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use mesh_build::blobs::{BlobDir, digest_hex};
use mesh_build::distribution::{self, Distributed, LayerInfo, MANIFEST_MEDIA_TYPE};
use mesh_types::desired::BuiltImage;
use mesh_types::{ErrorCode, Name};

pub mod agent_image;

use super::gateway::{caller_rack, rack_scope};
use super::scope::RackScope;
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::ApiError;

/// The realm clients are told to send Basic credentials for.
pub const REALM: &str = "widemesh";
/// Generated manifests kept in memory; past this the memo starts afresh.
const MEMO_MAX: usize = 512;
/// A base that could not be made is tried again by requests this long after the attempt began.
const BASE_RETRY_AFTER: Duration = Duration::from_secs(10);

/// Whether `path` is under the registry API.
pub fn is_registry_path(path: &str) -> bool {
    path == "/v2" || path.starts_with("/v2/")
}

/// An error in the distribution spec's format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

/// Marks a response whose error body is already the registry's.
#[derive(Clone, Copy)]
struct OciBody;

impl OciError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// The JSON body: `{"errors":[{"code","message","detail"}]}`.
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "errors": [{ "code": self.code, "message": self.message, "detail": null }]
        }))
        .expect("an error serializes")
    }
}

impl IntoResponse for OciError {
    fn into_response(self) -> Response {
        let mut resp = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            self.body(),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED
            && let Ok(v) = HeaderValue::from_str(&format!("Basic realm=\"{REALM}\""))
        {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        resp.extensions_mut().insert(OciBody);
        resp
    }
}

/// The registry's error code for a status the rest of the API answered.
fn code_for(status: StatusCode, method: &Method) -> &'static str {
    let reads = method == Method::GET || method == Method::HEAD;
    match status {
        StatusCode::UNAUTHORIZED => "UNAUTHORIZED",
        StatusCode::FORBIDDEN => "DENIED",
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED if !reads => "UNSUPPORTED",
        StatusCode::NOT_FOUND => "NAME_UNKNOWN",
        StatusCode::METHOD_NOT_ALLOWED => "UNSUPPORTED",
        StatusCode::TOO_MANY_REQUESTS => "TOOMANYREQUESTS",
        StatusCode::BAD_REQUEST => "NAME_INVALID",
        _ => "UNKNOWN",
    }
}

/// Middleware: under `/v2`, every error the rest of the stack answered (authentication, the
/// route policy, no such route, a method other than GET and HEAD) becomes a registry error;
/// a 401 says to send Basic credentials; a write is answered 405 `UNSUPPORTED`.
pub async fn oci_errors(req: Request, next: Next) -> Response {
    if !is_registry_path(req.uri().path()) {
        return next.run(req).await;
    }
    let method = req.method().clone();
    let resp = next.run(req).await;
    let status = resp.status();
    if resp.extensions().get::<OciBody>().is_some()
        || !(status.is_client_error() || status.is_server_error())
    {
        return resp;
    }
    let reads = method == Method::GET || method == Method::HEAD;
    if !reads && status != StatusCode::UNAUTHORIZED {
        return OciError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            format!(
                "{method} is not supported: this registry only serves pulls (GET and HEAD); \
                 images reach it through `mesh deploy`"
            ),
        )
        .into_response();
    }
    let body = axum::body::to_bytes(resp.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let message = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| status.to_string());
    let message = if status == StatusCode::UNAUTHORIZED {
        format!(
            "{message} (the registry takes a rack's join token: HTTP Basic with any user name \
             and the token as password, or `Authorization: Bearer <token>`)"
        )
    } else {
        message
    };
    OciError::new(status, code_for(status, &method), message).into_response()
}

/// `GET /v2/`: the API version check; with valid credentials, 200 and `{}`.
pub async fn base(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, OciError> {
    caller_rack(&state, &caller).await.map_err(denied)?;
    let mut resp = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        "{}",
    )
        .into_response();
    resp.headers_mut().insert(
        "Docker-Distribution-API-Version",
        HeaderValue::from_static("registry/2.0"),
    );
    Ok(resp)
}

fn denied(e: ApiError) -> OciError {
    OciError::new(StatusCode::FORBIDDEN, "DENIED", e.message)
}

fn internal(e: impl std::fmt::Display) -> OciError {
    OciError::new(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", e.to_string())
}

/// What a reference names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// `sha256-<hex>`: the image digest the desired state names.
    Image(String),
    /// `v<N>`: a deployment version.
    Version(String),
    /// `sha256:<hex>`: the manifest's digest.
    Manifest(String),
}

/// Parses a manifest reference; the message lists the forms accepted.
pub fn parse_reference(r: &str) -> Result<Reference, OciError> {
    if digest_hex(r).is_some() {
        return Ok(Reference::Manifest(r.to_string()));
    }
    if let Some(hex) = r.strip_prefix("sha256-")
        && digest_hex(&format!("sha256:{hex}")).is_some()
    {
        return Ok(Reference::Image(format!("sha256:{hex}")));
    }
    if let Some(n) = r.strip_prefix('v')
        && !n.is_empty()
        && n.len() <= 10
        && n.bytes().all(|b| b.is_ascii_digit())
    {
        return Ok(Reference::Version(r.to_string()));
    }
    Err(OciError::new(
        StatusCode::NOT_FOUND,
        "MANIFEST_UNKNOWN",
        format!(
            "reference {r:?} names no manifest: use sha256-<hex> (an image digest), v<N> (a \
             deployment version) or sha256:<hex> (a manifest digest)"
        ),
    ))
}

/// A repository name's environment and stack, or NAME_UNKNOWN.
fn repository(env: &str, stack: &str) -> Result<(Name, Name), OciError> {
    let unknown = || {
        OciError::new(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            format!(
                "repository {env:?}/{stack:?} is unknown: repositories are <environment>/<stack>"
            ),
        )
    };
    Ok((
        Name::parse(env).map_err(|_| unknown())?,
        Name::parse(stack).map_err(|_| unknown())?,
    ))
}

/// The images of `env`/`stack` the caller's rack may pull, with their deployment versions.
async fn images(
    state: &AppState,
    caller: &Caller,
    env: &str,
    stack: &str,
) -> Result<(RackScope, Vec<(String, BuiltImage)>), OciError> {
    let (env, stack) = repository(env, stack)?;
    let rack = caller_rack(state, caller).await.map_err(denied)?;
    let scope = rack_scope(state, &rack, false, true)
        .await
        .map_err(|e| internal(e.message))?;
    // The same answer whether the environment exists or not: a token learns nothing of others.
    if !scope.environments.contains(env.as_str()) {
        return Err(OciError::new(
            StatusCode::FORBIDDEN,
            "DENIED",
            format!(
                "repository {env}/{stack}: environment {env:?} is not placed on rack {:?}; a \
                 join token pulls only its own rack's images",
                scope.rack
            ),
        ));
    }
    let deployments = state
        .store()
        .list_deployments(env.as_str(), stack.as_str())
        .await
        .map_err(|e| match ApiError::from(e) {
            e if e.code == ErrorCode::NotFound => OciError::new(
                StatusCode::NOT_FOUND,
                "NAME_UNKNOWN",
                format!("repository {env}/{stack}: no stack {stack:?} in environment {env:?}"),
            ),
            e => internal(e.message),
        })?;
    let images = deployments
        .into_iter()
        .filter_map(|d| Some((d.version.to_string(), d.image?)))
        .filter(|(_, i)| scope.check_image(i).is_ok())
        .collect();
    Ok((scope, images))
}

static MEMO: LazyLock<Mutex<HashMap<String, Arc<Distributed>>>> = LazyLock::new(Default::default);

/// A base being made or made: its layer, or why it could not be made.
type Making = Shared<BoxFuture<'static, Result<LayerInfo, String>>>;

/// A blob store's root and a base name.
type BaseKey = (PathBuf, String);

/// Per blob store and base name: the making, and when it began.
static BASES: LazyLock<Mutex<HashMap<BaseKey, (Making, Instant)>>> =
    LazyLock::new(Default::default);

/// Where the control plane keeps its copies of the built-in bases and the layers made of
/// them: `<data dir>/bases`, beside the blob store `<data dir>/blobs`.
pub fn bases_dir(blobs: &BlobDir) -> PathBuf {
    match blobs.root().parent() {
        Some(parent) => parent.join("bases"),
        None => blobs.root().join("bases"),
    }
}

/// The layer of built-in base `name` in `blobs`: made once per process in a task of its own
/// (the first call starts it, every other waits for the same one; the task goes on if its
/// callers give up), read back from the file [`mesh_build::base_layer`] keeps after a restart.
/// A failure is answered to every waiter, and tried again after [`BASE_RETRY_AFTER`].
async fn base_layer(blobs: &BlobDir, name: &str) -> Result<LayerInfo, OciError> {
    let key = (blobs.root().to_path_buf(), name.to_string());
    let making = {
        let mut bases = BASES.lock().unwrap_or_else(|e| e.into_inner());
        match bases.get(&key) {
            Some((making, began))
                if !(matches!(making.peek(), Some(Err(_)))
                    && began.elapsed() >= BASE_RETRY_AFTER) =>
            {
                making.clone()
            }
            _ => {
                let (blobs, name) = (blobs.clone(), name.to_string());
                let task = tokio::spawn(async move {
                    let started = Instant::now();
                    let made =
                        mesh_build::base_layer::base_layer(&bases_dir(&blobs), &blobs, &name).await;
                    match &made {
                        Ok(layer) => tracing::info!(
                            base = %name, layer = %layer.digest, size = layer.size,
                            seconds = started.elapsed().as_secs_f64(),
                            "the built-in base is a layer of the registry API"
                        ),
                        Err(e) => tracing::warn!(base = %name, "{e}"),
                    }
                    made.map_err(|e| e.to_string())
                });
                let making = async move {
                    task.await
                        .unwrap_or_else(|e| Err(format!("making the base layer stopped: {e}")))
                }
                .boxed()
                .shared();
                bases.insert(key, (making.clone(), Instant::now()));
                making
            }
        }
    };
    making
        .await
        .map_err(|e| OciError::new(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", e))
}

/// The manifest and config of `image`, generated once per process (the image digest, and the
/// base layer's for an image on a built-in base, cover everything they are made of).
async fn distributed(blobs: &BlobDir, image: &BuiltImage) -> Result<Arc<Distributed>, OciError> {
    let unknown = |e: distribution::DistributionError| {
        OciError::new(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN", e.to_string())
    };
    let base = match distribution::builtin_base(image).map_err(unknown)? {
        Some(name) => Some(base_layer(blobs, name).await?),
        None => None,
    };
    let key = match &base {
        Some(b) => format!("{}+{}", image.digest, b.digest),
        None => image.digest.clone(),
    };
    if let Some(d) = MEMO.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(d.clone());
    }
    let (blobs, img) = (blobs.clone(), image.clone());
    let d =
        tokio::task::spawn_blocking(move || distribution::distribute(&blobs, &img, base.as_ref()))
            .await
            .map_err(internal)?
            .map_err(|e| match e {
                distribution::DistributionError::Io { .. } => internal(e),
                _ => unknown(e),
            })?;
    let d = Arc::new(d);
    let mut memo = MEMO.lock().unwrap_or_else(|e| e.into_inner());
    if memo.len() >= MEMO_MAX {
        memo.clear();
    }
    memo.insert(key, d.clone());
    Ok(d)
}

fn blob_dir(state: &AppState) -> Result<BlobDir, OciError> {
    state
        .deploys()
        .options()
        .map(|o| o.blobs.clone())
        .ok_or_else(|| {
            OciError::new(
                StatusCode::NOT_FOUND,
                "NAME_UNKNOWN",
                "this control plane builds no images",
            )
        })
}

fn content_headers(headers: &mut HeaderMap, media_type: &str, digest: &str, len: u64) {
    if let Ok(v) = HeaderValue::from_str(media_type) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(digest) {
        headers.insert("Docker-Content-Digest", v);
    }
    headers.insert(header::CONTENT_LENGTH, len.into());
}

fn bytes_response(method: &Method, media_type: &str, digest: &str, bytes: Vec<u8>) -> Response {
    let len = bytes.len() as u64;
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(bytes)
    };
    let mut resp = Response::new(body);
    content_headers(resp.headers_mut(), media_type, digest, len);
    resp
}

/// `GET|HEAD /v2/{env}/{stack}/manifests/{reference}`.
pub async fn manifest(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    method: Method,
    Path((env, stack, reference)): Path<(String, String, String)>,
) -> Result<Response, OciError> {
    if agent_image::is_repository(&env, &stack) {
        return agent_image::manifest(&state, &caller, &method, &reference).await;
    }
    let wanted = parse_reference(&reference)?;
    let (_, images) = images(&state, &caller, &env, &stack).await?;
    let blobs = blob_dir(&state)?;
    let unknown = || {
        OciError::new(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            format!("repository {env}/{stack} has no image {reference:?} this rack may pull"),
        )
    };
    let found = match &wanted {
        Reference::Image(digest) => images.iter().find(|(_, i)| &i.digest == digest),
        Reference::Version(v) => images.iter().find(|(version, _)| version == v),
        Reference::Manifest(digest) => {
            let mut hit = None;
            for entry in &images {
                if &distributed(&blobs, &entry.1).await?.manifest_digest == digest {
                    hit = Some(entry);
                    break;
                }
            }
            hit
        }
    };
    let (_, image) = found.ok_or_else(unknown)?;
    let d = distributed(&blobs, image).await?;
    Ok(bytes_response(
        &method,
        MANIFEST_MEDIA_TYPE,
        &d.manifest_digest,
        d.manifest.clone(),
    ))
}

/// `GET|HEAD /v2/{env}/{stack}/blobs/{digest}`: a layer (the built-in base's included) or the
/// config of an image of the repository the caller's rack may pull; nothing else of the blob
/// store.
pub async fn blob(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    method: Method,
    Path((env, stack, digest)): Path<(String, String, String)>,
) -> Result<Response, OciError> {
    if digest_hex(&digest).is_none() {
        return Err(OciError::new(
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
            format!("{digest:?} is not a sha256:<hex> digest"),
        ));
    }
    if agent_image::is_repository(&env, &stack) {
        return agent_image::blob(&state, &caller, &method, &digest).await;
    }
    let (scope, images) = images(&state, &caller, &env, &stack).await?;
    let blobs = blob_dir(&state)?;
    let unknown = || {
        OciError::new(
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
            format!(
                "blob {digest} is not a layer or config of an image of {env}/{stack} this rack may pull"
            ),
        )
    };
    let servable: Vec<&BuiltImage> = images
        .iter()
        .map(|(_, i)| i)
        .filter(|i| distribution::builtin_base(i).is_ok())
        .collect();
    if servable.iter().any(|i| i.layers.contains(&digest)) {
        scope.check_blob(&digest).map_err(|_| unknown())?;
        return layer_response(&method, &blobs, &digest).await;
    }
    for image in servable {
        let d = distributed(&blobs, image).await?;
        if d.config_digest == digest {
            return Ok(bytes_response(
                &method,
                "application/octet-stream",
                &digest,
                d.config.clone(),
            ));
        }
        // The built-in base's layer, to the racks that may pull an image on it from here.
        if image.base.is_some() && d.layers.first().is_some_and(|l| l.digest == digest) {
            return layer_response(&method, &blobs, &digest).await;
        }
    }
    Err(unknown())
}

async fn layer_response(
    method: &Method,
    blobs: &BlobDir,
    digest: &str,
) -> Result<Response, OciError> {
    let gone = || {
        OciError::new(
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
            format!("layer {digest} is missing from the blob store"),
        )
    };
    let path = blobs.path(digest).ok_or_else(gone)?;
    let file = tokio::fs::File::open(&path).await.map_err(|_| gone())?;
    let len = file.metadata().await.map_err(internal)?.len();
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        super::file_stream::body(file)
    };
    let mut resp = Response::new(body);
    content_headers(resp.headers_mut(), "application/octet-stream", digest, len);
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_take_three_forms_and_nothing_else() {
        let hex = "a".repeat(64);
        assert_eq!(
            parse_reference(&format!("sha256-{hex}")),
            Ok(Reference::Image(format!("sha256:{hex}")))
        );
        assert_eq!(
            parse_reference(&format!("sha256:{hex}")),
            Ok(Reference::Manifest(format!("sha256:{hex}")))
        );
        assert_eq!(parse_reference("v12"), Ok(Reference::Version("v12".into())));
        for bad in [
            "latest",
            "v",
            "v1x",
            "sha256-abc",
            "sha256:ABC",
            "../v1",
            "v1/../../etc",
            "sha256:../../etc/passwd",
        ] {
            let e = parse_reference(bad).unwrap_err();
            assert_eq!(
                (e.status, e.code),
                (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
                "{bad}"
            );
            assert!(e.message.contains("sha256-<hex>"), "{}", e.message);
        }
    }

    #[test]
    fn repositories_are_two_names() {
        assert!(repository("shop", "app").is_ok());
        for (e, s) in [
            ("..", "app"),
            ("shop", ".."),
            ("a/b", "c"),
            ("Shop", "app"),
            ("", "x"),
        ] {
            let err = repository(e, s).unwrap_err();
            assert_eq!(err.code, "NAME_UNKNOWN", "{e}/{s}");
        }
    }

    #[test]
    fn errors_are_the_distribution_format() {
        let e = OciError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "send a token");
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(v["errors"][0]["code"], "UNAUTHORIZED");
        assert_eq!(v["errors"][0]["message"], "send a token");
        let resp = e.into_response();
        assert_eq!(
            resp.headers()[header::WWW_AUTHENTICATE],
            "Basic realm=\"widemesh\""
        );
        assert_eq!(code_for(StatusCode::NOT_FOUND, &Method::PUT), "UNSUPPORTED");
        assert_eq!(
            code_for(StatusCode::NOT_FOUND, &Method::GET),
            "NAME_UNKNOWN"
        );
        assert_eq!(code_for(StatusCode::FORBIDDEN, &Method::GET), "DENIED");
        assert!(is_registry_path("/v2/") && is_registry_path("/v2") && !is_registry_path("/v2x"));
    }
}
