//! Extractors whose rejections use the API's error body instead of axum's plain text, for the
//! handlers of `api/` and of the agent gateway alike.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use mesh_types::ErrorCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON request body.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(JsonRejection::JsonDataError(e)) => {
                Err(ApiError::invalid(format!("request body: {}", inner(&e))))
            }
            Err(JsonRejection::JsonSyntaxError(e)) => Err(ApiError::invalid(format!(
                "request body is not valid JSON: {}",
                inner(&e)
            ))),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::invalid(
                "send the request body as JSON with `Content-Type: application/json`",
            )),
            Err(JsonRejection::BytesRejection(e))
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    format!(
                        "request body is larger than {} bytes",
                        crate::routes::MAX_BODY_BYTES
                    ),
                ))
            }
            Err(e) => Err(ApiError::invalid(format!(
                "request body: {}",
                e.body_text()
            ))),
        }
    }
}

/// The innermost message of an error chain: serde's own words, without axum's preamble.
fn inner(e: &dyn std::error::Error) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Query string arguments.
pub struct QueryArgs<T>(pub T);

impl<S, T> FromRequestParts<S> for QueryArgs<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(Self(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                Err(ApiError::invalid(format!("query string: {}", inner(&e))))
            }
            Err(e) => Err(ApiError::invalid(e.body_text())),
        }
    }
}
