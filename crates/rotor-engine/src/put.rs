//! Values and targets set up by hand: [`Engine::put`] stores an operator's value as the new
//! current, [`Engine::setup`] runs a rotator's one-time target setup.

use rotor_core::rotation::Begin;
use rotor_core::rotator::StepContext;
use rotor_core::store::{Change, NewVersion, Op};
use rotor_core::{
    Rotation, RotationId, RotationStatus, SecretValue, Stage, Step, Trigger, VersionId,
};

use crate::failpoint;
use crate::{Engine, EngineError, StageChange};

impl Engine {
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
        let rotation = Rotation::put(
            Begin {
                id: RotationId::generate(),
                secret: spec.name.clone(),
                trigger: Trigger::Put,
                actor: self.opts.actor.clone(),
                reason: reason.map(str::to_owned),
                emergency: false,
                evict: true,
                previous_version: current.as_ref().map(|c| c.id.clone()),
            },
            id.clone(),
            grace,
            now,
        );
        let mut change = Change::new().op(Op::BeginRotation(Box::new(rotation.clone())));
        // A put supersedes an earlier rotation still in grace: its previous value loses the
        // label in the promote below.
        for mut open in self.store.open_rotations().await? {
            if open.secret == spec.name && open.status == RotationStatus::Grace {
                open.superseded_by(&rotation.id)?;
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
}
