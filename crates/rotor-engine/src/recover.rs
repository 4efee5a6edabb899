//! Picking up rotations already under way: [`Engine::resume`] after a crash or a wait,
//! [`Engine::retire_due`] when grace ended, and [`Engine::abort`], which rolls a running one
//! back.

use std::sync::Arc;

use rotor_core::rotator::{PlannedStep, StepContext};
use rotor_core::store::{Change, Op};
use rotor_core::{
    Kind, Rotation, RotationId, RotationStatus, Rotator, RotatorError, SecretName, SecretSpec,
    Stage, Step, StoreError,
};

use crate::lease::fence;
use crate::outcome::outcome_of;
use crate::rollback::owed_reason;
use crate::{Engine, EngineError, Outcome};

impl Engine {
    /// Finishes interrupted rotations (of `name`, or all), including retires whose grace ended.
    pub async fn resume(
        &self,
        name: Option<&str>,
    ) -> Result<Vec<(SecretName, Result<Outcome, EngineError>)>, EngineError> {
        if let Some(n) = name {
            self.spec(n)?;
        }
        let mut out = Vec::new();
        for open in self.store.open_rotations().await? {
            if name.is_some_and(|n| n != open.secret.as_str()) {
                continue;
            }
            let secret = open.secret.clone();
            let result = self.resume_one(open).await;
            out.push((secret, result));
        }
        if let (Some(n), true) = (name, out.is_empty()) {
            return Err(EngineError::Nothing {
                secret: n.to_owned(),
                what: "resume (no interrupted rotation)",
            });
        }
        Ok(out)
    }

    async fn resume_one(&self, listed: Rotation) -> Result<Outcome, EngineError> {
        let spec = self.spec(listed.secret.as_str())?;
        let _turn = self.turns.take(&spec.name).await;
        // The list was read before this secret's turn came: judge from the record as it is now.
        let Some(open) = self.store.rotation(&listed.id).await? else {
            return Err(StoreError::RotationNotFound {
                rotation: listed.id.to_string(),
            }
            .into());
        };
        if !open.status.is_open() {
            // Someone finished it meanwhile (a replica, or this process's other job).
            return Ok(outcome_of(&open));
        }
        // A manual secret's open rotation comes from `rotor put`: only its retire is left, and
        // that touches no target.
        let rotator = if spec.kind == Kind::Manual {
            Arc::new(NoTarget) as Arc<dyn Rotator>
        } else {
            self.rotator(spec)?.clone()
        };
        if open.status == RotationStatus::Grace
            && open.retire_after.is_some_and(|t| t > self.clock.now())
        {
            // Nothing to do yet; report where it stands without taking the lease.
            return Ok(outcome_of(&open));
        }
        let (lease, open) = match self.claim(&open).await {
            Ok(claimed) => claimed,
            Err(EngineError::Store(StoreError::Ended { .. })) => {
                let now = self.store.rotation(&open.id).await?.unwrap_or(open);
                return Ok(outcome_of(&now));
            }
            Err(e) => return Err(e),
        };
        self.store
            .apply(
                Change::fenced(fence(&open, &lease))
                    .op(Op::SaveRotation(Box::new(open.clone())))
                    .audit(
                        self.event("rotation.resume", &open.secret)
                            .rotation(&open.id)
                            .reason(Some(&format!("at step {}", open.step))),
                    ),
            )
            .await?;
        self.drive(spec, &rotator, open, lease).await
    }

    /// Retires every previous value whose grace has ended.
    pub async fn retire_due(
        &self,
    ) -> Result<Vec<(SecretName, Result<Outcome, EngineError>)>, EngineError> {
        let now = self.clock.now();
        let mut out = Vec::new();
        for open in self.store.open_rotations().await? {
            if open.status != RotationStatus::Grace || open.retire_after.is_some_and(|t| t > now) {
                continue;
            }
            let secret = open.secret.clone();
            let result = self.resume_one(open).await;
            out.push((secret, result));
        }
        Ok(out)
    }

