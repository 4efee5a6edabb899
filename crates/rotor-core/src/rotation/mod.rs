//! The rotation record and its state machine.
//!
//! A rotation runs `create → set → test → [activate] → finish`, waits out `grace`, then runs
//! `retire`. The record says which step was started last and whether it completed, so after a
//! crash the engine knows exactly what to do: re-run a started step (every step is
//! idempotent) or start the next one. [`next_action`] is that decision, as a pure function of
//! the record and the time; what each step then does to the record (`transition`: a step
//! passed, the rotation finished, failed, aborted, retired) is pure too, and refuses what
//! `next_action` would not run.

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::{SecretName, VersionId};

mod transition;

pub use transition::{Begin, TransitionError};

/// A rotation's id (UUIDv7: sorts by start time).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RotationId(String);

impl RotationId {
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The last 8 characters: a UUIDv7 starts with its timestamp, so ids made in the same
    /// minute share their first characters but not their (random) last ones.
    pub fn short(&self) -> &str {
        &self.0[self.0.len().saturating_sub(8)..]
    }
}

impl fmt::Display for RotationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RotationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// What started a rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// The policy said it was due.
    Schedule,
    /// A person asked (`rotor rotate NAME`).
    Manual,
    /// Suspected compromise: grace 0, retire right after finish.
    Emergency,
    /// A rehearsal (`rotor drill`).
    Drill,
    /// A person supplied the value (`rotor put`).
    Put,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Manual => "manual",
            Trigger::Emergency => "emergency",
            Trigger::Drill => "drill",
            Trigger::Put => "put",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [
            Trigger::Schedule,
            Trigger::Manual,
            Trigger::Emergency,
            Trigger::Drill,
            Trigger::Put,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

/// The lifecycle steps, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    /// Generate the new value and store it as `pending` (before any target sees it).
    Create,
    /// Make the target accept the pending value next to the current one.
    Set,
    /// Prove the pending value works on the target.
    Test,
    /// Wait until `activate_after` (JWT prepublish), so caches learn the key before it signs.
    Activate,
    /// Move stages atomically: pending → current, current → previous.
    Finish,
    /// After grace: remove the previous value from the target and prove it is rejected.
    Retire,
}

impl Step {
    pub const ORDER: [Step; 6] = [
        Step::Create,
        Step::Set,
        Step::Test,
        Step::Activate,
        Step::Finish,
        Step::Retire,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Create => "create",
            Step::Set => "set",
            Step::Test => "test",
            Step::Activate => "activate",
            Step::Finish => "finish",
            Step::Retire => "retire",
        }
    }

    pub fn parse(s: &str) -> Option<Step> {
        Step::ORDER.into_iter().find(|st| st.as_str() == s)
    }

    /// The step after this one, `None` after retire.
    pub fn next(self) -> Option<Step> {
        let i = Step::ORDER.iter().position(|s| *s == self)?;
        Step::ORDER.get(i + 1).copied()
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a rotation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RotationStatus {
    /// Between create and finish; holds the secret's lease.
    Running,
    /// Finished; the previous value stays valid until `retire_after`.
    Grace,
    /// Retired; nothing more to do.
    Completed,
    /// A step failed for good; the pending value was rolled back and `current` is unchanged.
    Failed,
    /// Rolled back by `rotor abort`.
    Aborted,
}

impl RotationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RotationStatus::Running => "running",
            RotationStatus::Grace => "grace",
            RotationStatus::Completed => "completed",
            RotationStatus::Failed => "failed",
            RotationStatus::Aborted => "aborted",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [
            RotationStatus::Running,
            RotationStatus::Grace,
            RotationStatus::Completed,
            RotationStatus::Failed,
            RotationStatus::Aborted,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
    /// Still has work to do (a step, or a retire after grace).
    pub fn is_open(self) -> bool {
        matches!(self, RotationStatus::Running | RotationStatus::Grace)
    }
}

impl fmt::Display for RotationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who may write a rotation's record: the holder of the newest lease token. A process that
/// lost its lease (it stalled past `expires_at` and another took over) has an older token,
/// and the store refuses its writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// `host:pid:nonce` of the holder.
    pub owner: String,
    pub token: u64,
    pub expires_at: Timestamp,
}

/// One run of the lifecycle for one secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rotation {
    pub id: RotationId,
    pub secret: SecretName,
    pub trigger: Trigger,
    pub actor: String,
    pub reason: Option<String>,
    pub emergency: bool,
    /// In an emergency, also end live sessions of the previous value (`--no-evict` clears it).
    #[serde(default = "evict_by_default")]
    pub evict: bool,
    pub status: RotationStatus,
    /// The step started last.
    pub step: Step,
    /// Whether `step` completed.
    pub step_done: bool,
    /// Attempts of the current step (retries after transient errors).
    pub attempts: u32,
    /// The last error, if any (never contains a value).
    pub error: Option<String>,
    /// The version this rotation created.
    pub pending_version: Option<VersionId>,
    /// The version that was current when the rotation started (becomes previous).
    pub previous_version: Option<VersionId>,
    pub started_at: Timestamp,
    pub updated_at: Timestamp,
    /// Earliest time `finish` may run (JWT prepublish).
    pub activate_after: Option<Timestamp>,
    /// Earliest time `retire` may run (finish + grace).
    pub retire_after: Option<Timestamp>,
    pub lease: Option<Lease>,
    /// The rotation ended `failed` but the target could not be reached to roll the pending
    /// value back: the target may still accept it. The pending version keeps its label (and
    /// its sealed value) until a rollback succeeds (`rotor resume`, `rotor abort`, the
    /// daemon, or the next `rotor rotate`), so rotor never forgets a value a target may hold.
    #[serde(default)]
    pub rollback_owed: bool,
}

fn evict_by_default() -> bool {
    true
}

/// What the engine should do next for a rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Run this step (again, if it was started but not completed).
    Run(Step),
    /// Nothing until this time (prepublish or grace).
    WaitUntil(Step, Timestamp),
    /// Nothing more, ever.
    Done,
}

/// Decides the next action. Pure: the same record and time give the same answer.
///
/// - a started, unfinished step runs again (steps are idempotent);
/// - `activate` waits for `activate_after`, `retire` for `retire_after`;
/// - `retire` is never returned before `retire_after`, and never for a rotation that did not finish.
pub fn next_action(r: &Rotation, now: Timestamp) -> Action {
    match r.status {
        RotationStatus::Completed | RotationStatus::Failed | RotationStatus::Aborted => {
            Action::Done
        }
        RotationStatus::Grace => match r.retire_after {
            Some(t) if t > now => Action::WaitUntil(Step::Retire, t),
            _ => Action::Run(Step::Retire),
        },
        RotationStatus::Running => {
            let step = if r.step_done {
                match r.step.next() {
                    Some(s) => s,
                    None => return Action::Done,
                }
            } else {
                r.step
            };
            match step {
                Step::Activate => match r.activate_after {
                    Some(t) if t > now => Action::WaitUntil(Step::Activate, t),
                    _ => Action::Run(Step::Activate),
                },
                // A running rotation reaches retire only through Grace, which sets retire_after.
                Step::Retire => match r.retire_after {
                    Some(t) if t <= now => Action::Run(Step::Retire),
                    Some(t) => Action::WaitUntil(Step::Retire, t),
                    None => Action::Done,
                },
                s => Action::Run(s),
            }
        }
    }
}

#[cfg(test)]
mod tests;
