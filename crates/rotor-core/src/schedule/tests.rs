//! [`evaluate`]: one table over the facts a store can hold.

use jiff::Timestamp;

use super::*;
use crate::config::SecretSpec;
use crate::store::RotationStamp;
use crate::{RotationId, Step};

fn at(days: i64) -> Timestamp {
    // Monday 2025-06-02 00:00 UTC plus `days`.
    Timestamp::from_second(1_748_822_400 + days * 86_400).expect("valid")
}

fn hours(h: i64) -> jiff::SignedDuration {
    jiff::SignedDuration::from_hours(h)
}

fn spec(extra: &str) -> SecretSpec {
    let text =
        format!("[secrets.s]\nkind = \"random\"\nrotate_every = \"90d\"\ngrace = \"1h\"\n{extra}");
    crate::config::parse(&text, std::path::Path::new("/tmp/r.toml"), &|_| None)
        .unwrap_or_else(|e| panic!("{e}"))
        .secret("s")
        .expect("s")
        .clone()
}

fn rotation(
    status: RotationStatus,
    error: Option<&str>,
    retire_after: Option<i64>,
) -> RotationStamp {
    RotationStamp {
        id: RotationId::generate(),
        status,
        step: Step::Set,
        started_at: at(0),
        error: error.map(str::to_owned),
        retire_after: retire_after.map(at),
    }
}

#[test]
fn states_over_a_period() {
    let s = spec("");
    fn facts(rot: Option<&RotationStamp>) -> Facts<'_> {
        Facts {
            current_created: Some(at(0)),
            last_rotation: rot,
            blocked: None,
        }
    }
    let running = rotation(RotationStatus::Running, None, None);
    let failed = rotation(
        RotationStatus::Failed,
        Some("step set failed: refused"),
        None,
    );
    let grace = rotation(RotationStatus::Grace, None, Some(1));
    let completed = rotation(RotationStatus::Completed, None, Some(1));
    let cases: &[(Facts<'_>, i64, SecretState, &str)] = &[
        (
            Facts::default(),
            0,
            SecretState::Overdue,
            "overdue (never rotated)",
        ),
        (facts(None), 1, SecretState::Ok, "ok"),
        (facts(None), 82, SecretState::Ok, "ok"),
        (
            facts(None),
            83,
            SecretState::Due,
            "due (by 2025-08-31T00:00:00Z)",
        ),
        (
            facts(None),
            90,
            SecretState::Due,
            "due (by 2025-08-31T00:00:00Z)",
        ),
        (
            facts(None),
            91,
            SecretState::Overdue,
            "overdue (since 2025-08-31T00:00:00Z)",
        ),
        (
            facts(Some(&running)),
            91,
            SecretState::InProgress,
            "in-progress (step set)",
        ),
        (
            facts(Some(&failed)),
            91,
            SecretState::Failed,
            "failed (step set)",
        ),
        (
            facts(Some(&failed)),
            1,
            SecretState::Failed,
            "failed (step set)",
        ),
        (
            facts(Some(&grace)),
            0,
            SecretState::InGrace,
            "in-grace (retire after 2025-06-03T00:00:00Z)",
        ),
        (
            facts(Some(&grace)),
            2,
            SecretState::RetireDue,
            "retire-due (grace ended 2025-06-03T00:00:00Z)",
        ),
        (facts(Some(&completed)), 2, SecretState::Ok, "ok"),
    ];
    for (facts, day, state, label) in cases {
        let got = evaluate(&s, *facts, at(*day));
        assert_eq!(
            (got.state, got.label.as_str()),
            (*state, *label),
            "day {day} {facts:?}"
        );
    }
}

#[test]
fn flags_stand_beside_the_state_word() {
    let s = spec("");
    let failed = rotation(
        RotationStatus::Failed,
        Some("step set failed: refused"),
        None,
    );
    // Failed and overdue and never rotated: one word, every flag.
    let got = evaluate(
        &s,
        Facts {
            current_created: None,
            last_rotation: Some(&failed),
            blocked: None,
        },
        at(0),
    );
    assert_eq!(got.state, SecretState::Failed);
    assert!(got.failed && got.overdue && got.never_rotated);
    assert_eq!(got.reason.as_deref(), Some("step set failed: refused"));
    assert_eq!(
        got.hint.as_deref(),
        Some("fix the cause, then `rotor rotate s`")
    );
    assert!(
        !got.wants_scheduled_rotation(),
        "a failed secret waits for a person"
    );

    let grace = rotation(
        RotationStatus::Grace,
        Some("step retire failed: gone"),
        Some(1),
    );
    let got = evaluate(
        &s,
        Facts {
            current_created: Some(at(0)),
            last_rotation: Some(&grace),
            blocked: None,
        },
        at(2),
    );
    assert!(got.retire_due && !got.in_grace && !got.overdue);
    assert_eq!(got.hint.as_deref(), Some("rotor retire --due"));
    assert_eq!(got.reason.as_deref(), Some("step retire failed: gone"));
    assert_eq!(got.retire_after, Some(at(1)));

    // An aborted rotation is over: its note is not a reason.
    let aborted = rotation(RotationStatus::Aborted, Some("aborted: by hand"), None);
    let got = evaluate(
        &s,
        Facts {
            current_created: Some(at(0)),
            last_rotation: Some(&aborted),
            blocked: None,
        },
        at(1),
    );
    assert_eq!((got.state, got.reason), (SecretState::Ok, None));
}

