//! What the engine tells its callers: where a rotation stands when a call returns
//! ([`Outcome`]), progress events while it runs, and the stage changes handed to delivery.

use std::sync::Arc;

use jiff::Timestamp;
use rotor_core::{Rotation, RotationId, RotationStatus, SecretName, Step, VersionId};
use serde::Serialize;

/// Where a rotation stands when the engine returns.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    /// Finished and retired (emergency, grace 0, or a first rotation).
    Completed {
        rotation: RotationId,
        version: Option<VersionId>,
        retired: Option<VersionId>,
        /// An emergency's eviction of the old credentials' sessions, as the target reported
        /// it (absent when nothing was evicted in this call).
        #[serde(skip_serializing_if = "Option::is_none")]
        evicted: Option<Evicted>,
    },
    /// Finished; the previous value stays valid until `retire_after`.
    InGrace {
        rotation: RotationId,
        version: Option<VersionId>,
        retire_after: Timestamp,
    },
    /// Waiting to activate (JWT prepublish) until `until`; `rotor resume` finishes it then.
    Waiting {
        rotation: RotationId,
        version: Option<VersionId>,
        until: Timestamp,
    },
}

/// What an emergency's eviction did: the sessions it ended and, read back from the target,
/// how many of the sessions it found are still connected; or why it could not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evicted {
    pub ended: u64,
    pub surviving: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A progress event, for a bar or a line per step.
#[derive(Debug, Clone)]
pub enum Progress {
    Started {
        secret: SecretName,
        step: Step,
    },
    Done {
        secret: SecretName,
        step: Step,
    },
    Retrying {
        secret: SecretName,
        step: Step,
        attempt: u32,
        error: String,
    },
    Failed {
        secret: SecretName,
        step: Step,
        error: String,
    },
}

pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// A stage change that consumers should learn about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StageChange {
    /// `finish`: a new current (and the old one became previous).
    Finished,
    /// `retire`: the previous value is gone.
    Retired,
    /// `put`: an operator stored a new current.
    Put,
}

/// Delivery to consumers after stages move: rendered files, watch streams, notifications.
/// Called by the engine after the stage move is committed; a delivery failure is reported
/// and audited, and never undoes the rotation (the store is the truth; delivery can be rerun
/// with `rotor render`).
#[async_trait::async_trait]
pub trait Deliver: Send + Sync + std::fmt::Debug {
    async fn deliver(&self, secret: &SecretName, change: StageChange) -> Result<(), String>;
}

pub(crate) fn outcome_of(rot: &Rotation) -> Outcome {
    match (rot.status, rot.activate_after, rot.retire_after) {
        (RotationStatus::Running, Some(until), _) => Outcome::Waiting {
            rotation: rot.id.clone(),
            version: rot.pending_version.clone(),
            until,
        },
        (RotationStatus::Grace, _, Some(retire_after)) => Outcome::InGrace {
            rotation: rot.id.clone(),
            version: rot.pending_version.clone(),
            retire_after,
        },
        _ => Outcome::Completed {
            rotation: rot.id.clone(),
            version: rot.pending_version.clone(),
            retired: (rot.status == RotationStatus::Completed)
                .then(|| rot.previous_version.clone())
                .flatten(),
            evicted: None,
        },
    }
}