    /// Rolls back the running rotation of `name`: the target forgets the pending value, the
    /// store drops its `pending` label, and `current` is untouched.
    pub async fn abort(&self, name: &str, reason: Option<&str>) -> Result<RotationId, EngineError> {
        let spec = self.spec(name)?;
        let _turn = self.turns.take(&spec.name).await;
        let open = self
            .store
            .open_rotations()
            .await?
            .into_iter()
            .find(|r| r.secret == spec.name);
        let Some(rot) = open else {
            // A failed rotation whose rollback is still owed: abort tries it now.
            if let Some(owed) = self.owed_of(&spec.name).await?.into_iter().next() {
                let rotator = self.rotator(spec)?.clone();
                let id = owed.id.clone();
                self.settle_one(spec, &rotator, owed, reason.or(Some("rotor abort")))
                    .await?;
                return Ok(id);
            }
            return Err(EngineError::Nothing {
                secret: name.to_owned(),
                what: "abort (no rotation in progress)",
            });
        };
        if rot.status != RotationStatus::Running {
            return Err(EngineError::Invalid {
                secret: name.to_owned(),
                what: format!(
                    "rotation {} already finished (the new value is current); to go back, `rotor put {name}` the value you want",
                    rot.id
                ),
            });
        }
        let (lease, mut rot) = self.claim(&rot).await?;
        if rot.status != RotationStatus::Running {
            return Err(EngineError::Invalid {
                secret: name.to_owned(),
                what: format!(
                    "rotation {} finished while the abort waited (the new value is current); to go back, `rotor put {name}` the value you want",
                    rot.id
                ),
            });
        }
        let mut ops = Vec::new();
        if let Some(pid) = rot.pending_version.clone() {
            if rot.step > Step::Set || (rot.step == Step::Set && !rot.step_done) {
                let rotator = self.rotator(spec)?.clone();
                if let Some(pending) = self.store.read_version(&spec.name, &pid).await? {
                    let current = self.store.read_stage(&spec.name, Stage::Current).await?;
                    let admin = self.admin(spec).await?;
                    let ctx = StepContext {
                        spec,
                        current: current.as_ref(),
                        admin: admin.as_ref(),
                        emergency: rot.emergency,
                    };
                    if let Err(e) =
                        with_retry!(self, spec.name, Step::Set, rotator.rollback(&ctx, &pending))
                    {
                        // The abort ends the rotation all the same (the secret is no longer
                        // busy); the rollback is owed, as after a failed step.
                        let message = format!("aborted, but the rollback failed: {e}");
                        rot.abort_unsettled(message.clone())?;
                        let event = self
                            .event("rotation.failed", &spec.name)
                            .rotation(&rot.id)
                            .version(&pid)
                            .reason(Some(&owed_reason(&pid)))
                            .failed(&message);
                        self.commit(&mut rot, &lease, Vec::new(), event).await?;
                        return Err(EngineError::RollbackOwed {
                            secret: name.to_owned(),
                            version: pid.to_string(),
                            ended: Some(rot.step),
                            detail: e.to_string(),
                        });
                    }
                }
            }
            ops.push(Op::ClearStage {
                secret: spec.name.clone(),
                stage: Stage::Pending,
                version: pid,
            });
        }
        rot.aborted(reason)?;
        let event = self
            .event("rotation.abort", &spec.name)
            .rotation(&rot.id)
            .reason(reason);
        let event = match &rot.pending_version {
            Some(v) => event.version(v),
            None => event,
        };
        self.commit(&mut rot, &lease, ops, event).await?;
        Ok(rot.id)
    }
}

/// The rotator for secrets without a target (manual kind): every step is a no-op except
/// create, which cannot invent a value.
#[derive(Debug)]
struct NoTarget;

#[async_trait::async_trait]
impl Rotator for NoTarget {
    fn kind(&self) -> Kind {
        Kind::Manual
    }
    fn plan(&self, _spec: &SecretSpec) -> Vec<PlannedStep> {
        Vec::new()
    }
    async fn create(
        &self,
        ctx: &StepContext<'_>,
    ) -> Result<rotor_core::rotator::Generated, RotatorError> {
        Err(RotatorError::permanent(format!(
            "secret {} is manual: supply its value with `rotor put`",
            ctx.spec.name
        )))
    }
}
