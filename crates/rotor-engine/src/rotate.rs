//! Starting a rotation: [`Engine::rotate`] (and what it would do, [`Engine::dry_run`]).
//! `create` stores the new value as `pending` in the same commit that begins the rotation;
//! the rest of the steps are the drive loop's.

use rotor_core::config::KindSettings;
use rotor_core::rotation::{Begin, Lease};
use rotor_core::rotator::{PlannedStep, StepContext};
use rotor_core::schedule::{self, Facts};
use rotor_core::store::{Change, NewVersion, Op};
use rotor_core::{
    AuditEvent, Rotation, RotationId, RotationStatus, SecretSpec, Stage, Step, StoreError, Trigger,
    VersionId,
};

use crate::failpoint;
use crate::{Engine, EngineError, Outcome, Progress, RotateOptions};

impl Engine {
    /// What rotating `name` would do, touching nothing.
    pub fn dry_run(
        &self,
        name: &str,
        opts: &RotateOptions,
    ) -> Result<Vec<PlannedStep>, EngineError> {
        let spec = self.spec(name)?;
        self.check_allowed(spec, opts)?;
        let rotator = self.rotator(spec)?;
        let mut steps = vec![PlannedStep {
            step: Step::Create,
            touches: format!("store a new pending version of {}", spec.name),
        }];
        steps.extend(
            rotator
                .plan(spec)
                .into_iter()
                .filter(|s| s.step != Step::Create),
        );
        steps.push(PlannedStep {
            step: Step::Finish,
            touches: "move stages: pending → current, current → previous".into(),
        });
        let grace = if opts.emergency {
            rotor_core::Duration::ZERO
        } else {
            spec.policy.grace
        };
        steps.push(PlannedStep {
            step: Step::Retire,
            touches: format!(
                "after {grace}: retire the previous value{}",
                if opts.emergency && opts.evict {
                    " and evict its sessions"
                } else {
                    ""
                }
            ),
        });
        steps.sort_by_key(|s| s.step);
        Ok(steps)
    }

    fn check_allowed(&self, spec: &SecretSpec, opts: &RotateOptions) -> Result<(), EngineError> {
        if spec.policy.requires_confirmation && !opts.confirm {
            return Err(EngineError::NeedsConfirmation {
                secret: spec.name.to_string(),
                why: spec.description.clone().unwrap_or_else(|| {
                    "its policy says rotating it needs a planned, confirmed change".into()
                }),
            });
        }
        Ok(())
    }

