//! Owed rollbacks: a rotation that failed while its target was unreachable.
//!
//! The rule (ARCHITECTURE.md, "Failure paths"): a step that fails for good ends the rotation
//! `failed` with `current` untouched, whether or not the rollback reached the target. When it
//! did not, the target may still accept the pending value, so the rotation records the
//! rollback as owed (`Rotation::rollback_owed`) and the pending version keeps its label and
//! its sealed value. The secret is not busy: `put` works at once; `rotate` first retries the
//! owed rollback (the target must forget that value before it learns a new one); `abort`
//! retries it now; `resume` and the daemon retry it later. Only a rollback the target
//! confirmed drops the `pending` label.

use std::sync::Arc;

use rotor_core::rotator::StepContext;
use rotor_core::store::Op;
use rotor_core::{Rotation, Rotator, SecretName, SecretSpec, Stage, StoreError, VersionId};

use crate::{Engine, EngineError};

/// The audit reason of a rotation that ended with its rollback owed.
pub(crate) fn owed_reason(version: &VersionId) -> String {
    format!(
        "rollback owed: the target could not be reached and may still accept pending version {version} besides current; rotor keeps it sealed and retries the rollback"
    )
}

impl Engine {
    /// Failed rotations of `secret` whose rollback is still owed (for messages: `put` says
    /// what the target may still accept).
    pub async fn owed_of(&self, secret: &SecretName) -> Result<Vec<Rotation>, EngineError> {
        Ok(self
            .store()
            .owed_rollbacks()
            .await?
            .into_iter()
            .filter(|r| r.secret == *secret)
            .collect())
    }

    /// Tries every owed rollback of `spec`; the first that still fails is the error. The
    /// caller holds the secret's turn.
    pub(crate) async fn settle_owed_of(
        &self,
        spec: &SecretSpec,
        rotator: &Arc<dyn Rotator>,
    ) -> Result<(), EngineError> {
        for owed in self.owed_of(&spec.name).await? {
            self.settle_one(spec, rotator, owed, None).await?;
        }
        Ok(())
    }

    /// Retries the owed rollbacks (of `name`, or of every secret): `rotor resume` and the
    /// daemon call this. Each result is the pending version the target confirmed it no
    /// longer accepts, or why it still may.
    pub async fn settle_rollbacks(
        &self,
        name: Option<&str>,
    ) -> Result<Vec<(SecretName, Result<VersionId, EngineError>)>, EngineError> {
        if let Some(n) = name {
            self.spec(n)?;
        }
        let mut out = Vec::new();
        for owed in self.store().owed_rollbacks().await? {
            if name.is_some_and(|n| n != owed.secret.as_str()) {
                continue;
            }
            let secret = owed.secret.clone();
            let result = async {
                let spec = self.spec(secret.as_str())?;
                let rotator = self.rotator(spec)?.clone();
                let _turn = self.turns.take(&spec.name).await;
                self.settle_one(spec, &rotator, owed, None).await
            }
            .await;
            out.push((secret, result));
        }
        Ok(out)
    }

    /// Rolls the pending value of the failed rotation `owed` back on its target. On success
    /// the `pending` label goes and the rotation no longer owes anything (with `abort`, it is
    /// marked aborted: a person acted). On failure the attempt is audited, the lease let go,
    /// and the error says what the target may hold.
    pub(crate) async fn settle_one(
        &self,
        spec: &SecretSpec,
        rotator: &Arc<dyn Rotator>,
        owed: Rotation,
        abort: Option<&str>,
    ) -> Result<VersionId, EngineError> {
        let Some(pid) = owed.pending_version.clone() else {
            return Err(EngineError::Invalid {
                secret: spec.name.to_string(),
                what: format!(
                    "rotation {} owes a rollback but has no pending version",
                    owed.id
                ),
            });
        };
        let (lease, mut rot) = match self.claim(&owed).await {
            Ok(claimed) => claimed,
            // Settled by another process since it was listed.
            Err(EngineError::Store(StoreError::Ended { .. })) => return Ok(pid),
            Err(e) => return Err(e),
        };
        if !rot.rollback_owed {
            return Ok(pid);
        }
        let pending = self.store().read_version(&spec.name, &pid).await?;
        let current = self.store().read_stage(&spec.name, Stage::Current).await?;
        let admin = self.admin(spec).await?;
        let ctx = StepContext {
            spec,
            current: current.as_ref(),
            admin: admin.as_ref(),
            emergency: rot.emergency,
        };
        let result = match &pending {
            Some(p) => with_retry!(self, spec.name, rot.step, rotator.rollback(&ctx, p)),
            None => Ok(()),
        };
        let now = self.now();
        match result {
            Ok(()) => {
                rot.rollback_settled(&pid, abort, now)?;
                let event = self
                    .event(
                        if abort.is_some() {
                            "rotation.abort"
                        } else {
                            "rotation.rollback"
                        },
                        &spec.name,
                    )
                    .rotation(&rot.id)
                    .version(&pid)
                    .reason(Some(&format!(
                        "owed rollback done: the target no longer accepts pending version {pid}"
                    )));
                let ops = vec![Op::ClearStage {
                    secret: spec.name.clone(),
                    stage: Stage::Pending,
                    version: pid.clone(),
                }];
                self.commit(&mut rot, &lease, ops, event).await?;
                tracing::info!(secret = %spec.name, rotation = %rot.id, "owed rollback done");
                Ok(pid)
            }
            Err(e) => {
                rot.rollback_still_owed()?;
                let event = self
                    .event("rotation.rollback", &spec.name)
                    .rotation(&rot.id)
                    .version(&pid)
                    .reason(Some(&owed_reason(&pid)))
                    .failed(&e.to_string());
                self.commit(&mut rot, &lease, Vec::new(), event).await?;
                self.release(&rot.id, &lease).await;
                tracing::warn!(secret = %spec.name, rotation = %rot.id, error = %e, "owed rollback still fails");
                Err(EngineError::RollbackOwed {
                    secret: spec.name.to_string(),
                    version: pid.to_string(),
                    ended: None,
                    detail: e.to_string(),
                })
            }
        }
    }
}
