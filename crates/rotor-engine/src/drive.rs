//! The drive loop: run the step [`next_action`] names, record it, repeat; and what happens
//! when a step fails for good (`fail`, `retire_failed`).

use std::sync::Arc;

use jiff::Timestamp;
use rotor_core::rotation::{Action, Lease, next_action};
use rotor_core::rotator::StepContext;
use rotor_core::store::{Op, Versioned};
use rotor_core::{Rotation, Rotator, RotatorError, SecretSpec, Stage, Step, StoreError};

use crate::failpoint;
use crate::outcome::outcome_of;
use crate::rollback::owed_reason;
use crate::{Engine, EngineError, Evicted, Outcome, Progress, StageChange};

impl Engine {
    pub(crate) async fn drive(
        &self,
        spec: &SecretSpec,
        rotator: &Arc<dyn Rotator>,
        mut rot: Rotation,
        lease: Lease,
    ) -> Result<Outcome, EngineError> {
        let mut evicted = None;
        loop {
            let now = self.clock.now();
            let step = match next_action(&rot, now) {
                Action::Done | Action::WaitUntil(_, _) => {
                    let mut outcome = outcome_of(&rot);
                    if let Outcome::Completed { evicted: e, .. } = &mut outcome {
                        *e = evicted;
                    }
                    return Ok(outcome);
                }
                Action::Run(step) => step,
            };
            self.report(Progress::Started {
                secret: spec.name.clone(),
                step,
            });
            match self
                .run_step(spec, rotator, &mut rot, &lease, step, now, &mut evicted)
                .await
            {
                Ok(()) => self.report(Progress::Done {
                    secret: spec.name.clone(),
                    step,
                }),
                Err(e) => {
                    self.report(Progress::Failed {
                        secret: spec.name.clone(),
                        step,
                        error: e.to_string(),
                    });
                    self.release(&rot.id, &lease).await;
                    return Err(e);
                }
            }
        }
    }

