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
    #[error("secret {secret}: {what}")]
    Invalid { secret: String, what: String },
    #[error("secret {secret} is not due (it was rotated at {rotated}); nothing was done")]
    NotDue { secret: String, rotated: String },
    #[error("secret {secret}: nothing to {what}")]
    Nothing { secret: String, what: &'static str },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl EngineError {
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
            | EngineError::Invalid { secret, .. }
            | EngineError::NotDue { secret, .. }
            | EngineError::Nothing { secret, .. } => Some(secret),
            EngineError::Store(_) => None,
        }
    }
}
