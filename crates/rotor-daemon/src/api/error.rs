//! [`ApiError`]: the one error type of the HTTP API, and the one place errors become
//! responses: `{"error": {"code": "...", "message": "..."}}` with a stable `code`.
//!
//! Messages are written for the caller and never carry internals or values: store and I/O
//! details, lease holders (host, PID) and rotation targets (host:port, OS errors) are logged
//! here and answered without them. Codes are stable and listed in README ("API errors").

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
        match &e {
            // The lease holder's host and PID help an attacker map the fleet: log them, answer
            // with the secret and what to do.
            StoreError::Busy { secret, .. } => {
                tracing::warn!(error = %e, "API: secret busy");
                Self::new(
                    StatusCode::CONFLICT,
                    "busy",
                    format!(
                        "secret {secret} is busy: a rotation is in progress; wait for it, or run `rotor resume {secret}` / `rotor abort {secret}`"
                    ),
                )
            }
            StoreError::Stale { secret, .. } => {
                tracing::warn!(error = %e, "API: stale rotation");
                Self::new(
                    StatusCode::CONFLICT,
                    "stale",
                    format!(
                        "secret {secret} was rotated by another process meanwhile; nothing was done (read it again and retry if still needed)"
                    ),
                )
            }
            StoreError::LeaseLost { rotation, .. } => {
                tracing::warn!(error = %e, "API: lease lost");
                Self::new(
                    StatusCode::CONFLICT,
                    "lease_lost",
                    format!(
                        "rotation {rotation} was taken over by another process; this request stopped touching it"
                    ),
                )
            }
            // The rotation ended or moved on meanwhile: contention, not a server fault.
            StoreError::Ended { .. } => {
                tracing::warn!(error = %e, "API: rotation ended meanwhile");
                Self::new(
                    StatusCode::CONFLICT,
                    "contention",
                    "the rotation ended meanwhile (another process finished or failed it); nothing was done",
                )
            }
            StoreError::VersionNotFound { .. } | StoreError::RotationNotFound { .. } => {
                Self::not_found(e.to_string())
            }
            StoreError::Locked => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_locked",
                "the store is locked by another process; try again",
            ),
            StoreError::Unavailable(_) => {
                tracing::warn!(error = %e, "API: store unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the store is unavailable for now (an outage or throttling); try again",
                )
            }
            _ => Self::internal(e),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let msg = e.to_string();
        match e {
            // Hints name other secrets: the handlers answer unknown names themselves (only
            // with names the caller may see), so none is repeated here.
            EngineError::UnknownSecret { name, .. } => {
                Self::not_found(format!("no secret named {name:?}"))
            }
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
            // A rotator's cause names the target (host:port, OS error): it stays in the log.
            EngineError::Step {
                secret,
                step,
                rolled_back,
                ..
            } => {
                tracing::error!(error = %msg, "API: rotation step failed");
                Self::new(
                    StatusCode::BAD_GATEWAY,
                    "rotation_failed",
                    format!(
                        "secret {secret}: step {step} failed{}; the daemon's log has the cause",
                        if rolled_back {
                            "; the pending value was rolled back and the current value is unchanged"
                        } else {
                            ""
                        }
                    ),
                )
            }
            // The target was unreachable: say what it may still accept; the cause (host:port,
            // OS error) stays in the log.
            EngineError::RollbackOwed {
                secret, version, ..
            } => {
                tracing::error!(error = %msg, "API: rollback owed");
                Self::new(
                    StatusCode::BAD_GATEWAY,
                    "rollback_owed",
                    format!(
                        "secret {secret}: the rotation failed and its rollback could not reach the target, which may still accept pending version {version}; `rotor resume {secret}` retries it (the daemon does so by itself); the daemon's log has the cause"
                    ),
                )
            }
            EngineError::Invalid { .. } => Self::new(StatusCode::CONFLICT, "invalid_state", msg),
            EngineError::Nothing { .. } => Self::new(StatusCode::CONFLICT, "nothing_to_do", msg),
            EngineError::NotDue { .. } => Self::new(StatusCode::CONFLICT, "not_due", msg),
            EngineError::Store(s) => s.into(),
            _ => Self::internal(msg),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rotor_core::{RotatorError, Step};

    #[test]
    fn conflicts_have_their_own_codes_and_no_internals() {
        let busy = ApiError::from(StoreError::Busy {
            secret: "db".into(),
            rotation: "r1".into(),
            owner: "rotor@host-7.internal pid 4242".into(),
            until: "2026-01-01T00:00:00Z".into(),
        });
        assert_eq!((busy.status, busy.code), (StatusCode::CONFLICT, "busy"));
        assert!(
            !busy.message.contains("host-7") && !busy.message.contains("4242"),
            "{busy:?}"
        );
        let stale = ApiError::from(EngineError::Store(StoreError::Stale {
            secret: "db".into(),
            expected: "v1".into(),
            found: "v2".into(),
        }));
        assert_eq!((stale.status, stale.code), (StatusCode::CONFLICT, "stale"));
        let lost = ApiError::from(StoreError::LeaseLost {
            rotation: "r1".into(),
            ours: 1,
            current: 2,
        });
        assert_eq!(
            (lost.status, lost.code),
            (StatusCode::CONFLICT, "lease_lost")
        );
        let step = ApiError::from(EngineError::Step {
            secret: "db".into(),
            step: Step::Set,
            source: RotatorError::permanent(
                "cannot connect to 10.1.2.3:5432: Connection refused (os error 111)",
            ),
            rolled_back: true,
        });
        assert_eq!(
            (step.status, step.code),
            (StatusCode::BAD_GATEWAY, "rotation_failed")
        );
        assert!(
            step.message.contains("db") && step.message.contains("set"),
            "{step:?}"
        );
        for leak in ["10.1.2.3", "5432", "os error", "refused"] {
            assert!(!step.message.contains(leak), "{leak} in {step:?}");
        }
        let unknown = ApiError::from(EngineError::UnknownSecret {
            name: "app-kye".into(),
            suggestion: Some("app-key".into()),
        });
        assert!(!unknown.message.contains("app-key"), "{unknown:?}");
    }
}
