//! [`Engine`]: what it holds, and the small lookups every operation shares (the spec, the
//! rotator, the admin credential, an audit event, progress and delivery).
//!
//! The operations live next to it, one concept a file: `rotate` (rotate, dry run),
//! `recover` (resume, retire when due, abort), `put` (put, setup), `drive` (running the
//! steps, failing a rotation), `lease` (claiming, releasing and fenced commits).

use std::sync::Arc;

use jiff::Timestamp;
use rotor_core::config::KindSettings;
use rotor_core::store::{Change, Versioned};
use rotor_core::{AuditEvent, Config, Kind, Rotator, SecretName, SecretSpec, Stage, Store};

use crate::serial::Turns;
use crate::{
    Clock, Deliver, EngineError, EngineOptions, Progress, ProgressFn, Rotators, StageChange,
};

/// The rotation engine.
pub struct Engine {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) config: Arc<Config>,
    pub(crate) rotators: Rotators,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) opts: EngineOptions,
    pub(crate) progress: Option<ProgressFn>,
    pub(crate) delivery: Vec<Arc<dyn Deliver>>,
    /// One operation per secret at a time in this process (see `serial`).
    pub(crate) turns: Turns,
    pub(crate) probes: crate::probe::ProbeMemory,
    /// What `status()` read from the store, while the audit head stays put.
    pub(crate) summaries: crate::summary_cache::SummaryCache,
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
            summaries: crate::summary_cache::SummaryCache::default(),
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
}
