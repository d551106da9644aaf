//! `PUT /v1/sources/{digest}`: a source archive (or, with `?kind=image`, an image archive),
//! stored content-addressed. The body is streamed to disk and hashed as it comes; a body over the
//! limit or not matching its digest is refused, and a source archive is checked by unpacking it
//! (only regular files and directories inside the tree) before it is kept.
//!
//! Receiving and checking an upload costs disk and memory, so it is bounded: the client declares
//! the archive's size (`?size=BYTES` or `Content-Length`) and no more than that is written; at
//! most [`UploadLimits::slots`](crate::UploadLimits) uploads are received and checked at once
//! (more get 429 with `Retry-After`); an upload that stalls past the idle timeout, or takes
//! longer than the longest allowed, is refused and gives its slot back.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use mesh_build::blobs::digest_hex;
use mesh_types::api::SourceUploaded;
use mesh_types::{ErrorBody, ErrorCode};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::QueryArgs;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};

#[derive(Debug, Deserialize)]
pub struct UploadQuery {
    #[serde(default)]
    kind: Option<String>,
    /// The archive's size in bytes, as the client declares it (else its `Content-Length`).
    #[serde(default)]
    size: Option<u64>,
}

fn internal(what: &str, e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "{what}");
    ApiError::new(
        ErrorCode::Internal,
        format!("{what}; see the control plane's log"),
    )
}

fn mib(bytes: u64) -> u64 {
    bytes / (1024 * 1024)
}

/// The size the client declared: `?size=` or `Content-Length` (the same, when both are sent).
fn declared_size(q: &UploadQuery, headers: &HeaderMap) -> ApiResult<u64> {
    let length = match headers.get(header::CONTENT_LENGTH) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| ApiError::invalid("Content-Length is not a number of bytes"))?,
        ),
    };
    match (q.size, length) {
        (Some(a), Some(b)) if a != b => Err(ApiError::invalid(format!(
            "?size={a} and Content-Length {b} disagree: declare the archive's size once"
        ))),
        (Some(n), _) | (None, Some(n)) => Ok(n),
        (None, None) => Err(ApiError::invalid(
            "declare the archive's size: send ?size=BYTES or a Content-Length (mesh deploy does)",
        )),
    }
}

/// Counts an upload in `mesh_api_upload_checks` while it holds its slot.
struct InProgress(prometheus_client::metrics::gauge::Gauge);

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Scratch directories of concurrent checks (of the same archive, too) never meet.
static CHECKS: AtomicU64 = AtomicU64::new(0);

pub async fn put(
    State(state): State<AppState>,
    Path(digest): Path<String>,
    QueryArgs(q): QueryArgs<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match receive(state, digest, q, headers, body).await {
        Ok(up) => Json(up).into_response(),
        Err(Refused::Api(e)) => e.into_response(),
        Err(Refused::Busy { slots, retry_after }) => {
            let secs = retry_after.as_secs().max(1);
            let body = ErrorBody::new(
                ErrorCode::ResourceExhausted,
                format!(
                    "this control plane is already receiving {slots} uploads, its most at once; try again in {secs}s"
                ),
            );
            (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, secs.to_string())],
                Json(body),
            )
                .into_response()
        }
    }
}

enum Refused {
    Api(ApiError),
    Busy {
        slots: usize,
        retry_after: std::time::Duration,
    },
}

impl From<ApiError> for Refused {
    fn from(e: ApiError) -> Self {
        Refused::Api(e)
    }
}

