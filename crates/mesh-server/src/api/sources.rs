//! `PUT /v1/sources/{digest}`: a source archive (or, with `?kind=image`, an image archive),
//! stored content-addressed. The body is streamed to disk and hashed as it comes; a body over the
//! limit or not matching its digest is refused, and a source archive is checked by unpacking it
//! (only regular files and directories inside the tree) before it is kept.

use std::io::Write;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use futures_util::StreamExt;
use mesh_build::blobs::digest_hex;
use mesh_types::ErrorCode;
use mesh_types::api::SourceUploaded;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::QueryArgs;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};

#[derive(Debug, Deserialize)]
pub struct UploadQuery {
    #[serde(default)]
    kind: Option<String>,
}

fn internal(what: &str, e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "{what}");
    ApiError::new(
        ErrorCode::Internal,
        format!("{what}; see the control plane's log"),
    )
}

pub async fn put(
    State(state): State<AppState>,
    Path(digest): Path<String>,
    QueryArgs(q): QueryArgs<UploadQuery>,
    body: Body,
) -> ApiResult<Json<SourceUploaded>> {
    let image = match q.kind.as_deref() {
        None | Some("source") => false,
        Some("image") => true,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "kind {other:?} is unknown; use source or image"
            )));
        }
    };
    if digest_hex(&digest).is_none() {
        return Err(ApiError::invalid(format!(
            "{digest:?} is not a digest: use sha256:<64 lowercase hex digits> of the archive"
        )));
    }
    let opts = state
        .deploys()
        .options()
        .cloned()
        .ok_or_else(|| ApiError::not_available("this control plane keeps no uploads"))?;
    let max = opts.max_upload_bytes;
    let mut tmp = opts
        .blobs
        .temp_file()
        .map_err(|e| internal("cannot store the upload", e))?;
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::invalid(format!("reading the upload: {e}")))?;
        size += chunk.len() as u64;
        if size > max {
            return Err(ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!(
                    "the archive is larger than this control plane's limit of {} MiB; shrink it (add build outputs and dependencies to .meshignore) or raise --max-upload-size",
                    max / (1024 * 1024)
                ),
            ));
        }
        hasher.update(&chunk);
        tmp.write_all(&chunk)
            .map_err(|e| internal("cannot store the upload", e))?;
    }
    let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
    if actual != digest {
        return Err(ApiError::invalid(format!(
            "the upload hashes to {actual}, not {digest}: it was changed or cut on the way"
        )));
    }
    let files = if image {
        0
    } else {
        let path = tmp.path().to_path_buf();
        let scratch = opts.work_dir.join(format!("check-{}", &actual[7..23]));
        let _ = std::fs::create_dir_all(&opts.work_dir);
        let limits = mesh_build::Limits {
            max_archive_bytes: max,
            ..mesh_build::Limits::default()
        };
        let checked = tokio::task::spawn_blocking(move || {
            let bytes = std::fs::read(&path)?;
            let dest = scratch.join("src");
            let _ = std::fs::remove_dir_all(&scratch);
            std::fs::create_dir_all(&scratch)?;
            let r = mesh_build::unpack(&bytes, &dest, &limits);
            let _ = std::fs::remove_dir_all(&scratch);
            Ok::<_, std::io::Error>(r)
        })
        .await
        .map_err(|e| internal("checking the upload failed", e))?
        .map_err(|e| internal("checking the upload failed", e))?;
        let stats = checked
            .map_err(|e| ApiError::invalid(format!("the source archive was refused: {e}")))?;
        stats.files
    };
    opts.blobs
        .put_temp(tmp, &actual)
        .map_err(|e| internal("cannot store the upload", e))?;
    Ok(Json(SourceUploaded {
        digest: actual,
        size,
        files,
    }))
}
