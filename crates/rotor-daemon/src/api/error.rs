//! [`ApiError`]: the one error type of the HTTP API, and the one place errors become
//! responses: `{"error": {"code": "...", "message": "..."}}` with a stable `code`.
//!
//! Messages are written for the caller and never carry internals or values: store and I/O
//! details are logged here and answered with a generic `internal` error.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rotor_core::StoreError;
use rotor_engine::EngineError;
use serde::Serialize;

/// An API error: HTTP status, stable code, message for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    /// Logs `detail` and answers a generic 500.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error answering an API request");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the daemon's log has the details",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
            },
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"rotor\""),
            );
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Busy { .. } => Self::new(StatusCode::CONFLICT, "busy", e.to_string()),
            // Contention with another process, not a server fault.
            StoreError::LeaseLost { .. } | StoreError::Ended { .. } | StoreError::Stale { .. } => {
                Self::new(StatusCode::CONFLICT, "contention", e.to_string())
            }
            StoreError::VersionNotFound { .. } | StoreError::RotationNotFound { .. } => {
                Self::not_found(e.to_string())
            }
            StoreError::Locked => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_locked",
                "the store is locked by another process; try again",
            ),
            StoreError::Unavailable(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                e.to_string(),
            ),
            other => Self::internal(other),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let msg = e.to_string();
        match e {
            EngineError::UnknownSecret { .. } => Self::not_found(msg),
            EngineError::ManualKind { .. } => Self::new(StatusCode::CONFLICT, "manual_kind", msg),
            EngineError::NeedsConfirmation { .. } => {
                Self::new(StatusCode::CONFLICT, "needs_confirmation", msg)
            }
            EngineError::NoRotator { .. } => {
                Self::new(StatusCode::NOT_IMPLEMENTED, "no_rotator", msg)
            }
            EngineError::GraceNotOver { .. } => {
                Self::new(StatusCode::CONFLICT, "grace_not_over", msg)
            }
            EngineError::AdminMissing { .. } => {
                Self::new(StatusCode::CONFLICT, "admin_missing", msg)
            }
            // Rotator errors name the target and cause, never a value (the Rotator contract).
            EngineError::Step { .. } => Self::new(StatusCode::BAD_GATEWAY, "rotation_failed", msg),
            // The target was unreachable: the message says what it may still accept.
            EngineError::RollbackOwed { .. } => {
                Self::new(StatusCode::BAD_GATEWAY, "rollback_owed", msg)
            }
            EngineError::Invalid { .. } => Self::new(StatusCode::CONFLICT, "invalid_state", msg),
            EngineError::Nothing { .. } => Self::new(StatusCode::CONFLICT, "nothing_to_do", msg),
            EngineError::Store(s) => s.into(),
            _ => Self::internal(msg),
        }
    }
}
