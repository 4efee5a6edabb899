//! [`Engine`]: rotate, resume, abort, retire and put, one secret at a time.

use std::sync::Arc;

use jiff::Timestamp;
use rotor_core::config::KindSettings;
use rotor_core::rotation::{Action, Lease, next_action};
use rotor_core::rotator::{PlannedStep, StepContext};
use rotor_core::schedule::{self, Facts};
use rotor_core::store::{Change, Fence, NewVersion, Op, Takeover, Versioned};
use rotor_core::{
    AuditEvent, Config, Kind, Rotation, RotationId, RotationStatus, Rotator, RotatorError,
    SecretName, SecretSpec, SecretValue, Stage, Step, Store, StoreError, Trigger, VersionId,
};
use serde::Serialize;

use crate::failpoint;
use crate::rollback::owed_reason;
use crate::serial::Turns;
use crate::{Clock, EngineError, Owner, Rotators};

/// Bounded exponential backoff for transient errors within one step.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Tries in all (1 = no retry).
    pub attempts: u32,
    pub base: std::time::Duration,
    pub max: std::time::Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 4,
            base: std::time::Duration::from_millis(200),
            max: std::time::Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The wait before try `attempt + 1` (the first retry waits `base`).
    pub fn delay(&self, attempt: u32) -> std::time::Duration {
        self.base
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.max)
    }
}

/// Who the engine acts as, and how it holds leases.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Recorded in the audit log and on new versions: `user@host`, a token name, `rotor`.
    pub actor: String,
    pub owner: Owner,
    /// How long a lease lasts without renewal; each step renews it.
    pub lease_for: std::time::Duration,
    pub retry: RetryPolicy,
}

impl EngineOptions {
    pub fn new(actor: impl Into<String>) -> Self {
        Self {
            actor: actor.into(),
            owner: Owner::this_process(),
            lease_for: std::time::Duration::from_secs(300),
            retry: RetryPolicy::default(),
        }
    }
}

/// How a rotation was asked for.
#[derive(Debug, Clone)]
pub struct RotateOptions {
    pub trigger: Trigger,
    pub reason: Option<String>,
    /// Grace 0: retire (and evict) right after finish.
    pub emergency: bool,
    /// In an emergency, end live sessions of the previous value (default; `--no-evict` clears).
    pub evict: bool,
    /// The operator confirmed a `requires_confirmation` secret.
    pub confirm: bool,
}

impl Default for RotateOptions {
    fn default() -> Self {
        Self {
            trigger: Trigger::Manual,
            reason: None,
            emergency: false,
            evict: true,
            confirm: false,
        }
    }
}

/// Where a rotation stands when the engine returns.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    /// Finished and retired (emergency, grace 0, or a first rotation).
    Completed {
        rotation: RotationId,
        version: Option<VersionId>,
        retired: Option<VersionId>,
        /// An emergency's eviction of the old credentials' sessions, as the target reported
        /// it (absent when nothing was evicted in this call).
        #[serde(skip_serializing_if = "Option::is_none")]
        evicted: Option<Evicted>,
    },
    /// Finished; the previous value stays valid until `retire_after`.
    InGrace {
        rotation: RotationId,
        version: Option<VersionId>,
        retire_after: Timestamp,
    },
    /// Waiting to activate (JWT prepublish) until `until`; `rotor resume` finishes it then.
    Waiting {
        rotation: RotationId,
        version: Option<VersionId>,
        until: Timestamp,
    },
}

/// What an emergency's eviction did: the sessions it ended and, read back from the target,
/// how many of the sessions it found are still connected; or why it could not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evicted {
    pub ended: u64,
    pub surviving: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A progress event, for a bar or a line per step.
#[derive(Debug, Clone)]
pub enum Progress {
    Started {
        secret: SecretName,
        step: Step,
    },
    Done {
        secret: SecretName,
        step: Step,
    },
    Retrying {
        secret: SecretName,
        step: Step,
        attempt: u32,
        error: String,
    },
    Failed {
        secret: SecretName,
        step: Step,
        error: String,
    },
}

pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// A stage change that consumers should learn about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StageChange {
    /// `finish`: a new current (and the old one became previous).
    Finished,
    /// `retire`: the previous value is gone.
    Retired,
    /// `put`: an operator stored a new current.
    Put,
}

