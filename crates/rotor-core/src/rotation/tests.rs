//! Tests of [`next_action`] and of the record's transitions.

use super::*;
use proptest::prelude::*;

fn rotation(status: RotationStatus, step: Step, done: bool) -> Rotation {
    let t = Timestamp::UNIX_EPOCH;
    Rotation {
        id: RotationId::generate(),
        secret: SecretName::new("s").expect("valid"),
        trigger: Trigger::Manual,
        actor: "t".into(),
        reason: None,
        emergency: false,
        evict: true,
        status,
        step,
        step_done: done,
        attempts: 0,
        error: None,
        pending_version: None,
        previous_version: None,
        started_at: t,
        updated_at: t,
        activate_after: None,
        retire_after: None,
        lease: None,
        rollback_owed: false,
    }
}

#[test]
fn table_of_next_actions() {
    let now = Timestamp::from_second(1_000).expect("valid");
    let later = Timestamp::from_second(2_000).expect("valid");
    let earlier = Timestamp::from_second(10).expect("valid");
    use RotationStatus::*;
    use Step::*;
    let cases: Vec<(Rotation, Action)> = vec![
        (rotation(Running, Create, false), Action::Run(Create)),
        (rotation(Running, Create, true), Action::Run(Set)),
        (rotation(Running, Set, false), Action::Run(Set)),
        (rotation(Running, Test, true), Action::Run(Activate)),
        (
            Rotation {
                activate_after: Some(later),
                ..rotation(Running, Test, true)
            },
            Action::WaitUntil(Activate, later),
        ),
        (
            Rotation {
                activate_after: Some(earlier),
                ..rotation(Running, Activate, false)
            },
            Action::Run(Activate),
        ),
        (rotation(Running, Activate, true), Action::Run(Finish)),
        (rotation(Running, Finish, false), Action::Run(Finish)),
        (
            Rotation {
                retire_after: Some(later),
                ..rotation(Grace, Finish, true)
            },
            Action::WaitUntil(Retire, later),
        ),
        (
            Rotation {
                retire_after: Some(earlier),
                ..rotation(Grace, Finish, true)
            },
            Action::Run(Retire),
        ),
        (rotation(Completed, Retire, true), Action::Done),
        (rotation(Failed, Set, false), Action::Done),
        (rotation(Aborted, Create, true), Action::Done),
    ];
    for (r, want) in cases {
        assert_eq!(
            next_action(&r, now),
            want,
            "{:?} {:?} done={}",
            r.status,
            r.step,
            r.step_done
        );
    }
}

fn any_status() -> impl Strategy<Value = RotationStatus> {
    prop_oneof![
        Just(RotationStatus::Running),
        Just(RotationStatus::Grace),
        Just(RotationStatus::Completed),
        Just(RotationStatus::Failed),
        Just(RotationStatus::Aborted),
    ]
}

proptest! {
    /// ARCHITECTURE.md invariant 10: retire never runs before grace ends, and only after finish.
    #[test]
    fn never_retires_before_grace(
        status in any_status(),
        step_i in 0usize..6,
        done: bool,
        retire_at in proptest::option::of(0i64..4_000),
        now_s in 0i64..4_000,
    ) {
        let mut r = rotation(status, Step::ORDER[step_i], done);
        r.retire_after = retire_at.map(|s| Timestamp::from_second(s).expect("valid"));
        let now = Timestamp::from_second(now_s).expect("valid");
        if let Action::Run(Step::Retire) = next_action(&r, now) {
            prop_assert!(matches!(r.status, RotationStatus::Grace | RotationStatus::Running));
            if r.status == RotationStatus::Running {
                prop_assert!(r.retire_after.is_some_and(|t| t <= now));
            } else if let Some(t) = r.retire_after {
                prop_assert!(t <= now);
            }
        }
    }

    /// Steps only move forward: the next step is the started one or the one after it.
    #[test]
    fn steps_move_forward(step_i in 0usize..6, done: bool) {
        let r = rotation(RotationStatus::Running, Step::ORDER[step_i], done);
        let now = Timestamp::from_second(0).expect("valid");
        match next_action(&r, now) {
            Action::Run(s) | Action::WaitUntil(s, _) => {
                prop_assert!(s == r.step || Some(s) == r.step.next());
                prop_assert!(done || s == r.step);
            }
            // Retire is reached through Grace, which sets retire_after; without it there is nothing to do.
            Action::Done => prop_assert!(done || r.step == Step::Retire),
        }
    }
}

// ---- transitions -------------------------------------------------------------------------

fn at(s: i64) -> Timestamp {
    Timestamp::from_second(s).expect("valid")
}

fn begun(emergency: bool, previous: bool) -> Rotation {
    let lease = Lease {
        owner: "h:1:n".into(),
        token: 1,
        expires_at: at(10_000),
    };
    Rotation::begin(
        Begin {
            id: RotationId::generate(),
            secret: SecretName::new("s").expect("valid"),
            trigger: Trigger::Manual,
            actor: "t".into(),
            reason: None,
            emergency,
            evict: true,
            previous_version: previous.then(VersionId::generate),
        },
        at(1_000),
        lease,
    )
}

