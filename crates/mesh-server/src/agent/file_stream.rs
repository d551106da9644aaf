//! A file sent as a response body, read in 256 KiB chunks: image layers and configs, and the
//! control plane's own binary.

use axum::body::Body;
use axum::response::Response;
use futures_util::stream;
use tokio::io::AsyncReadExt;

/// The contents of `file` as a streamed body.
pub(crate) fn body(file: tokio::fs::File) -> Body {
    Body::from_stream(stream::unfold(Some(file), |f| async move {
        let mut f = f?;
        let mut buf = vec![0u8; 256 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(buf), Some(f)))
            }
            Err(e) => Some((Err(e), None)),
        }
    }))
}

/// `file` as `application/octet-stream`, with its length when known.
pub(crate) fn octet_stream(file: tokio::fs::File, len: Option<u64>) -> Response {
    let mut resp = Response::new(body(file));
    let headers = resp.headers_mut();
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/octet-stream"),
    );
    if let Some(len) = len {
        headers.insert(axum::http::header::CONTENT_LENGTH, len.into());
    }
    resp
}
