//! Newline-delimited JSON responses: the agents' watch, `logs`, and runs stream one JSON value
//! per line as it happens.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// One value and its line break, as a chunk of a streamed body.
pub fn line<T: Serialize>(value: &T) -> Result<Bytes, Infallible> {
    // Serializing the API's own types cannot fail.
    let mut v = serde_json::to_vec(value).unwrap_or_default();
    v.push(b'\n');
    Ok(Bytes::from(v))
}

/// A streamed NDJSON answer that no cache may keep.
pub fn response(body: Body) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}