#[test]
fn never_rotated_is_overdue_unless_declared() {
    let now = at(10);
    let unknown = evaluate(&spec(""), Facts::default(), now);
    assert!(unknown.never_rotated && unknown.overdue);
    assert_eq!(unknown.last_rotated, None);
    assert_eq!(unknown.deadline, None);
    assert!(unknown.rotation_due && unknown.wants_scheduled_rotation());
    assert_eq!(unknown.next_due, now);

    let declared = evaluate(
        &spec("last_rotated = \"2025-06-02\""),
        Facts::default(),
        now,
    );
    assert_eq!(declared.state, SecretState::Ok);
    assert!(!declared.never_rotated && !declared.overdue && declared.last_rotated_declared);
    assert_eq!(declared.last_rotated, Some(at(0)));
    assert_eq!(declared.deadline, Some(at(90)));

    let old = evaluate(
        &spec("last_rotated = \"2024-01-01\""),
        Facts::default(),
        now,
    );
    assert_eq!(old.state, SecretState::Overdue);
    assert!(!old.never_rotated && old.overdue);

    // A stored version wins over the declaration.
    let stored = evaluate(
        &spec("last_rotated = \"2024-01-01\""),
        Facts {
            current_created: Some(at(9)),
            last_rotation: None,
            blocked: None,
        },
        now,
    );
    assert_eq!(
        (stored.state, stored.last_rotated_declared),
        (SecretState::Ok, false)
    );

    // A date in the future is a mistake: ignored, and said so.
    let future = evaluate(
        &spec("last_rotated = \"2031-01-01\""),
        Facts::default(),
        now,
    );
    assert!(future.never_rotated && future.overdue);
    assert!(future.reason.is_some_and(|r| r.contains("in the future")));
}

#[test]
fn the_due_time_is_placed_in_the_window() {
    // Due (deadline minus a 7-day lead) on Sunday 2025-08-24; the window is Wednesdays.
    let s = spec("window = \"Wed 02:00-04:00 UTC\"");
    let facts = Facts {
        current_created: Some(at(0)),
        last_rotation: None,
        blocked: None,
    };
    let got = evaluate(&s, facts, at(1));
    let wednesday = at(86).checked_add(hours(2)).expect("add");
    assert_eq!(got.next_due, wednesday);
    assert!(!got.rotation_due);
    // Due (inside the lead time) but outside the window: not yet.
    let got = evaluate(&s, facts, at(84));
    assert_eq!(got.state, SecretState::Due);
    assert!(!got.rotation_due);
    let got = evaluate(&s, facts, wednesday);
    assert!(got.rotation_due && got.wants_scheduled_rotation());
    // A manual secret gets the command a person runs.
    let manual = spec("automation = \"manual\"");
    let got = evaluate(&manual, facts, at(91));
    assert_eq!(got.hint.as_deref(), Some("rotor rotate s"));
}

#[test]
fn lead_is_a_tenth_capped_at_a_week() {
    assert_eq!(lead_time(Duration::from_days(90)), Duration::from_days(7));
    assert_eq!(lead_time(Duration::from_hours(1)), Duration::from_mins(6));
}

#[test]
fn blocked_ranks_below_failed_and_above_retire_due_and_overdue() {
    let s = spec("");
    let cause = "secret s: probe on 127.0.0.1:5432: cannot reach the server";
    let failed = rotation(
        RotationStatus::Failed,
        Some("step set failed: refused"),
        None,
    );
    let running = rotation(RotationStatus::Running, None, None);
    let grace = rotation(RotationStatus::Grace, None, Some(1));
    let with = |current: Option<Timestamp>, rot, blocked| Facts {
        current_created: current,
        last_rotation: rot,
        blocked,
    };
    // Blocked and overdue (never rotated): blocked is the word, overdue stays a flag.
    let got = evaluate(&s, with(None, None, Some(cause)), at(0));
    assert_eq!(got.state, SecretState::Blocked);
    assert_eq!(got.label, "blocked (probe failed)");
    assert_eq!(got.hint.as_deref(), Some("rotor probe s"));
    assert_eq!(got.reason.as_deref(), Some(cause));
    assert!(got.blocked && got.overdue && got.never_rotated);
    assert!(got.state.needs_attention());
    // Blocked and retire-due: blocked.
    let got = evaluate(&s, with(Some(at(0)), Some(&grace), Some(cause)), at(2));
    assert_eq!(got.state, SecretState::Blocked);
    assert!(got.retire_due && got.blocked);
    // Failed and in-progress win over blocked; the flag and the failure's reason stay.
    let got = evaluate(&s, with(Some(at(0)), Some(&failed), Some(cause)), at(1));
    assert_eq!(got.state, SecretState::Failed);
    assert!(got.blocked);
    assert_eq!(got.reason.as_deref(), Some("step set failed: refused"));
    let got = evaluate(&s, with(Some(at(0)), Some(&running), Some(cause)), at(1));
    assert_eq!(got.state, SecretState::InProgress);
    // Not blocked: the usual word.
    let got = evaluate(&s, with(Some(at(0)), None, None), at(1));
    assert_eq!(got.state, SecretState::Ok);
    assert!(!got.blocked);
}
