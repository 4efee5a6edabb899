//! When a secret is due, and the one-word state `rotor status` prints.

use std::fmt;

use jiff::Timestamp;
use serde::Serialize;

use crate::{Duration, Policy};

/// A secret's state, as `rotor status` and the metrics report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecretState {
    /// Rotated within its schedule.
    Ok,
    /// Comes due soon (within the lead time) or is due now; still inside `rotate_every`.
    Due,
    /// Older than `rotate_every`: the seed's `SecretRotationOverdue` fires.
    Overdue,
    /// No current value yet.
    NeverRotated,
    /// A rotation is running.
    InProgress,
    /// The last rotation failed and nothing has succeeded since.
    Failed,
}

impl SecretState {
    pub fn as_str(self) -> &'static str {
        match self {
            SecretState::Ok => "ok",
            SecretState::Due => "due",
            SecretState::Overdue => "overdue",
            SecretState::NeverRotated => "never-rotated",
            SecretState::InProgress => "in-progress",
            SecretState::Failed => "failed",
        }
    }

    /// Whether `rotor rotate --due` picks the secret up.
    pub fn wants_rotation(self) -> bool {
        matches!(
            self,
            SecretState::Due | SecretState::Overdue | SecretState::NeverRotated
        )
    }
}

impl fmt::Display for SecretState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The facts about a secret that its state is computed from.
#[derive(Debug, Clone, Copy, Default)]
pub struct Facts {
    /// When the current version was created.
    pub last_rotated: Option<Timestamp>,
    /// A rotation is running now.
    pub in_progress: bool,
    /// The newest rotation failed.
    pub last_failed: bool,
}

/// A secret's schedule evaluated at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Schedule {
    pub state: SecretState,
    pub last_rotated: Option<Timestamp>,
    /// `last_rotated + rotate_every`: overdue after this.
    pub next_due: Option<Timestamp>,
    /// How long before `next_due` the secret already counts as `due`.
    pub lead: Duration,
}

/// How long before its deadline a secret is reported `due`: a tenth of its period, at most a
/// week, so a 90-day key is due 7 days early and a 1-hour demo secret 6 minutes early.
pub fn lead_time(rotate_every: Duration) -> Duration {
    Duration::from_secs((rotate_every.as_secs() / 10).min(Duration::from_days(7).as_secs()))
}

/// Evaluates `policy` against `facts` at `now`. Precedence: in-progress, failed,
/// never-rotated, overdue, due, ok: the most actionable word wins.
pub fn evaluate(policy: &Policy, facts: Facts, now: Timestamp) -> Schedule {
    let lead = lead_time(policy.rotate_every);
    let next_due = facts
        .last_rotated
        .and_then(|t| t.checked_add(policy.rotate_every.to_span()).ok());
    let state = if facts.in_progress {
        SecretState::InProgress
    } else if facts.last_failed {
        SecretState::Failed
    } else {
        match next_due {
            None => SecretState::NeverRotated,
            Some(due) if now > due => SecretState::Overdue,
            Some(due) => {
                let due_from = due.checked_sub(lead.to_span()).unwrap_or(due);
                if now >= due_from {
                    SecretState::Due
                } else {
                    SecretState::Ok
                }
            }
        }
    };
    Schedule {
        state,
        last_rotated: facts.last_rotated,
        next_due,
        lead,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Automation, Tier};

    fn policy() -> Policy {
        Policy::new(
            Some(Tier::High),
            Duration::from_days(90),
            Duration::from_hours(1),
            Automation::Automatic,
            false,
        )
        .expect("valid")
    }

    fn at(days: i64) -> Timestamp {
        Timestamp::from_second(days * 86_400).expect("valid")
    }

    #[test]
    fn states_over_a_period() {
        let p = policy();
        let rotated = Some(at(0));
        let cases = [
            (Facts::default(), 0, SecretState::NeverRotated),
            (
                Facts {
                    last_rotated: rotated,
                    ..Facts::default()
                },
                1,
                SecretState::Ok,
            ),
            (
                Facts {
                    last_rotated: rotated,
                    ..Facts::default()
                },
                82,
                SecretState::Ok,
            ),
            (
                Facts {
                    last_rotated: rotated,
                    ..Facts::default()
                },
                83,
                SecretState::Due,
            ),
            (
                Facts {
                    last_rotated: rotated,
                    ..Facts::default()
                },
                90,
                SecretState::Due,
            ),
            (
                Facts {
                    last_rotated: rotated,
                    ..Facts::default()
                },
                91,
                SecretState::Overdue,
            ),
            (
                Facts {
                    last_rotated: rotated,
                    in_progress: true,
                    last_failed: true,
                },
                91,
                SecretState::InProgress,
            ),
            (
                Facts {
                    last_rotated: rotated,
                    last_failed: true,
                    ..Facts::default()
                },
                91,
                SecretState::Failed,
            ),
        ];
        for (facts, day, want) in cases {
            assert_eq!(
                evaluate(&p, facts, at(day)).state,
                want,
                "day {day} {facts:?}"
            );
        }
        assert_eq!(
            evaluate(
                &p,
                Facts {
                    last_rotated: rotated,
                    ..Facts::default()
                },
                at(1)
            )
            .next_due,
            Some(at(90))
        );
    }

    #[test]
    fn lead_is_a_tenth_capped_at_a_week() {
        assert_eq!(lead_time(Duration::from_days(90)), Duration::from_days(7));
        assert_eq!(lead_time(Duration::from_hours(1)), Duration::from_mins(6));
    }
}