/// Asks for the transition of `step` passing, whatever `next_action` says.
fn pass(
    r: &mut Rotation,
    step: Step,
    grace: crate::Duration,
    prepublish: crate::Duration,
    now: Timestamp,
) -> Result<(), TransitionError> {
    match step {
        Step::Create => r.created(VersionId::generate(), prepublish, now),
        Step::Set => r.set_passed(now),
        Step::Test => r.test_passed(now),
        Step::Activate => r.activated(now),
        Step::Finish => r.finished(grace, now),
        Step::Retire => r.retired(now),
    }
}

#[test]
fn a_rotation_in_order() {
    let grace = crate::Duration::from_secs(600);
    let mut r = begun(false, true);
    let t = at(1_000);
    assert!(r.finished(grace, t).is_err(), "finish before test");
    assert!(r.set_passed(t).is_err(), "set before create");
    r.created(VersionId::generate(), crate::Duration::ZERO, t)
        .expect("create");
    r.set_passed(t).expect("set");
    assert!(r.finished(grace, t).is_err(), "finish before test");
    r.test_passed(t).expect("test");
    assert_eq!(r.step, Step::Finish, "no prepublish: straight to finish");
    r.finished(grace, t).expect("finish");
    assert_eq!(r.status, RotationStatus::Grace);
    assert_eq!(r.retire_after, Some(at(1_600)));
    assert!(r.retired(at(1_599)).is_err(), "retire before grace ends");
    r.retired(at(1_600)).expect("retire");
    assert_eq!(r.status, RotationStatus::Completed);
    let done = r.clone();
    assert!(r.aborted(None).is_err());
    assert!(r.retired(at(9_000)).is_err());
    assert_eq!(r, done);
}

#[test]
fn prepublish_waits_to_activate_except_in_an_emergency() {
    let pre = crate::Duration::from_secs(300);
    for (emergency, want) in [(false, Some(at(1_300))), (true, None)] {
        let mut r = begun(emergency, true);
        r.created(VersionId::generate(), pre, at(1_000))
            .expect("create");
        assert_eq!(r.activate_after, want);
        r.set_passed(at(1_000)).expect("set");
        r.test_passed(at(1_000)).expect("test");
        if want.is_some() {
            assert_eq!(r.step, Step::Activate);
            assert!(r.activated(at(1_299)).is_err());
            r.activated(at(1_300)).expect("activate");
        }
        assert_eq!(r.step, Step::Finish);
    }
}

#[test]
fn emergency_and_first_rotations_keep_no_grace() {
    for (emergency, previous) in [(true, true), (false, false)] {
        let mut r = begun(emergency, previous);
        let t = at(1_000);
        r.created(VersionId::generate(), crate::Duration::ZERO, t)
            .expect("create");
        r.set_passed(t).expect("set");
        r.test_passed(t).expect("test");
        r.finished(crate::Duration::from_secs(600), t)
            .expect("finish");
        assert_eq!(r.retire_after, Some(t));
    }
}

#[test]
fn a_settled_rollback_keeps_why_it_failed() {
    let mut r = begun(false, true);
    let v = VersionId::generate();
    r.step_failed(
        "step set failed: down; rollback owed: the target may still accept it".into(),
        true,
    )
    .expect("fail");
    r.rollback_still_owed().expect("still owed");
    assert_eq!(r.attempts, 2);
    r.rollback_settled(&v, None, at(2_000)).expect("settled");
    assert!(!r.rollback_owed);
    assert_eq!(r.status, RotationStatus::Failed);
    let error = r.error.clone().expect("error");
    assert!(
        error.starts_with("step set failed: down; rolled back at"),
        "{error}"
    );
    assert!(r.rollback_still_owed().is_err(), "nothing owed any more");
}

/// One move of a random run: mostly what `next_action` says, with interference.
#[derive(Debug, Clone)]
enum Move {
    /// Run the step `next_action` names: it passes, or fails (owing the rollback or not).
    Drive {
        pass: bool,
        owed: bool,
    },
    /// Time passes.
    Wait(i64),
    /// Time jumps to what `next_action` waits for.
    WaitOut,
    Abort,
    AbortUnsettled,
    Supersede,
    EndGrace,
    Settle {
        abort: bool,
    },
    StillOwed,
    /// Any step's transition, whatever `next_action` says.
    Force(usize),
}

fn any_move() -> impl Strategy<Value = Move> {
    prop_oneof![
        6 => Just(Move::Drive { pass: true, owed: false }),
        1 => Just(Move::Drive { pass: false, owed: false }),
        1 => Just(Move::Drive { pass: false, owed: true }),
        2 => (0i64..2_000).prop_map(Move::Wait),
        2 => Just(Move::WaitOut),
        1 => Just(Move::Abort),
        1 => Just(Move::AbortUnsettled),
        1 => Just(Move::Supersede),
        1 => Just(Move::EndGrace),
        1 => any::<bool>().prop_map(|abort| Move::Settle { abort }),
        1 => Just(Move::StillOwed),
        3 => (0usize..6).prop_map(Move::Force),
    ]
}