/// Delivery to consumers after stages move: rendered files, watch streams, notifications.
/// Called by the engine after the stage move is committed; a delivery failure is reported
/// and audited, and never undoes the rotation (the store is the truth; delivery can be rerun
/// with `rotor render`).
#[async_trait::async_trait]
pub trait Deliver: Send + Sync + std::fmt::Debug {
    async fn deliver(&self, secret: &SecretName, change: StageChange) -> Result<(), String>;
}

/// The rotation engine.
pub struct Engine {
    store: Arc<dyn Store>,
    config: Arc<Config>,
    rotators: Rotators,
    clock: Arc<dyn Clock>,
    pub(crate) opts: EngineOptions,
    progress: Option<ProgressFn>,
    delivery: Vec<Arc<dyn Deliver>>,
    /// One operation per secret at a time in this process (see `serial`).
    pub(crate) turns: Turns,
    probes: crate::probe::ProbeMemory,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("store", &self.store)
            .field("rotators", &self.rotators)
            .field("actor", &self.opts.actor)
            .finish_non_exhaustive()
    }
}

impl Engine {
    pub fn new(
        store: Arc<dyn Store>,
        config: Arc<Config>,
        rotators: Rotators,
        clock: Arc<dyn Clock>,
        opts: EngineOptions,
    ) -> Self {
        Self {
            store,
            config,
            rotators,
            clock,
            opts,
            progress: None,
            delivery: Vec::new(),
            turns: Turns::default(),
            probes: crate::probe::ProbeMemory::default(),
        }
    }

    /// The verdicts of this engine's probes (read by `status()` as the `blocked` fact).
    pub(crate) fn probes(&self) -> &crate::probe::ProbeMemory {
        &self.probes
    }

    /// Adds a delivery target, called after every finish, retire and put.
    pub fn with_delivery(mut self, d: Arc<dyn Deliver>) -> Self {
        self.delivery.push(d);
        self
    }

    /// Runs every delivery target for `secret`; failures are logged and audited.
    pub async fn deliver(&self, secret: &SecretName, change: StageChange) {
        for d in &self.delivery {
            if let Err(e) = d.deliver(secret, change).await {
                tracing::error!(secret = %secret, error = %e, "delivery failed");
                let event = self.event("delivery.failed", secret).failed(&e);
                if let Err(se) = self.store.apply(Change::new().audit(event)).await {
                    tracing::error!(error = %se, "cannot audit a delivery failure");
                }
            }
        }
    }

