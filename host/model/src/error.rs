//! The one error type of the model: a client-facing refusal with the HTTP-ish class it maps to.

use std::fmt;

use serde_json::Value;

/// What kind of refusal an error is; the server maps each to one HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Malformed or invalid input (400).
    BadRequest,
    /// The request names something that does not exist (404).
    NotFound,
    /// The request collides with existing state (409).
    Conflict,
    /// The request tries to change something that may not be changed, e.g. a built-in category (403).
    Forbidden,
}

/// A refusal: what was wrong, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelError {
    pub kind: ErrorKind,
    pub message: String,
    /// Further findings (e.g. every attribute that failed, not only the first).
    pub details: Vec<String>,
}

impl ModelError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ModelError { kind, message: message.into(), details: Vec::new() }
    }
    pub fn bad(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, message)
    }
    pub fn with_details(mut self, details: Vec<String>) -> Self {
        self.details = details;
        self
    }
    /// Prefixes the message with where the error was found, e.g. `resources[1]`.
    pub fn at(mut self, place: impl fmt::Display) -> Self {
        self.message = format!("{place}: {}", self.message);
        self
    }
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ModelError {}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;

/// What kind of JSON value `v` is, for messages ("found a number").
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
