//! Errors of the GitHub target: what happened, what to do, and whether to retry. Never a
//! value or the token.

use std::time::Duration;

/// A failed call to GitHub.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} ({fix})")]
pub struct GithubError {
    /// What went wrong.
    pub message: String,
    /// What the operator can do.
    pub fix: String,
    /// Worth retrying later (rate limits, outages).
    pub transient: bool,
    /// When GitHub said to come back (rate limits), if it did.
    pub retry_after: Option<Duration>,
}

impl GithubError {
    pub(crate) fn permanent(message: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            fix: fix.into(),
            transient: false,
            retry_after: None,
        }
    }

    pub(crate) fn transient(message: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            transient: true,
            ..Self::permanent(message, fix)
        }
    }
}
