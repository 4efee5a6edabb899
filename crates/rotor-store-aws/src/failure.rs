//! How an AWS call failed, and what that means for the store's caller: an outage is
//! transient, a refusal is not, and either way the ledger already has the change.

use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use rotor_core::{SecretName, StoreError};

use crate::AwsStore;

/// How an AWS call failed.
pub(crate) enum AwsFailure {
    /// The secret does not exist.
    NotFound,
    /// AWS answered with an error (code, message): not retried by us.
    Refused(String),
    /// Unreachable, timed out, throttled past the SDK's retries, or a 5xx.
    Unavailable(String),
}

impl AwsFailure {
    pub(crate) fn from_sdk<E>(e: &SdkError<E>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let shown = DisplayErrorContext(e).to_string();
        match e {
            SdkError::ServiceError(s) => {
                let code = s.err().code().unwrap_or("");
                let status = s.raw().status().as_u16();
                if code == "ResourceNotFoundException" {
                    AwsFailure::NotFound
                } else if status >= 500
                    || code.contains("Throttl")
                    || code == "InternalServiceError"
                {
                    AwsFailure::Unavailable(shown)
                } else {
                    AwsFailure::Refused(shown)
                }
            }
            _ => AwsFailure::Unavailable(shown),
        }
    }

    pub(crate) fn detail(&self) -> &str {
        match self {
            AwsFailure::NotFound => "the secret does not exist",
            AwsFailure::Refused(d) | AwsFailure::Unavailable(d) => d,
        }
    }
}

impl AwsStore {
    /// An AWS failure as a store error: an outage or throttling is
    /// [`StoreError::Unavailable`] (transient: retried), a refusal [`StoreError::Backend`].
    pub(crate) fn aws_error(&self, secret: &SecretName, call: &str, f: &AwsFailure) -> StoreError {
        let (what, make): (&str, fn(String) -> StoreError) = match f {
            AwsFailure::Unavailable(_) => (
                "AWS Secrets Manager is unreachable or throttling",
                StoreError::Unavailable,
            ),
            _ => ("AWS Secrets Manager refused", StoreError::Backend),
        };
        make(format!(
            "secret {secret}: {what} ({call} on {}: {}); the ledger has the change and remains the source of truth: run `rotor resume {secret}` (or `AwsStore::sync`) once AWS answers, to bring AWS up to date",
            self.aws_secret_id(secret),
            f.detail()
        ))
    }
}