/// Ended for good: completed, aborted, or failed with nothing owed.
fn settled(r: &Rotation) -> bool {
    matches!(
        r.status,
        RotationStatus::Completed | RotationStatus::Aborted
    ) || (r.status == RotationStatus::Failed && !r.rollback_owed)
}

proptest! {
    /// Random runs driven by `next_action`, with aborts, failures, supersedes, owed
    /// rollbacks, waits and transitions asked for out of turn: steps only move forward, an
    /// ended rotation never changes again (but for settling an owed rollback), retire comes
    /// only after finish and after grace, and finish (current moves) only after test passed.
    #[test]
    fn transitions_keep_the_invariants(
        emergency: bool,
        previous: bool,
        grace_s in 0u64..3_000,
        pre_s in prop_oneof![Just(0u64), 1u64..3_000],
        moves in proptest::collection::vec(any_move(), 1..60),
    ) {
        let grace = crate::Duration::from_secs(grace_s);
        let prepublish = crate::Duration::from_secs(pre_s);
        let mut r = begun(emergency, previous);
        let mut now = at(1_000);
        let mut tested = false;
        // The earliest time retire may run, known once finish ran.
        let mut earliest_retire: Option<Timestamp> = None;
        for mv in moves {
            let before = r.clone();
            let mut ran: Option<Step> = None;
            let result = match mv {
                Move::Drive { pass: ok, owed } => match next_action(&r, now) {
                    Action::Run(step) => {
                        if ok {
                            ran = Some(step);
                            let res = pass(&mut r, step, grace, prepublish, now);
                            prop_assert!(res.is_ok(), "next_action's step refused: {res:?}");
                            res
                        } else if step == Step::Retire {
                            r.retire_failed("step retire failed".into(), now)
                        } else {
                            r.step_failed(format!("step {step} failed"), owed)
                        }
                    }
                    Action::WaitUntil(_, _) | Action::Done => Ok(()),
                },
                Move::Wait(s) => {
                    now = now.checked_add(jiff::SignedDuration::from_secs(s)).expect("in range");
                    Ok(())
                }
                Move::WaitOut => {
                    if let Action::WaitUntil(_, t) = next_action(&r, now) {
                        now = t;
                    }
                    Ok(())
                }
                Move::Abort => r.aborted(Some("test")),
                Move::AbortUnsettled => r.abort_unsettled("aborted, but the rollback failed".into()),
                Move::Supersede => r.superseded_by(&RotationId::generate()),
                Move::EndGrace => {
                    let res = r.end_grace(now);
                    if res.is_ok() {
                        // `rotor rotate --emergency` ends the grace of the rotation before it.
                        earliest_retire = earliest_retire.map(|t| t.min(now));
                    }
                    res
                }
                Move::Settle { abort } => {
                    r.rollback_settled(&VersionId::generate(), abort.then_some("test"), now)
                }
                Move::StillOwed => r.rollback_still_owed(),
                Move::Force(i) => {
                    let step = Step::ORDER[i];
                    let res = pass(&mut r, step, grace, prepublish, now);
                    if res.is_ok() {
                        prop_assert_eq!(next_action(&before, now), Action::Run(step));
                        ran = Some(step);
                    }
                    res
                }
            };

            // A refused transition changes nothing.
            if result.is_err() {
                prop_assert_eq!(&r, &before);
                continue;
            }
            // Steps only move forward.
            prop_assert!(r.step >= before.step, "{:?} -> {:?}", before.step, r.step);
            // An ended rotation never changes again, except to settle an owed rollback.
            if settled(&before) {
                prop_assert_eq!(&r, &before);
            } else if before.status == RotationStatus::Failed {
                prop_assert!(matches!(r.status, RotationStatus::Failed | RotationStatus::Aborted));
                let only_settling = Rotation {
                    status: before.status,
                    error: before.error.clone(),
                    attempts: before.attempts,
                    rollback_owed: before.rollback_owed,
                    ..r.clone()
                };
                prop_assert_eq!(&only_settling, &before);
            }
            match ran {
                Some(Step::Test) => tested = true,
                Some(Step::Finish) => {
                    // Current moves only after test passed.
                    prop_assert!(tested, "finish before test passed");
                    let kept = if emergency || !previous { crate::Duration::ZERO } else { grace };
                    earliest_retire = now.checked_add(kept.to_span()).ok();
                    prop_assert_eq!(r.retire_after, earliest_retire);
                }
                Some(Step::Retire) => {
                    // Retire only after finish, and never before grace ended.
                    let t = earliest_retire;
                    prop_assert!(t.is_some(), "retire before finish");
                    prop_assert!(t.is_some_and(|t| t <= now), "retire before grace ended");
                    prop_assert_eq!(r.status, RotationStatus::Completed);
                }
                _ => {}
            }
        }
    }
}
