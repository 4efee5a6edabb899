//! The changes a rotation's record goes through, as pure methods on [`Rotation`].
//!
//! The engine does the IO (the target, the store); what each step does to the record is
//! decided here, with no IO and no clock: the caller passes the time. Every step
//! transition is allowed only when [`next_action`] at that time would run that step, so the
//! record itself refuses what the state machine does not allow: steps only move forward, a
//! rotation that is completed, aborted or failed (with nothing owed) never changes again,
//! `retire` never comes before grace ends or before `finish`, and `finish` (where `current`
//! moves) only comes after `test` passed. A refusal is a [`TransitionError`]: a bug in the
//! caller or a record edited by hand, never a target's failure.

use jiff::Timestamp;

use super::{Action, Lease, Rotation, RotationId, RotationStatus, Step, Trigger, next_action};
use crate::{Duration, SecretName, VersionId};

/// A transition the record's state does not allow. Holds no value: ids, status and step only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "rotation {rotation} cannot {transition}: it is {status} at step {step}{}",
    if *step_done { " (done)" } else { "" }
)]
pub struct TransitionError {
    pub rotation: RotationId,
    pub secret: SecretName,
    /// What was asked, in words ("finish", "end grace").
    pub transition: &'static str,
    pub status: RotationStatus,
    pub step: Step,
    pub step_done: bool,
}

/// Who starts a rotation, for what, and what it replaces: the fields a new record takes from
/// its caller.
#[derive(Debug, Clone)]
pub struct Begin {
    pub id: RotationId,
    pub secret: SecretName,
    pub trigger: Trigger,
    pub actor: String,
    pub reason: Option<String>,
    pub emergency: bool,
    pub evict: bool,
    /// The version current when the rotation starts (it becomes previous at finish).
    pub previous_version: Option<VersionId>,
}

impl Rotation {
    /// A rotation about to run `create`, holding `lease`. An emergency is recorded as
    /// triggered by [`Trigger::Emergency`], whatever asked for it.
    pub fn begin(b: Begin, now: Timestamp, lease: Lease) -> Rotation {
        Rotation {
            id: b.id,
            secret: b.secret,
            trigger: if b.emergency {
                Trigger::Emergency
            } else {
                b.trigger
            },
            actor: b.actor,
            reason: b.reason,
            emergency: b.emergency,
            evict: b.evict,
            status: RotationStatus::Running,
            step: Step::Create,
            step_done: false,
            attempts: 0,
            error: None,
            pending_version: None,
            previous_version: b.previous_version,
            started_at: now,
            updated_at: now,
            activate_after: None,
            retire_after: None,
            lease: Some(lease),
            rollback_owed: false,
        }
    }

    /// The record of a value an operator supplied (`rotor put`), stored as `version` and made
    /// current in the same commit: only `retire` is left, after `grace`. Without a previous
    /// value, or with grace 0, there is nothing to keep valid and the rotation is completed.
    pub fn put(b: Begin, version: VersionId, grace: Duration, now: Timestamp) -> Rotation {
        Rotation {
            id: b.id,
            secret: b.secret,
            trigger: b.trigger,
            actor: b.actor,
            reason: b.reason,
            emergency: b.emergency,
            evict: b.evict,
            status: if b.previous_version.is_some() && !grace.is_zero() {
                RotationStatus::Grace
            } else {
                RotationStatus::Completed
            },
            step: Step::Retire,
            step_done: false,
            attempts: 0,
            error: None,
            pending_version: Some(version),
            previous_version: b.previous_version,
            started_at: now,
            updated_at: now,
            activate_after: None,
            retire_after: now.checked_add(grace.to_span()).ok(),
            lease: None,
            rollback_owed: false,
        }
    }

    fn refuse(&self, transition: &'static str) -> TransitionError {
        TransitionError {
            rotation: self.id.clone(),
            secret: self.secret.clone(),
            transition,
            status: self.status,
            step: self.step,
            step_done: self.step_done,
        }
    }

    /// Ok when [`next_action`] at `now` runs `step`.
    fn runs(
        &self,
        step: Step,
        now: Timestamp,
        transition: &'static str,
    ) -> Result<(), TransitionError> {
        if next_action(self, now) == Action::Run(step) {
            Ok(())
        } else {
            Err(self.refuse(transition))
        }
    }

    /// `create` made `version` (stored `pending` in the same commit): on to `set`. A
    /// prepublished key (`prepublish` > 0, JWT) may activate only after `prepublish`, except in
    /// an emergency.
    pub fn created(
        &mut self,
        version: VersionId,
        prepublish: Duration,
        now: Timestamp,
    ) -> Result<(), TransitionError> {
        self.runs(Step::Create, now, "record create")?;
        self.pending_version = Some(version);
        self.step = Step::Set;
        self.step_done = false;
        self.attempts = 0;
        if !prepublish.is_zero() && !self.emergency {
            self.activate_after = now.checked_add(prepublish.to_span()).ok();
        }
        Ok(())
    }

    /// `create` failed before anything reached a target: the rotation ends `failed` in the
    /// commit that begins it, so it never held a lease.
    pub fn create_failed(
        &mut self,
        message: String,
        now: Timestamp,
    ) -> Result<(), TransitionError> {
        self.runs(Step::Create, now, "fail create")?;
        self.status = RotationStatus::Failed;
        self.error = Some(message);
        self.lease = None;
        Ok(())
    }

    /// The target accepts the pending value: on to `test`.
    pub fn set_passed(&mut self, now: Timestamp) -> Result<(), TransitionError> {
        self.runs(Step::Set, now, "record set")?;
        self.step = Step::Test;
        self.step_done = false;
        self.attempts = 0;
        Ok(())
    }

