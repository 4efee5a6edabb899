//! Where a secret stands: its one state, computed once, for every surface.
//!
//! [`evaluate`] is a pure function of the secret's policy (period, window, jitter, a declared
//! `last_rotated`), the facts read from the store ([`Facts`]: when the current value was made,
//! the newest rotation record) and the time. It returns a [`Standing`]: the state word, the
//! flags beside it (never rotated, overdue, failed with its reason, in grace, retire due), the
//! times (last rotated, deadline, next due placed in its window, retire after) and the label and
//! hint a person reads. `rotor status`, `plan` and `rotate --due`, the daemon's scheduler, the
//! API, the status page, the metrics and the notifications all read it; none of them computes a
//! state of its own.
//!
//! Rules, in one place:
//! - a secret whose age is unknown (no current value and no `last_rotated` in the config) is
//!   overdue from the moment rotor learns of it;
//! - `failed` holds while the newest rotation record failed: until a later rotation succeeds or
//!   a person acts (a rotate, a put);
//! - a scheduled rotation starts at [`placement::next_scheduled`]: the due time (the deadline
//!   minus the lead time) plus the name's jitter, inside the window; emergencies and
//!   explicit `rotor rotate NAME` are not bound by it (the engine only checks it for scheduled
//!   rotations).
//!
//! To add a state (say `blocked`), add the variant with its word and its place in the
//! precedence of [`evaluate`]; surfaces only format a [`Standing`].

pub mod placement;
pub mod window;

use std::fmt;

use jiff::Timestamp;
use serde::Serialize;

use crate::config::SecretSpec;
use crate::store::{RotationStamp, SecretSummary};
use crate::{Automation, Duration, Kind, RotationStatus};

pub use placement::{jitter_offset, next_scheduled, place_due};
pub use window::{Occurrence, occurrence_at_or_after, window_at_or_after};

/// A secret's state word. One per secret at a time; the most actionable wins (see
/// [`evaluate`]); the flags of [`Standing`] say what else is true.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecretState {
    /// Rotated within its schedule.
    Ok,
    /// Within the lead time before its deadline: a scheduled rotation comes (or runs) now.
    Due,
    /// Past its deadline, or its age is unknown (never rotated, nothing declared).
    Overdue,
    /// A rotation is running.
    InProgress,
    /// The newest rotation failed and nothing has succeeded since.
    Failed,
    /// Rotated; the previous value stays valid until `retire_after`.
    InGrace,
    /// Grace ended but the previous value was not retired yet: it still works.
    RetireDue,
}

impl SecretState {
    /// Every state, in the order pages list them.
    pub const ALL: [SecretState; 7] = [
        SecretState::Failed,
        SecretState::InProgress,
        SecretState::RetireDue,
        SecretState::Overdue,
        SecretState::Due,
        SecretState::InGrace,
        SecretState::Ok,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SecretState::Ok => "ok",
            SecretState::Due => "due",
            SecretState::Overdue => "overdue",
            SecretState::InProgress => "in-progress",
            SecretState::Failed => "failed",
            SecretState::InGrace => "in-grace",
            SecretState::RetireDue => "retire-due",
        }
    }

    /// Whether a person should look at it (pages and tables color these).
    pub fn needs_attention(self) -> bool {
        matches!(
            self,
            SecretState::Overdue | SecretState::Failed | SecretState::RetireDue
        )
    }
}

impl fmt::Display for SecretState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the store says about a secret.
#[derive(Debug, Clone, Copy, Default)]
pub struct Facts<'a> {
    /// When the current version was created (`None`: the store holds no current value).
    pub current_created: Option<Timestamp>,
    /// The newest rotation record.
    pub last_rotation: Option<&'a RotationStamp>,
}

impl<'a> From<&'a SecretSummary> for Facts<'a> {
    fn from(s: &'a SecretSummary) -> Self {
        Facts {
            current_created: s.current.as_ref().map(|c| c.created_at),
            last_rotation: s.last_rotation.as_ref(),
        }
    }
}

/// Where a secret stands at one instant: everything a surface shows about its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Standing {
    pub state: SecretState,
    /// The state as a person reads it: `overdue (never rotated)`, `in-grace (retire after T)`.
    pub label: String,
    /// The command that deals with it, when a person has to act (`rotor retire --due`).
    pub hint: Option<String>,
    /// No current value and no declared `last_rotated`: the age is unknown.
    pub never_rotated: bool,
    pub overdue: bool,
    pub failed: bool,
    pub in_progress: bool,
    pub in_grace: bool,
    pub retire_due: bool,
    /// The error recorded on the newest rotation (why it failed, or why a retire did).
    pub reason: Option<String>,
    pub last_rotated: Option<Timestamp>,
    /// `last_rotated` comes from the config (a person's word), not from a stored version.
    pub last_rotated_declared: bool,
    /// `last_rotated + rotate_every`: overdue after this.
    pub deadline: Option<Timestamp>,
    /// When the next scheduled rotation starts: due time plus jitter, inside the window.
    pub next_due: Timestamp,
    /// `next_due` has come: a scheduled rotation may start now.
    pub rotation_due: bool,
    /// When the previous value is (or was) to be retired.
    pub retire_after: Option<Timestamp>,
}

