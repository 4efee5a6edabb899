//! Reading where secrets stand: `rotor status`, `rotor plan`, `rotor rotate --due`, and the
//! daemon's scheduler, API, page and metrics, which all read these rows.
//!
//! Every row carries the [`Standing`] that `rotor_core::schedule::evaluate` computes from the
//! config and one read of the store; nothing here (or in any surface) decides a state itself.

use jiff::Timestamp;
use rotor_core::schedule::{self, Facts, SecretState, Standing};
use rotor_core::store::{RotationStamp, SecretSummary};
use rotor_core::{Automation, Kind, SecretName, SecretSpec, Tier, VersionId};
use serde::Serialize;

use crate::{Engine, EngineError};

/// One row of `rotor status` (and of `GET /v1/secrets`).
#[derive(Debug, Clone, Serialize)]
pub struct StatusRow {
    pub name: SecretName,
    pub kind: Kind,
    pub tier: Option<Tier>,
    pub automation: Automation,
    /// The state and everything beside it; flattened, so the JSON has `state`, `label`,
    /// `overdue`, `next_due`, ... at the top level.
    #[serde(flatten)]
    pub standing: Standing,
    /// Seconds since `last_rotated`.
    pub age_secs: Option<i64>,
    pub current: Option<VersionId>,
    pub last_rotation: Option<RotationStamp>,
}

/// What a plan entry is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PlanAction {
    /// A rotation (scheduled, or by a person for manual secrets).
    Rotate,
    /// Retiring the previous value when grace ends.
    Retire,
}

impl PlanAction {
    pub fn as_str(self) -> &'static str {
        match self {
            PlanAction::Rotate => "rotate",
            PlanAction::Retire => "retire",
        }
    }
}

/// One row of `rotor plan`.
#[derive(Debug, Clone, Serialize)]
pub struct PlanEntry {
    pub name: SecretName,
    pub kind: Kind,
    pub automation: Automation,
    pub action: PlanAction,
    pub state: SecretState,
    pub label: String,
    /// When it happens: the placed due time, or the end of grace.
    pub due: Timestamp,
    /// Who or what does it, as a person would run it (`rotor put NAME` for a manual kind,
    /// which `rotor rotate` refuses).
    pub who: String,
}

/// The one wording of who acts on a plan entry, for the CLI table and the JSON alike.
fn who(
    action: PlanAction,
    kind: Kind,
    automation: Automation,
    confirm: bool,
    name: &str,
) -> String {
    match (action, kind, automation) {
        (PlanAction::Retire, ..) => "rotor serve, or `rotor retire --due`".into(),
        (PlanAction::Rotate, Kind::Manual, _) => {
            format!("a person supplies the new value: `rotor put {name}`")
        }
        (PlanAction::Rotate, _, Automation::Automatic) => "rotor rotates it".into(),
        (PlanAction::Rotate, _, Automation::Manual) if confirm => {
            format!("a person runs `rotor rotate {name} --confirm`")
        }
        (PlanAction::Rotate, _, Automation::Manual) => {
            format!("a person runs `rotor rotate {name}`")
        }
    }
}

impl Engine {
    /// One row per secret of the inventory, in file order.
    pub async fn status(&self) -> Result<Vec<StatusRow>, EngineError> {
        let now = self.now();
        // Sorted by name, looked up by binary search: no second map of 10,000 names.
        let summaries = self.summaries.read(self.store().as_ref()).await?;
        Ok(self
            .config()
            .secrets
            .iter()
            .map(|spec| {
                let summary = summaries
                    .binary_search_by(|s| {
                        s.secret
                            .as_ref()
                            .map(SecretName::as_str)
                            .cmp(&Some(spec.name.as_str()))
                    })
                    .ok()
                    .and_then(|i| summaries.get(i));
                let blocked = self.probes().blocked(spec.name.as_str());
                row(spec, summary, blocked.as_deref(), now)
            })
            .collect())
    }

    /// What happens within `horizon`, soonest first: rotations placed in their windows, and
    /// retires when grace ends. Running rotations are not listed.
    pub async fn plan(&self, horizon: rotor_core::Duration) -> Result<Vec<PlanEntry>, EngineError> {
        let now = self.now();
        let until = now.checked_add(horizon.to_span()).unwrap_or(Timestamp::MAX);
        let mut out = Vec::new();
        for row in self.status().await? {
            let s = &row.standing;
            let confirm = self
                .config()
                .secret(row.name.as_str())
                .is_some_and(|spec| spec.policy.requires_confirmation);
            let entry = |action, due| PlanEntry {
                name: row.name.clone(),
                kind: row.kind,
                automation: row.automation,
                action,
                state: s.state,
                label: s.label.clone(),
                due,
                who: who(action, row.kind, row.automation, confirm, row.name.as_str()),
            };
            if let Some(t) = s.retire_after.filter(|t| *t <= until) {
                out.push(entry(PlanAction::Retire, t));
            }
            if !s.in_progress && s.next_due <= until {
                out.push(entry(PlanAction::Rotate, s.next_due));
            }
        }
        out.sort_by(|a, b| {
            a.due
                .cmp(&b.due)
                .then(a.name.cmp(&b.name))
                .then(a.action.cmp(&b.action))
        });
        Ok(out)
    }

    /// Names of automatic secrets whose scheduled rotation may start now: due and inside their
    /// window (never-rotated secrets included), not failed, not in grace.
    pub async fn due(&self) -> Result<Vec<SecretName>, EngineError> {
        Ok(self
            .status()
            .await?
            .into_iter()
            .filter(|r| {
                r.automation == Automation::Automatic && r.standing.wants_scheduled_rotation()
            })
            .map(|r| r.name)
            .collect())
    }
}

/// The status row of `spec`, from its summary in the store and this engine's last probe.
fn row(
    spec: &SecretSpec,
    summary: Option<&SecretSummary>,
    blocked: Option<&str>,
    now: Timestamp,
) -> StatusRow {
    let none = SecretSummary::default();
    let summary = summary.unwrap_or(&none);
    let facts = Facts {
        blocked,
        ..Facts::from(summary)
    };
    let standing = schedule::evaluate(spec, facts, now);
    StatusRow {
        name: spec.name.clone(),
        kind: spec.kind,
        tier: spec.policy.tier,
        automation: spec.policy.automation,
        age_secs: standing
            .last_rotated
            .map(|t| now.duration_since(t).as_secs()),
        standing,
        current: summary.current.as_ref().map(|c| c.id.clone()),
        last_rotation: summary.last_rotation.clone(),
    }
}