    /// Runs `step`, which [`next_action`] named at `now`.
    #[allow(clippy::too_many_arguments)]
    async fn run_step(
        &self,
        spec: &SecretSpec,
        rotator: &Arc<dyn Rotator>,
        rot: &mut Rotation,
        lease: &Lease,
        step: Step,
        now: Timestamp,
        evicted: &mut Option<Evicted>,
    ) -> Result<(), EngineError> {
        let current = self.store.read_stage(&spec.name, Stage::Current).await?;
        let admin = self.admin(spec).await?;
        let ctx = StepContext {
            spec,
            current: current.as_ref(),
            admin: admin.as_ref(),
            emergency: rot.emergency,
        };
        match step {
            Step::Create => {
                // Only rotations recorded by an older rotor stop here; `rotate` creates the
                // value in the same commit that begins the rotation.
                let generated = match with_retry!(self, spec.name, step, rotator.create(&ctx)) {
                    Ok(g) => g,
                    Err(e) => {
                        return Err(self.fail(spec, rotator, rot, lease, step, e, None).await);
                    }
                };
                let (op, event) = self.pending_version(spec, rot, generated)?;
                self.commit(rot, lease, vec![op], event).await?;
                failpoint::hit("after-create");
            }
            Step::Set | Step::Test => {
                let pending = self.pending(spec, rot).await?;
                let result = if step == Step::Set {
                    with_retry!(self, spec.name, step, rotator.set(&ctx, &pending))
                } else {
                    with_retry!(self, spec.name, step, rotator.test(&ctx, &pending))
                };
                if let Err(e) = result {
                    return Err(self
                        .fail(spec, rotator, rot, lease, step, e, Some(&pending))
                        .await);
                }
                if step == Step::Set {
                    rot.set_passed(now)?;
                } else {
                    // Without prepublish there is nothing to wait for: straight to finish.
                    rot.test_passed(now)?;
                }
                let action = if step == Step::Set {
                    "rotation.set"
                } else {
                    "rotation.test"
                };
                let event = self
                    .event(action, &spec.name)
                    .rotation(&rot.id)
                    .version(&pending.meta.id);
                self.commit(rot, lease, Vec::new(), event).await?;
                failpoint::hit(if step == Step::Set {
                    "after-set"
                } else {
                    "after-test"
                });
            }
            Step::Activate => {
                rot.activated(now)?;
                let event = self
                    .event("rotation.activate", &spec.name)
                    .rotation(&rot.id);
                self.commit(rot, lease, Vec::new(), event).await?;
            }
            Step::Finish => {
                let pending_id =
                    rot.pending_version
                        .clone()
                        .ok_or_else(|| EngineError::Invalid {
                            secret: spec.name.to_string(),
                            what: format!(
                                "rotation {} reached finish without a pending version",
                                rot.id
                            ),
                        })?;
                // The target learns first (idempotent, so a crash before the commit below
                // only repeats it); a refusal fails the rotation before any stage moved.
                let pending = self.pending(spec, rot).await?;
                if let Err(e) = with_retry!(self, spec.name, step, rotator.finish(&ctx, &pending)) {
                    return Err(self
                        .fail(spec, rotator, rot, lease, step, e, Some(&pending))
                        .await);
                }
                // Nothing to keep valid when there was no previous value, or in an emergency.
                rot.finished(spec.policy.grace, self.clock.now())?;
                let mut event = self
                    .event("rotation.finish", &spec.name)
                    .rotation(&rot.id)
                    .version(&pending_id);
                if let Some(prev) = &rot.previous_version {
                    event = event.version(prev);
                }
                self.commit(
                    rot,
                    lease,
                    vec![Op::Promote {
                        secret: spec.name.clone(),
                        version: pending_id,
                    }],
                    event,
                )
                .await?;
                tracing::info!(secret = %spec.name, rotation = %rot.id, "rotation finished");
                failpoint::hit("after-finish");
                self.deliver(&spec.name, StageChange::Finished).await;
            }
            Step::Retire => {
                let mut ops = Vec::new();
                let mut event = self.event("rotation.retire", &spec.name).rotation(&rot.id);
                if let Some(prev_id) = rot.previous_version.clone() {
                    let previous = self.store.read_version(&spec.name, &prev_id).await?;
                    let current = current.as_ref().ok_or_else(|| EngineError::Invalid {
                        secret: spec.name.to_string(),
                        what: "no current value to retire against".into(),
                    })?;
                    // ARCHITECTURE.md invariant 10: retire the old value only while the new one tests good.
                    let checked = with_retry!(self, spec.name, step, rotator.test(&ctx, current));
                    let retired = match checked {
                        Ok(()) => match &previous {
                            Some(prev) => {
                                with_retry!(self, spec.name, step, rotator.retire(&ctx, prev))
                            }
                            None => Ok(()),
                        },
                        Err(e) => Err(RotatorError {
                            message: format!(
                                "the current value failed its test, so the previous one is kept: {}",
                                e.message
                            ),
                            ..e
                        }),
                    };
                    if let Err(e) = retired {
                        return Err(self.retire_failed(spec, rot, lease, e, now).await);
                    }
                    failpoint::hit("during-retire");
                    if rot.emergency
                        && rot.evict
                        && let Some(prev) = &previous
                    {
                        let result = match rotator.evict(&ctx, prev).await {
                            Ok(ev) => {
                                if ev.surviving > 0 {
                                    tracing::error!(secret = %spec.name, surviving = ev.surviving, "sessions survived eviction");
                                }
                                event = event.reason(Some(&format!(
                                    "emergency: ended {} session(s) of the old credentials; {} survived",
                                    ev.ended, ev.surviving
                                )));
                                Evicted {
                                    ended: ev.ended,
                                    surviving: ev.surviving,
                                    error: None,
                                }
                            }
                            Err(e) => {
                                tracing::error!(secret = %spec.name, error = %e, "eviction failed");
                                event =
                                    event.reason(Some(&format!("emergency: eviction failed: {e}")));
                                Evicted {
                                    ended: 0,
                                    surviving: 0,
                                    error: Some(e.to_string()),
                                }
                            }
                        };
                        *evicted = Some(result);
                    }
                    event = event.version(&prev_id);
                    ops.push(Op::ClearStage {
                        secret: spec.name.clone(),
                        stage: Stage::Previous,
                        version: prev_id,
                    });
                }
                rot.retired(now)?;
                let retired_something = !ops.is_empty();
                self.commit(rot, lease, ops, event).await?;
                if retired_something {
                    failpoint::hit("after-retire");
                    self.deliver(&spec.name, StageChange::Retired).await;
                }
            }
        }
        Ok(())
    }

