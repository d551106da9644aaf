//! One error type for every handler, mapped to the wire error body and an HTTP status in one place.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mesh_store::StoreError;
use mesh_types::{ErrorBody, ErrorCode, NameError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }

    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn precondition(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::FailedPrecondition, message)
    }

    pub fn not_available(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotImplemented, message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(_) => ApiError::new(ErrorCode::NotFound, e.to_string()),
            StoreError::AlreadyExists(m) => ApiError::new(ErrorCode::AlreadyExists, m),
            StoreError::FailedPrecondition(m) => ApiError::new(ErrorCode::FailedPrecondition, m),
            StoreError::Invalid(m) => ApiError::invalid(m),
            other => {
                // Internal details stay in the server log, not in the response.
                tracing::error!(error = %other, "store failure");
                ApiError::new(
                    ErrorCode::Internal,
                    "internal error in the control plane's store; see its log",
                )
            }
        }
    }
}

impl From<NameError> for ApiError {
    fn from(e: NameError) -> Self {
        ApiError::invalid(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(ErrorBody::new(self.code, self.message))).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