    /// Rotates `name` from create to finish, and retires at once when grace is 0.
    pub async fn rotate(&self, name: &str, opts: &RotateOptions) -> Result<Outcome, EngineError> {
        let spec = self.spec(name)?;
        self.check_allowed(spec, opts)?;
        let rotator = self.rotator(spec)?.clone();
        let _turn = self.turns.take(&spec.name).await;
        // A rollback still owed from a failed rotation comes first: the target must forget
        // that value before it learns a new one (and `pending` is free only then).
        self.settle_owed_of(spec, &rotator).await?;
        let now = self.clock.now();

        // An earlier rotation still in grace: retire it first when it may be retired.
        for open in self.store.open_rotations().await? {
            if open.secret != spec.name {
                continue;
            }
            match open.status {
                RotationStatus::Running => {
                    let lease = open.lease.clone();
                    return Err(StoreError::Busy {
                        secret: spec.name.to_string(),
                        rotation: open.id.to_string(),
                        owner: lease.as_ref().map_or("nobody".into(), |l| l.owner.clone()),
                        until: lease.map_or("-".into(), |l| l.expires_at.to_string()),
                    }
                    .into());
                }
                RotationStatus::Grace => {
                    let until = open.retire_after.unwrap_or(now);
                    if until > now && !opts.emergency {
                        return Err(EngineError::GraceNotOver {
                            secret: spec.name.to_string(),
                            until: until.to_string(),
                        });
                    }
                    let (lease, mut open) = match self.claim(&open).await {
                        Ok(claimed) => claimed,
                        // Another process retired it since the list was read.
                        Err(EngineError::Store(StoreError::Ended { .. })) => continue,
                        Err(e) => return Err(e),
                    };
                    if open.status == RotationStatus::Grace {
                        if opts.emergency {
                            open.end_grace(now)?;
                        }
                        self.drive(spec, &rotator, open, lease).await?;
                    }
                }
                _ => {}
            }
        }

        let current = self.store.read_stage(&spec.name, Stage::Current).await?;
        // A scheduled rotation decided "due" from an earlier read; another process (a daemon
        // replica, a cron `rotate --due`) may have rotated the secret since. Re-check against
        // the current version just read: from here to the begin commit, the store's
        // stale-plan check covers the rest.
        if opts.trigger == Trigger::Schedule
            && let Some(cur) = &current
        {
            let facts = Facts {
                current_created: Some(cur.meta.created_at),
                last_rotation: None,
                blocked: None,
            };
            if !schedule::evaluate(spec, facts, now).rotation_due {
                return Err(EngineError::NotDue {
                    secret: spec.name.to_string(),
                    rotated: cur.meta.created_at.to_string(),
                });
            }
        }
        let lease = Lease {
            owner: self.opts.owner.to_string(),
            token: 1,
            expires_at: self.lease_until(now),
        };
        let rotation = Rotation::begin(
            Begin {
                id: RotationId::generate(),
                secret: spec.name.clone(),
                trigger: opts.trigger,
                actor: self.opts.actor.clone(),
                reason: opts.reason.clone(),
                emergency: opts.emergency,
                evict: opts.evict,
                previous_version: current.as_ref().map(|c| c.meta.id.clone()),
            },
            now,
            lease.clone(),
        );
        let begin = self
            .event("rotation.begin", &spec.name)
            .rotation(&rotation.id)
            .reason(opts.reason.as_deref());

        // create: the new value is stored as pending in the same commit that begins the
        // rotation, before any target sees it.
        let admin = self.admin(spec).await?;
        let ctx = StepContext {
            spec,
            current: current.as_ref(),
            admin: admin.as_ref(),
            emergency: opts.emergency,
        };
        self.report(Progress::Started {
            secret: spec.name.clone(),
            step: Step::Create,
        });
        let generated = with_retry!(self, spec.name, Step::Create, rotator.create(&ctx));
        let mut rotation = rotation;
        let generated = match generated {
            Ok(g) => g,
            Err(e) => {
                // Nothing reached a target; record the attempt so status and the audit show it.
                let message = format!("step create failed: {e}");
                rotation.create_failed(message.clone(), now)?;
                let failed = self
                    .event("rotation.failed", &spec.name)
                    .rotation(&rotation.id)
                    .failed(&message);
                self.store
                    .apply(
                        Change::new()
                            .op(Op::BeginRotation(Box::new(rotation)))
                            .audit(begin)
                            .audit(failed),
                    )
                    .await?;
                self.report(Progress::Failed {
                    secret: spec.name.clone(),
                    step: Step::Create,
                    error: message,
                });
                return Err(EngineError::Step {
                    secret: spec.name.to_string(),
                    step: Step::Create,
                    source: e,
                    rolled_back: true,
                });
            }
        };
        let (op, created) = self.pending_version(spec, &mut rotation, generated)?;
        self.store
            .apply(
                Change::new()
                    .op(Op::BeginRotation(Box::new(rotation.clone())))
                    .op(op)
                    .audit(begin)
                    .audit(created),
            )
            .await?;
        tracing::info!(secret = %spec.name, rotation = %rotation.id, "rotation started");
        self.report(Progress::Done {
            secret: spec.name.clone(),
            step: Step::Create,
        });
        failpoint::hit("after-create");
        self.drive(spec, &rotator, rotation, lease).await
    }

    /// The version `create` made, as the op that stores it `pending`, with its audit event;
    /// moves `rot` on to `set` (and schedules activation when the key is prepublished).
    pub(crate) fn pending_version(
        &self,
        spec: &SecretSpec,
        rot: &mut Rotation,
        generated: rotor_core::rotator::Generated,
    ) -> Result<(Op, AuditEvent), EngineError> {
        let now = self.clock.now();
        let id = VersionId::generate();
        let prepublish = match &spec.settings {
            KindSettings::Jwt(j) => j.prepublish,
            _ => rotor_core::Duration::ZERO,
        };
        rot.created(id.clone(), prepublish, now)?;
        let event = self
            .event("rotation.create", &spec.name)
            .rotation(&rot.id)
            .version(&id);
        let op = Op::InsertVersion {
            version: NewVersion {
                secret: spec.name.clone(),
                id,
                created_by: self.opts.actor.clone(),
                created_at: now,
                metadata: generated.metadata,
                value: generated.value,
            },
            stage: Some(Stage::Pending),
        };
        Ok((op, event))
    }
}