async fn receive(
    state: AppState,
    digest: String,
    q: UploadQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<SourceUploaded, Refused> {
    let image = match q.kind.as_deref() {
        None | Some("source") => false,
        Some("image") => true,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "kind {other:?} is unknown; use source or image"
            ))
            .into());
        }
    };
    if digest_hex(&digest).is_none() {
        return Err(ApiError::invalid(format!(
            "{digest:?} is not a digest: use sha256:<64 lowercase hex digits> of the archive"
        ))
        .into());
    }
    let opts = state
        .deploys()
        .options()
        .cloned()
        .ok_or_else(|| ApiError::not_available("this control plane keeps no uploads"))?;
    let max = opts.max_upload_bytes;
    let limits = opts.uploads.clone();
    let declared = declared_size(&q, &headers)?;
    if declared > max {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "the archive ({declared} bytes) is larger than this control plane's limit of {} MiB; shrink it (add build outputs and dependencies to .meshignore) or raise --max-upload-size",
                mib(max)
            ),
        )
        .into());
    }
    // Held until the upload is stored or refused, its check included.
    let Some(slot) = state.deploys().upload_slot() else {
        return Err(Refused::Busy {
            slots: limits.slots,
            retry_after: limits.retry_after,
        });
    };
    let gauge = state.metrics().upload_checks.clone();
    gauge.inc();
    let in_progress = InProgress(gauge);

    let mut tmp = opts
        .blobs
        .temp_file()
        .map_err(|e| internal("cannot store the upload", e))?;
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    let mut stream = body.into_data_stream();
    let deadline = tokio::time::Instant::now() + limits.max_duration;
    loop {
        let idle_until = (tokio::time::Instant::now() + limits.idle_timeout).min(deadline);
        let next = match tokio::time::timeout_at(idle_until, stream.next()).await {
            Ok(next) => next,
            Err(_) if idle_until >= deadline => {
                return Err(ApiError::invalid(format!(
                    "the upload took longer than {}s, the longest this control plane waits for one; try again on a faster connection",
                    limits.max_duration.as_secs()
                ))
                .into());
            }
            Err(_) => {
                return Err(ApiError::invalid(format!(
                    "the upload stalled: nothing arrived for {}s after {size} of its {declared} bytes",
                    limits.idle_timeout.as_secs()
                ))
                .into());
            }
        };
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|e| ApiError::invalid(format!("reading the upload: {e}")))?;
        let after = size + chunk.len() as u64;
        if after > declared {
            return Err(ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!(
                    "the upload is longer than the {declared} bytes it declared; declare its real size"
                ),
            )
            .into());
        }
        size = after;
        hasher.update(&chunk);
        tmp.write_all(&chunk)
            .map_err(|e| internal("cannot store the upload", e))?;
    }
    if size < declared {
        return Err(ApiError::invalid(format!(
            "the upload ended after {size} of the {declared} bytes it declared: it was cut on the way"
        ))
        .into());
    }
    let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
    if actual != digest {
        return Err(ApiError::invalid(format!(
            "the upload hashes to {actual}, not {digest}: it was changed or cut on the way"
        ))
        .into());
    }
    let files = if image {
        0
    } else {
        let path = tmp.path().to_path_buf();
        let n = CHECKS.fetch_add(1, Ordering::Relaxed);
        let scratch = opts.work_dir.join(format!("check-{}-{n}", &actual[7..23]));
        let _ = std::fs::create_dir_all(&opts.work_dir);
        let unpack_limits = mesh_build::Limits {
            max_archive_bytes: max,
            max_unpacked_bytes: limits.max_unpacked_bytes,
            ..mesh_build::Limits::default()
        };
        let checked = tokio::task::spawn_blocking(move || {
            let bytes = std::fs::read(&path)?;
            let dest = scratch.join("src");
            let _ = std::fs::remove_dir_all(&scratch);
            std::fs::create_dir_all(&scratch)?;
            let r = mesh_build::unpack(&bytes, &dest, &unpack_limits);
            let _ = std::fs::remove_dir_all(&scratch);
            Ok::<_, std::io::Error>(r)
        })
        .await
        .map_err(|e| internal("checking the upload failed", e))?
        .map_err(|e| internal("checking the upload failed", e))?;
        let stats = checked.map_err(|e| match e {
            mesh_build::ArchiveError::UnpackedTooLarge { max } => ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!(
                    "the source archive unpacks to more than this control plane's limit of {} MiB; shrink it (add build outputs and dependencies to .meshignore)",
                    mib(max)
                ),
            ),
            e => ApiError::invalid(format!("the source archive was refused: {e}")),
        })?;
        stats.files
    };
    opts.blobs
        .put_temp(tmp, &actual)
        .map_err(|e| internal("cannot store the upload", e))?;
    drop(in_progress);
    drop(slot);
    Ok(SourceUploaded {
        digest: actual,
        size,
        files,
    })
}