    /// A step failed for good: roll the pending value back on the target, drop its label,
    /// and mark the rotation failed. The rotation ends `failed` even when the rollback cannot
    /// reach the target: then the rollback is recorded as owed (`rollback_owed`), the
    /// pending version keeps its label and sealed value, and it is retried later (see
    /// `rollback`); the secret is not left busy.
    #[allow(clippy::too_many_arguments)]
    async fn fail(
        &self,
        spec: &SecretSpec,
        rotator: &Arc<dyn Rotator>,
        rot: &mut Rotation,
        lease: &Lease,
        step: Step,
        error: RotatorError,
        pending: Option<&Versioned>,
    ) -> EngineError {
        tracing::error!(secret = %spec.name, step = %step, error = %error, "rotation step failed");
        let mut rolled_back = true;
        let mut ops = Vec::new();
        if let Some(pending) = pending {
            let current = self
                .store
                .read_stage(&spec.name, Stage::Current)
                .await
                .ok()
                .flatten();
            let admin = self.admin(spec).await.ok().flatten();
            let ctx = StepContext {
                spec,
                current: current.as_ref(),
                admin: admin.as_ref(),
                emergency: rot.emergency,
            };
            if let Err(e) = with_retry!(self, spec.name, step, rotator.rollback(&ctx, pending)) {
                tracing::error!(secret = %spec.name, error = %e, "rollback failed");
                rolled_back = false;
            } else {
                ops.push(Op::ClearStage {
                    secret: spec.name.clone(),
                    stage: Stage::Pending,
                    version: pending.meta.id.clone(),
                });
            }
        }
        let mut message = format!("step {step} failed: {error}");
        let owed = pending.filter(|_| !rolled_back).map(|p| p.meta.id.clone());
        if let Some(v) = &owed {
            message.push_str(&format!(
                "; rollback owed: the target may still accept pending version {v}"
            ));
        }
        if let Err(e) = rot.step_failed(message.clone(), owed.is_some()) {
            return e.into();
        }
        let mut event = self
            .event("rotation.failed", &spec.name)
            .rotation(&rot.id)
            .failed(&message);
        if let Some(v) = &rot.pending_version {
            event = event.version(v);
        }
        if let Some(v) = &owed {
            event.reason = Some(owed_reason(v));
        }
        if let Err(e) = self.commit(rot, lease, ops, event).await {
            return e;
        }
        match owed {
            Some(v) => EngineError::RollbackOwed {
                secret: spec.name.to_string(),
                version: v.to_string(),
                ended: Some(step),
                detail: error.to_string(),
            },
            None => EngineError::Step {
                secret: spec.name.to_string(),
                step,
                source: error,
                rolled_back,
            },
        }
    }

    /// Retire failed: the new value stays current and the previous stays accepted; the
    /// rotation stays in grace with the error, for `rotor retire --due` to try again.
    async fn retire_failed(
        &self,
        spec: &SecretSpec,
        rot: &mut Rotation,
        lease: &Lease,
        error: RotatorError,
        now: Timestamp,
    ) -> EngineError {
        let message = format!("step retire failed: {error}");
        if let Err(e) = rot.retire_failed(message.clone(), now) {
            return e.into();
        }
        let event = self
            .event("rotation.retire", &spec.name)
            .rotation(&rot.id)
            .failed(&message);
        if let Err(e) = self.commit(rot, lease, Vec::new(), event).await {
            return e;
        }
        EngineError::Step {
            secret: spec.name.to_string(),
            step: Step::Retire,
            source: error,
            rolled_back: false,
        }
    }

    async fn pending(&self, spec: &SecretSpec, rot: &Rotation) -> Result<Versioned, EngineError> {
        let id = rot
            .pending_version
            .as_ref()
            .ok_or_else(|| EngineError::Invalid {
                secret: spec.name.to_string(),
                what: format!("rotation {} has no pending version", rot.id),
            })?;
        self.store
            .read_version(&spec.name, id)
            .await?
            .ok_or_else(|| {
                StoreError::VersionNotFound {
                    secret: spec.name.to_string(),
                    version: id.to_string(),
                }
                .into()
            })
    }
}
