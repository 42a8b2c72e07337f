//! The one application error type: every failure of a request becomes an [`ApiError`] with the
//! status it maps to. Client mistakes are 4xx with a message that names what was wrong; server
//! faults are 500 with the detail logged, not sent.

use hyper::StatusCode;
use ocni_model::{ErrorKind, ModelError};
use ocni_store::StoreError;

use crate::route::Allowed;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub details: Vec<String>,
    /// Response headers the error carries (`Allow` for 405, `WWW-Authenticate` for 401,
    /// `Retry-After` for 429).
    pub headers: Vec<(&'static str, String)>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into(), details: Vec::new(), headers: Vec::new() }
    }
    pub fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }
    /// 405: `method` is not one of the methods `allowed` (with the `Allow` header).
    pub fn method(method: &hyper::Method, allowed: Allowed) -> Self {
        let Allowed { what, methods } = allowed;
        Self::new(StatusCode::METHOD_NOT_ALLOWED, format!("{method} is not supported on {what}; allowed: {methods}"))
            .with_header("Allow", methods)
    }
    /// The same error, answered with one more response header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "{context}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error; the server log has the details")
    }
}

impl From<ModelError> for ApiError {
    fn from(e: ModelError) -> Self {
        let status = match e.kind {
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        };
        ApiError { status, message: e.message, details: e.details, headers: Vec::new() }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            // Not the server's bug: the cluster has no quorum (or this node cannot follow it).
            StoreError::Unavailable(why) => {
                tracing::warn!(error = %why, "store unavailable");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("the store is unavailable: {why}; try again"))
                    .with_header("Retry-After", "1".to_string())
            }
            e => ApiError::internal("store failure", e),
        }
    }
}
