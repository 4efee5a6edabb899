//! The preflight probe (`rotor probe`, `rotate --dry-run`): asks a secret's rotator, as the
//! credentials a rotation would use, whether the rotation could run now, changing nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use rotor_core::rotator::StepContext;
use rotor_core::{Kind, SecretName, Stage};
use serde::Serialize;

use crate::{Engine, EngineError};

/// What probing one secret found.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    pub secret: SecretName,
    pub kind: Kind,
    /// Every check that passed, in order.
    pub checks: Vec<String>,
    /// The first check that failed: the rotation would not get through. `None`: it would.
    pub blocked: Option<String>,
    /// What the operator can do about it.
    pub fix: Option<String>,
}

impl ProbeReport {
    pub fn is_blocked(&self) -> bool {
        self.blocked.is_some()
    }
}

/// The last verdict of each secret's probe, kept by the engine that ran it: for `rotor
/// serve` that is its one engine, which probes every automatic secret on start, so the
/// `blocked` fact is re-established after a restart rather than stored.
#[derive(Debug, Default, Clone)]
pub(crate) struct ProbeMemory(Arc<Mutex<HashMap<String, String>>>);

impl ProbeMemory {
    /// Why `secret` is blocked, if its last probe failed.
    pub(crate) fn blocked(&self, secret: &str) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(secret)
            .cloned()
    }

    fn record(&self, report: &ProbeReport) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match &report.blocked {
            Some(cause) => map.insert(report.secret.to_string(), cause.clone()),
            None => map.remove(report.secret.as_str()),
        };
    }
}

impl Engine {
    /// Probes `name` and remembers the verdict (the `blocked` fact of `status()`). A failed check is a report with `blocked` set, not an error; an error
    /// means the secret could not be probed at all (unknown name, store unreadable).
    pub async fn probe(&self, name: &str) -> Result<ProbeReport, EngineError> {
        let spec = self.spec(name)?;
        let mut report = ProbeReport {
            secret: spec.name.clone(),
            kind: spec.kind,
            checks: Vec::new(),
            blocked: None,
            fix: None,
        };
        if spec.kind == Kind::Manual {
            report.checks.push(
                "a manual secret: a person supplies the value, there is no target to reach".into(),
            );
            return Ok(report);
        }
        let rotator = match self.rotator(spec) {
            Ok(r) => r,
            Err(e) => {
                report.blocked = Some(e.to_string());
                return Ok(report);
            }
        };
        let admin = match self.admin(spec).await {
            Ok(a) => a,
            Err(e @ EngineError::AdminMissing { .. }) => {
                report.blocked = Some(e.to_string());
                return Ok(report);
            }
            Err(e) => return Err(e),
        };
        let current = self.store().read_stage(&spec.name, Stage::Current).await?;
        let ctx = StepContext {
            spec,
            current: current.as_ref(),
            admin: admin.as_ref(),
            emergency: false,
        };
        match rotator.probe(&ctx).await {
            Ok(checks) => report.checks = checks,
            Err(e) => {
                report.blocked = Some(e.message);
                report.fix = e.fix;
            }
        }
        self.probes().record(&report);
        Ok(report)
    }
}
