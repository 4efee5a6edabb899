//! Engine errors: each names the secret and says what to do.

use rotor_core::{Kind, RotatorError, Step, StoreError};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error("no secret named {name:?} in the config{}", suggestion.as_ref().map(|s| format!("; did you mean {s:?}?")).unwrap_or_default())]
    UnknownSecret {
        name: String,
        suggestion: Option<String>,
    },
    #[error(
        "secret {secret} is a manual secret: rotor cannot make its value; supply it with `rotor put {secret}` (value on stdin)"
    )]
    ManualKind { secret: String },
    #[error("secret {secret} requires confirmation: {why}; pass --confirm to rotate it")]
    NeedsConfirmation { secret: String, why: String },
    #[error("secret {secret} is of kind {kind}, which this build of rotor cannot rotate")]
    NoRotator { secret: String, kind: Kind },
    #[error(
        "secret {secret}: the previous value is still in its grace period until {until}; wait, run `rotor retire --due` after it, or rotate with --emergency"
    )]
    GraceNotOver { secret: String, until: String },
    #[error(
        "secret {secret}: its admin secret {admin} has no current value; store it with `rotor put {admin}`"
    )]
    AdminMissing { secret: String, admin: String },
    #[error("secret {secret}: step {step} failed: {source}{}", if *rolled_back { "; the pending value was rolled back and the current value is unchanged" } else { "" })]
    Step {
        secret: String,
        step: Step,
        #[source]
        source: RotatorError,
        rolled_back: bool,
    },
    /// The target could not be reached to roll a pending value back. When `ended` names a
    /// step, the rotation just ended `failed` there; otherwise an owed rollback was tried
    /// again and still failed, and nothing else was done.
    #[error("{}", rollback_owed_message(secret, version, *ended, detail))]
    RollbackOwed {
        secret: String,
        version: String,
        ended: Option<Step>,
        detail: String,
    },
    #[error("secret {secret}: {what}")]
    Invalid { secret: String, what: String },
    #[error("secret {secret} is not due (it was rotated at {rotated}); nothing was done")]
    NotDue { secret: String, rotated: String },
    #[error("secret {secret}: nothing to {what}")]
    Nothing { secret: String, what: &'static str },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A transition the record refused is a bug or a hand-edited record, never a target's
/// failure: reported like any other inconsistent record.
impl From<rotor_core::rotation::TransitionError> for EngineError {
    fn from(e: rotor_core::rotation::TransitionError) -> Self {
        EngineError::Invalid {
            secret: e.secret.to_string(),
            what: e.to_string(),
        }
    }
}

fn rollback_owed_message(secret: &str, version: &str, ended: Option<Step>, detail: &str) -> String {
    let state = format!(
        "the current value is unchanged, but the target may still accept pending version {version} besides it"
    );
    let retry = format!(
        "rotor retries the rollback (`rotor resume {secret}`, `rotor serve`, or now with `rotor abort {secret}`) and keeps {version} sealed until the target confirms it is gone; `rotor rotate` and `rotor put` work meanwhile"
    );
    match ended {
        Some(step) => format!(
            "secret {secret}: step {step} failed: {detail}; the rotation ended failed and could not be rolled back on the target: {state}. {retry}"
        ),
        None => format!(
            "secret {secret}: the rollback of pending version {version} is still owed ({detail}): {state}. {retry}"
        ),
    }
}

impl EngineError {
    /// Whether this error means a rotation ended `failed` just now (a step other than
    /// retire failed for good and the record says so): the one thing that counts as a
    /// rotation failure in metrics and alerts. Contention (busy, taken over, nothing to do,
    /// not due) and a retry of an owed rollback do not.
    pub fn rotation_failed(&self) -> bool {
        match self {
            EngineError::Step { step, .. } => *step != Step::Retire,
            EngineError::RollbackOwed { ended, .. } => ended.is_some(),
            _ => false,
        }
    }

    /// Whether this error is contention with another process or job, not a fault: the
    /// secret is busy, its lease was taken or has moved on, the rotation already ended,
    /// another process rotated first, the store is locked for now, or there is nothing
    /// (yet) to do.
    pub fn is_contention(&self) -> bool {
        matches!(
            self,
            EngineError::Store(
                StoreError::Busy { .. }
                    | StoreError::LeaseLost { .. }
                    | StoreError::Ended { .. }
                    | StoreError::Stale { .. }
                    | StoreError::Locked
            ) | EngineError::Nothing { .. }
                | EngineError::NotDue { .. }
                | EngineError::GraceNotOver { .. }
        )
    }

    /// The secret the error is about, if any.
    pub fn secret(&self) -> Option<&str> {
        match self {
            EngineError::UnknownSecret { name, .. } => Some(name),
            EngineError::ManualKind { secret }
            | EngineError::NeedsConfirmation { secret, .. }
            | EngineError::NoRotator { secret, .. }
            | EngineError::GraceNotOver { secret, .. }
            | EngineError::AdminMissing { secret, .. }
            | EngineError::Step { secret, .. }
            | EngineError::RollbackOwed { secret, .. }
            | EngineError::Invalid { secret, .. }
            | EngineError::NotDue { secret, .. }
            | EngineError::Nothing { secret, .. } => Some(secret),
            EngineError::Store(_) => None,
        }
    }
}