impl Standing {
    /// Whether the scheduler and `rotor rotate --due` start a rotation now: the placed due
    /// time has come and nothing else is going on (a failed secret waits for a person).
    pub fn wants_scheduled_rotation(&self) -> bool {
        self.rotation_due && !self.in_progress && !self.failed && !self.in_grace
    }
}

/// How long before its deadline a secret is reported `due`: a tenth of its period, at most a
/// week, so a 90-day key is due 7 days early and a 1-hour demo secret 6 minutes early.
pub fn lead_time(rotate_every: Duration) -> Duration {
    Duration::from_secs((rotate_every.as_secs() / 10).min(Duration::from_days(7).as_secs()))
}

/// Evaluates `spec` against `facts` at `now`. Precedence of the state word: in-progress,
/// failed, retire-due, overdue, in-grace, due, ok.
pub fn evaluate(spec: &SecretSpec, facts: Facts<'_>, now: Timestamp) -> Standing {
    let policy = &spec.policy;
    let mut notes: Option<String> = None;
    let (last_rotated, declared) = match (facts.current_created, spec.last_rotated) {
        (Some(t), _) => (Some(t), false),
        (None, Some(t)) if t <= now => (Some(t), true),
        (None, Some(t)) => {
            notes = Some(format!(
                "last_rotated = {} in the config is in the future, so it is ignored",
                short(t)
            ));
            (None, false)
        }
        (None, None) => (None, false),
    };
    let never_rotated = last_rotated.is_none();
    let deadline = last_rotated.and_then(|t| t.checked_add(policy.rotate_every.to_span()).ok());
    let lead = lead_time(policy.rotate_every);
    let due_from = deadline.map(|d| d.checked_sub(lead.to_span()).unwrap_or(d));
    let next_due = next_scheduled(
        due_from,
        spec.name.as_str(),
        spec.jitter,
        spec.window.as_ref(),
        now,
    );
    let overdue = never_rotated || deadline.is_some_and(|d| now > d);
    let due = due_from.is_some_and(|d| now >= d);

    let rot = facts.last_rotation;
    let status = rot.map(|r| r.status);
    let in_progress = status == Some(RotationStatus::Running);
    let failed = status == Some(RotationStatus::Failed);
    let open_grace = status == Some(RotationStatus::Grace);
    let retire_after = rot.filter(|_| open_grace).and_then(|r| r.retire_after);
    // A grace rotation without a retire time can be retired at once.
    let retire_due = open_grace && retire_after.is_none_or(|t| t <= now);
    let in_grace = open_grace && !retire_due;
    let reason = rot
        .filter(|_| in_progress || failed || open_grace)
        .and_then(|r| r.error.clone())
        .or(notes);

    let state = if in_progress {
        SecretState::InProgress
    } else if failed {
        SecretState::Failed
    } else if retire_due {
        SecretState::RetireDue
    } else if overdue {
        SecretState::Overdue
    } else if in_grace {
        SecretState::InGrace
    } else if due {
        SecretState::Due
    } else {
        SecretState::Ok
    };
    let label = match state {
        SecretState::InProgress => match rot {
            Some(r) => format!("in-progress (step {})", r.step),
            None => state.as_str().to_owned(),
        },
        SecretState::Failed => match rot {
            Some(r) => format!("failed (step {})", r.step),
            None => state.as_str().to_owned(),
        },
        SecretState::RetireDue => match retire_after {
            Some(t) => format!("retire-due (grace ended {})", short(t)),
            None => state.as_str().to_owned(),
        },
        SecretState::InGrace => match retire_after {
            Some(t) => format!("in-grace (retire after {})", short(t)),
            None => state.as_str().to_owned(),
        },
        SecretState::Overdue if never_rotated => "overdue (never rotated)".to_owned(),
        SecretState::Overdue | SecretState::Due => match deadline {
            Some(d) if now > d => format!("{state} (since {})", short(d)),
            Some(d) => format!("{state} (by {})", short(d)),
            None => state.as_str().to_owned(),
        },
        SecretState::Ok => state.as_str().to_owned(),
    };
    let name = &spec.name;
    let by_hand = if spec.kind == Kind::Manual {
        format!("rotor put {name}")
    } else {
        format!("rotor rotate {name}")
    };
    let hint = match state {
        SecretState::RetireDue => Some("rotor retire --due".to_owned()),
        SecretState::Failed => Some(format!("fix the cause, then `{by_hand}`")),
        // Automatic secrets are rotated by the scheduler or `rotor rotate --due`.
        SecretState::Overdue | SecretState::Due if policy.automation == Automation::Manual => {
            Some(by_hand)
        }
        _ => None,
    };
    Standing {
        state,
        label,
        hint,
        never_rotated,
        overdue,
        failed,
        in_progress,
        in_grace,
        retire_due,
        reason,
        last_rotated,
        last_rotated_declared: declared,
        deadline,
        next_due,
        rotation_due: next_due <= now,
        retire_after,
    }
}

/// A time as every surface prints it: UTC, to the second.
pub fn short(t: Timestamp) -> String {
    t.round(jiff::Unit::Second)
        .map_or_else(|_| t.to_string(), |r| r.to_string())
}

#[cfg(test)]
mod tests;