    /// The pending value works on the target: on to `activate` when it must wait for
    /// `activate_after`, else straight to `finish`.
    pub fn test_passed(&mut self, now: Timestamp) -> Result<(), TransitionError> {
        self.runs(Step::Test, now, "record test")?;
        self.step = if self.activate_after.is_none() {
            Step::Finish
        } else {
            Step::Activate
        };
        self.step_done = false;
        self.attempts = 0;
        Ok(())
    }

    /// `activate_after` has passed: on to `finish`.
    pub fn activated(&mut self, now: Timestamp) -> Result<(), TransitionError> {
        self.runs(Step::Activate, now, "activate")?;
        self.step = Step::Finish;
        self.step_done = false;
        Ok(())
    }

    /// `finish` moved the stages (pending → current): the rotation is in grace until `now +
    /// grace`, then `retire`. Nothing is kept valid (grace 0) without a previous value, or in
    /// an emergency.
    pub fn finished(&mut self, grace: Duration, now: Timestamp) -> Result<(), TransitionError> {
        self.runs(Step::Finish, now, "finish")?;
        let grace = if self.emergency || self.previous_version.is_none() {
            Duration::ZERO
        } else {
            grace
        };
        self.status = RotationStatus::Grace;
        self.step = Step::Retire;
        self.step_done = false;
        self.retire_after = Some(now.checked_add(grace.to_span()).unwrap_or(now));
        Ok(())
    }

    /// An emergency rotation ends the grace of the one before it now, so it may retire at once.
    pub fn end_grace(&mut self, now: Timestamp) -> Result<(), TransitionError> {
        if self.status != RotationStatus::Grace {
            return Err(self.refuse("end grace"));
        }
        self.retire_after = Some(now);
        Ok(())
    }

    /// `retire` removed the previous value (or there was none): nothing more to do.
    pub fn retired(&mut self, now: Timestamp) -> Result<(), TransitionError> {
        self.runs(Step::Retire, now, "retire")?;
        self.status = RotationStatus::Completed;
        self.step_done = true;
        self.error = None;
        Ok(())
    }

    /// `retire` failed: the rotation stays in grace with the error, to be tried again.
    pub fn retire_failed(
        &mut self,
        message: String,
        now: Timestamp,
    ) -> Result<(), TransitionError> {
        self.runs(Step::Retire, now, "fail retire")?;
        self.error = Some(message);
        self.attempts = self.attempts.saturating_add(1);
        Ok(())
    }

    /// A step before retire failed for good: the rotation ends `failed`, owing the rollback
    /// when the target could not be reached to forget the pending value.
    pub fn step_failed(
        &mut self,
        message: String,
        rollback_owed: bool,
    ) -> Result<(), TransitionError> {
        if self.status != RotationStatus::Running {
            return Err(self.refuse("fail a step"));
        }
        self.error = Some(message);
        self.attempts = self.attempts.saturating_add(1);
        self.status = RotationStatus::Failed;
        self.rollback_owed = rollback_owed;
        Ok(())
    }

    /// `rotor abort` rolled the running rotation back (`reason` as given).
    pub fn aborted(&mut self, reason: Option<&str>) -> Result<(), TransitionError> {
        if self.status != RotationStatus::Running {
            return Err(self.refuse("abort"));
        }
        self.status = RotationStatus::Aborted;
        self.error = reason.map(|r| format!("aborted: {r}"));
        Ok(())
    }

    /// `rotor abort` could not reach the target to roll back: the rotation ends all the same
    /// (the secret is no longer busy), `failed` with the rollback owed.
    pub fn abort_unsettled(&mut self, message: String) -> Result<(), TransitionError> {
        if self.status != RotationStatus::Running {
            return Err(self.refuse("abort"));
        }
        self.status = RotationStatus::Failed;
        self.rollback_owed = true;
        self.error = Some(message);
        Ok(())
    }

    /// A `rotor put` (rotation `put`) made a new current while this one was in grace: its
    /// previous value lost its label, so there is nothing left to retire.
    pub fn superseded_by(&mut self, put: &RotationId) -> Result<(), TransitionError> {
        if self.status != RotationStatus::Grace {
            return Err(self.refuse("be superseded"));
        }
        self.status = RotationStatus::Completed;
        self.error = Some(format!("superseded by put {put}"));
        Ok(())
    }

    /// The owed rollback of pending `version` is done: the rotation owes nothing more. With
    /// `abort` (a person acted) it is marked aborted. The error keeps why it failed.
    pub fn rollback_settled(
        &mut self,
        version: &VersionId,
        abort: Option<&str>,
        now: Timestamp,
    ) -> Result<(), TransitionError> {
        if !self.owes_rollback() {
            return Err(self.refuse("settle a rollback"));
        }
        self.rollback_owed = false;
        let before = self
            .error
            .as_deref()
            .and_then(|e| e.split("; rollback owed").next())
            .unwrap_or("failed")
            .to_owned();
        self.error = Some(match abort {
            Some(reason) => format!("aborted: {reason} ({before}; rolled back at {now})"),
            None => format!(
                "{before}; rolled back at {now}: the target no longer accepts pending version {version}"
            ),
        });
        if abort.is_some() {
            self.status = RotationStatus::Aborted;
        }
        Ok(())
    }

    /// Another try of the owed rollback failed: still owed, one attempt more.
    pub fn rollback_still_owed(&mut self) -> Result<(), TransitionError> {
        if !self.owes_rollback() {
            return Err(self.refuse("retry a rollback"));
        }
        self.attempts = self.attempts.saturating_add(1);
        Ok(())
    }

    /// Ended `failed` with the rollback owed: the only ended rotation that still changes.
    fn owes_rollback(&self) -> bool {
        self.status == RotationStatus::Failed && self.rollback_owed
    }
}