    /// Reports progress events to `f`.
    pub fn with_progress(mut self, f: ProgressFn) -> Self {
        self.progress = Some(f);
        self
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn actor(&self) -> &str {
        &self.opts.actor
    }

    /// The engine's clock reading (queries and the scheduler share it).
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub(crate) fn report(&self, p: Progress) {
        if let Some(f) = &self.progress {
            f(&p);
        }
    }

    /// Whether a progress listener shows steps (the CLI's progress lines): then that is where
    /// a person reads a retry, and a WARN log line would say it twice.
    pub(crate) fn shows_progress(&self) -> bool {
        self.progress.is_some()
    }

    /// The secret named `name`, or an error with the closest name.
    pub fn spec(&self, name: &str) -> Result<&SecretSpec, EngineError> {
        self.config
            .secret(name)
            .ok_or_else(|| EngineError::UnknownSecret {
                name: name.to_owned(),
                suggestion: self
                    .config
                    .secrets
                    .iter()
                    .map(|s| s.name.as_str())
                    .min_by_key(|n| strsim::levenshtein(n, name))
                    .filter(|n| strsim::levenshtein(n, name) <= 3)
                    .map(str::to_owned),
            })
    }

    pub(crate) fn rotator(&self, spec: &SecretSpec) -> Result<&Arc<dyn Rotator>, EngineError> {
        if spec.kind == Kind::Manual {
            return Err(EngineError::ManualKind {
                secret: spec.name.to_string(),
            });
        }
        self.rotators
            .get(spec.kind)
            .ok_or_else(|| EngineError::NoRotator {
                secret: spec.name.to_string(),
                kind: spec.kind,
            })
    }

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

    // ---- rotating -----------------------------------------------------------------------

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
                    if opts.emergency {
                        open.retire_after = Some(now);
                    }
                    if open.status == RotationStatus::Grace {
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
        let rotation = Rotation {
            id: RotationId::generate(),
            secret: spec.name.clone(),
            trigger: if opts.emergency {
                Trigger::Emergency
            } else {
                opts.trigger
            },
            actor: self.opts.actor.clone(),
            reason: opts.reason.clone(),
            emergency: opts.emergency,
            evict: opts.evict,
            status: RotationStatus::Running,
            step: Step::Create,
            step_done: false,
            attempts: 0,
            error: None,
            pending_version: None,
            previous_version: current.as_ref().map(|c| c.meta.id.clone()),
            started_at: now,
            updated_at: now,
            activate_after: None,
            retire_after: None,
            lease: Some(lease.clone()),
            rollback_owed: false,
        };
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
                rotation.status = RotationStatus::Failed;
                rotation.error = Some(message.clone());
                rotation.lease = None;
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
        let (op, created) = self.pending_version(spec, &mut rotation, generated);
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
    fn pending_version(
        &self,
        spec: &SecretSpec,
        rot: &mut Rotation,
        generated: rotor_core::rotator::Generated,
    ) -> (Op, AuditEvent) {
        let now = self.clock.now();
        let id = VersionId::generate();
        rot.pending_version = Some(id.clone());
        rot.step = Step::Set;
        rot.step_done = false;
        rot.attempts = 0;
        if let KindSettings::Jwt(j) = &spec.settings
            && !j.prepublish.is_zero()
            && !rot.emergency
        {
            rot.activate_after = now.checked_add(j.prepublish.to_span()).ok();
        }
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
        (op, event)
    }

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
                        rot.status = RotationStatus::Failed;
                        rot.rollback_owed = true;
                        rot.error = Some(message.clone());
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
        rot.status = RotationStatus::Aborted;
        rot.error = reason.map(|r| format!("aborted: {r}"));
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

    /// Stores a value supplied by an operator as the new current version (`rotor put`).
    pub async fn put(
        &self,
        name: &str,
        value: SecretValue,
        metadata: serde_json::Value,
        reason: Option<&str>,
    ) -> Result<VersionId, EngineError> {
        let spec = self.spec(name)?;
        let _turn = self.turns.take(&spec.name).await;
        if value.is_empty() {
            return Err(EngineError::Invalid {
                secret: name.to_owned(),
                what: "the value is empty; nothing was stored".into(),
            });
        }
        let now = self.clock.now();
        let current = self
            .store
            .versions(&spec.name)
            .await?
            .into_iter()
            .find(|v| v.has(Stage::Current));
        let id = VersionId::generate();
        let grace = spec.policy.grace;
        let rotation = Rotation {
            id: RotationId::generate(),
            secret: spec.name.clone(),
            trigger: Trigger::Put,
            actor: self.opts.actor.clone(),
            reason: reason.map(str::to_owned),
            emergency: false,
            evict: true,
            status: if current.is_some() && !grace.is_zero() {
                RotationStatus::Grace
            } else {
                RotationStatus::Completed
            },
            step: Step::Retire,
            step_done: false,
            attempts: 0,
            error: None,
            pending_version: Some(id.clone()),
            previous_version: current.as_ref().map(|c| c.id.clone()),
            started_at: now,
            updated_at: now,
            activate_after: None,
            retire_after: now.checked_add(grace.to_span()).ok(),
            lease: None,
            rollback_owed: false,
        };
        let mut change = Change::new().op(Op::BeginRotation(Box::new(rotation.clone())));
        // A put supersedes an earlier rotation still in grace: its previous value loses the
        // label in the promote below.
        for mut open in self.store.open_rotations().await? {
            if open.secret == spec.name && open.status == RotationStatus::Grace {
                open.status = RotationStatus::Completed;
                open.error = Some(format!("superseded by put {}", rotation.id));
                change = change.op(Op::SaveRotation(Box::new(open)));
            }
        }
        change = change
            .op(Op::InsertVersion {
                version: NewVersion {
                    secret: spec.name.clone(),
                    id: id.clone(),
                    created_by: self.opts.actor.clone(),
                    created_at: now,
                    metadata,
                    value,
                },
                stage: None,
            })
            .op(Op::Promote {
                secret: spec.name.clone(),
                version: id.clone(),
            });
        if let (Some(prev), true) = (&current, grace.is_zero()) {
            change = change.op(Op::ClearStage {
                secret: spec.name.clone(),
                stage: Stage::Previous,
                version: prev.id.clone(),
            });
        }
        let mut event = self
            .event("secret.put", &spec.name)
            .rotation(&rotation.id)
            .version(&id)
            .reason(reason);
        if let Some(prev) = &current {
            event = event.version(&prev.id);
        }
        self.store.apply(change.audit(event)).await?;
        failpoint::hit("after-put");
        self.deliver(&spec.name, StageChange::Put).await;
        Ok(id)
    }

    /// Runs the rotator's one-time target setup (`rotor setup NAME`).
    pub async fn setup(&self, name: &str) -> Result<Vec<String>, EngineError> {
        let spec = self.spec(name)?;
        let rotator = self.rotator(spec)?.clone();
        let current = self.store.read_stage(&spec.name, Stage::Current).await?;
        let admin = self.admin(spec).await?;
        let ctx = StepContext {
            spec,
            current: current.as_ref(),
            admin: admin.as_ref(),
            emergency: false,
        };
        let lines = rotator.setup(&ctx).await.map_err(|e| EngineError::Step {
            secret: name.to_owned(),
            step: Step::Set,
            source: e,
            rolled_back: false,
        })?;
        self.store
            .apply(
                Change::new().audit(
                    self.event("secret.setup", &spec.name)
                        .reason(Some(&lines.join("; "))),
                ),
            )
            .await?;
        Ok(lines)
    }

    // ---- the drive loop -----------------------------------------------------------------

    async fn drive(
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
                .run_step(spec, rotator, &mut rot, &lease, step, &mut evicted)
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

    async fn run_step(
        &self,
        spec: &SecretSpec,
        rotator: &Arc<dyn Rotator>,
        rot: &mut Rotation,
        lease: &Lease,
        step: Step,
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
                let (op, event) = self.pending_version(spec, rot, generated);
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
                rot.step = match step {
                    Step::Set => Step::Test,
                    // Without prepublish there is nothing to wait for: go straight to finish.
                    _ if rot.activate_after.is_none() => Step::Finish,
                    _ => Step::Activate,
                };
                rot.attempts = 0;
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
                rot.step = Step::Finish;
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
                let now = self.clock.now();
                // Nothing to keep valid when there was no previous value, or in an emergency.
                let grace = if rot.emergency || rot.previous_version.is_none() {
                    rotor_core::Duration::ZERO
                } else {
                    spec.policy.grace
                };
                rot.status = RotationStatus::Grace;
                rot.step = Step::Retire;
                rot.step_done = false;
                rot.retire_after = Some(now.checked_add(grace.to_span()).unwrap_or(now));
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
                    // ARCHITECTURE.md invariant 10: retire the old value only while the new one
                    // tests good.
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
                        return Err(self.retire_failed(spec, rot, lease, e).await);
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
                rot.status = RotationStatus::Completed;
                rot.step_done = true;
                rot.error = None;
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
        rot.error = Some(message.clone());
        rot.attempts = rot.attempts.saturating_add(1);
        rot.status = RotationStatus::Failed;
        rot.rollback_owed = owed.is_some();
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
    ) -> EngineError {
        let message = format!("step retire failed: {error}");
        rot.error = Some(message.clone());
        rot.attempts = rot.attempts.saturating_add(1);
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

    // ---- helpers ------------------------------------------------------------------------

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

    /// The admin credential named by the secret's settings, if any.
    pub(crate) async fn admin(&self, spec: &SecretSpec) -> Result<Option<Versioned>, EngineError> {
        let admin = match &spec.settings {
            KindSettings::Postgres(p) => p.admin.as_ref(),
            KindSettings::Redis(r) => r.admin.as_ref(),
            _ => None,
        };
        let Some(admin) = admin else { return Ok(None) };
        match self.store.read_stage(admin, Stage::Current).await? {
            Some(v) => Ok(Some(v)),
            None => Err(EngineError::AdminMissing {
                secret: spec.name.to_string(),
                admin: admin.to_string(),
            }),
        }
    }

    pub(crate) fn event(&self, action: &str, secret: &SecretName) -> AuditEvent {
        AuditEvent::new(self.opts.actor.clone(), action).secret(secret)
    }

    fn lease_until(&self, now: Timestamp) -> Timestamp {
        now.checked_add(
            jiff::SignedDuration::try_from(self.opts.lease_for)
                .unwrap_or(jiff::SignedDuration::from_secs(300)),
        )
        .unwrap_or(now)
    }

    /// Takes the lease of `rot` (as read earlier) and returns it with the rotation as stored
    /// now. The lease is taken after expiry, or at once when its holder is a dead process on
    /// this host (a crashed `rotor rotate`) or this engine itself (a job that ended: jobs of
    /// one engine take the secret's turn, so none is live while the caller holds it). Either
    /// way the store takes it only by compare-and-set on the token judged here, refuses a
    /// rotation that has ended, and the record is read again after the claim: the previous
    /// holder can no longer write (its token is stale), so a step it finished is never run
    /// or audited again.
    pub(crate) async fn claim(&self, rot: &Rotation) -> Result<(Lease, Rotation), EngineError> {
        let now = self.clock.now();
        let takeover = match &rot.lease {
            Some(l)
                if l.owner != self.opts.owner.as_str()
                    && !self.opts.owner.holder_is_dead(&l.owner) =>
            {
                Takeover::IfExpired
            }
            held => Takeover::of(held.as_ref()),
        };
        let lease = self
            .store
            .claim(
                &rot.id,
                self.opts.owner.as_str(),
                now,
                self.lease_until(now),
                takeover,
            )
            .await?;
        let mut fresh =
            self.store
                .rotation(&rot.id)
                .await?
                .ok_or_else(|| StoreError::RotationNotFound {
                    rotation: rot.id.to_string(),
                })?;
        fresh.lease = Some(lease.clone());
        Ok((lease, fresh))
    }

    /// Lets go of the lease of a rotation whose job just failed and that is still open (a
    /// retire that failed, a store error mid-step), so the next try (the scheduler's backoff,
    /// another replica, `rotor resume`) need not wait for it to expire. Best effort: a lost
    /// lease or an ended rotation has nothing to release.
    pub(crate) async fn release(&self, id: &RotationId, lease: &Lease) {
        let Ok(Some(mut stored)) = self.store.rotation(id).await else {
            return;
        };
        let has_work = stored.status.is_open() || stored.rollback_owed;
        if !has_work || stored.lease.as_ref().map(|l| l.token) != Some(lease.token) {
            return;
        }
        let now = self.clock.now();
        stored.lease = Some(Lease {
            expires_at: now,
            ..lease.clone()
        });
        let change = Change::fenced(fence(&stored, lease)).op(Op::SaveRotation(Box::new(stored)));
        if let Err(e) = self.store.apply(change).await {
            tracing::debug!(rotation = %id, error = %e, "could not release the lease; it expires by itself");
        }
    }

    /// Saves `rot` (renewing its lease) with `ops` and `event`, fenced by `lease`.
    pub(crate) async fn commit(
        &self,
        rot: &mut Rotation,
        lease: &Lease,
        ops: Vec<Op>,
        event: AuditEvent,
    ) -> Result<(), EngineError> {
        let now = self.clock.now();
        rot.updated_at = now;
        rot.lease = Some(Lease {
            expires_at: self.lease_until(now),
            ..lease.clone()
        });
        let mut change = Change::fenced(fence(rot, lease));
        change.ops = ops;
        change.ops.push(Op::SaveRotation(Box::new(rot.clone())));
        change.audit.push(event);
        self.store.apply(change).await?;
        Ok(())
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

pub(crate) fn fence(rot: &Rotation, lease: &Lease) -> Fence {
    Fence {
        rotation: rot.id.clone(),
        token: lease.token,
    }
}

pub(crate) fn outcome_of(rot: &Rotation) -> Outcome {
    match (rot.status, rot.activate_after, rot.retire_after) {
        (RotationStatus::Running, Some(until), _) => Outcome::Waiting {
            rotation: rot.id.clone(),
            version: rot.pending_version.clone(),
            until,
        },
        (RotationStatus::Grace, _, Some(retire_after)) => Outcome::InGrace {
            rotation: rot.id.clone(),
            version: rot.pending_version.clone(),
            retire_after,
        },
        _ => Outcome::Completed {
            rotation: rot.id.clone(),
            version: rot.pending_version.clone(),
            retired: (rot.status == RotationStatus::Completed)
                .then(|| rot.previous_version.clone())
                .flatten(),
            evicted: None,
        },
    }
}
