//! The [`Rotator`] trait: how one kind of secret is changed on its target.
//!
//! A rotator knows a target (a database, a Redis server, a keyring) and nothing about where
//! values are stored: the engine reads values from the store and hands them in, and stores
//! what `create` returns before calling anything else. Every method may be called again
//! after a crash with the same arguments, so each one is idempotent.

use std::fmt;

use async_trait::async_trait;

use crate::store::Versioned;
use crate::{Kind, SecretSpec, SecretValue, Step};

/// What the engine gives a rotator for one call.
#[derive(Debug)]
pub struct StepContext<'a> {
    pub spec: &'a SecretSpec,
    /// The current value (absent on a first rotation).
    pub current: Option<&'a Versioned>,
    /// The admin credential named by the secret's `admin` setting, read from the store.
    pub admin: Option<&'a Versioned>,
    /// Emergency rotation: evict sessions, retire at once.
    pub emergency: bool,
}

/// A new value made by `create`.
#[derive(Debug)]
pub struct Generated {
    pub value: SecretValue,
    /// Non-secret metadata stored beside the version (JWT `kid`, database `username`).
    pub metadata: serde_json::Value,
}

/// One line of a `--dry-run` plan.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PlannedStep {
    pub step: Step,
    /// What the step would touch, e.g. `ALTER ROLE app_user_b on 127.0.0.1:5432`.
    pub touches: String,
}

/// How one kind of secret is changed on its target. Called only by the engine.
#[async_trait]
pub trait Rotator: Send + Sync + fmt::Debug {
    fn kind(&self) -> Kind;

    /// What each step would touch, without touching anything.
    fn plan(&self, spec: &SecretSpec) -> Vec<PlannedStep>;

    /// Makes a new value. Touches no target: the engine stores the value as `pending` before
    /// any other step runs, so a value that reaches a target is always recoverable.
    async fn create(&self, ctx: &StepContext<'_>) -> Result<Generated, RotatorError>;

    /// Makes the target accept `pending` in addition to the current value. Idempotent.
    async fn set(&self, _ctx: &StepContext<'_>, _pending: &Versioned) -> Result<(), RotatorError> {
        Ok(())
    }

    /// Proves `pending` works on the target. Idempotent, no lasting effect.
    async fn test(&self, _ctx: &StepContext<'_>, _pending: &Versioned) -> Result<(), RotatorError> {
        Ok(())
    }

    /// Tells the target that `pending` is about to become current (e.g. make it the primary
    /// of two accepted values). Runs before the stage move commits, so after a crash it runs
    /// again: idempotent. Both values stay valid until `retire`.
    async fn finish(
        &self,
        _ctx: &StepContext<'_>,
        _pending: &Versioned,
    ) -> Result<(), RotatorError> {
        Ok(())
    }

    /// Removes `previous` from the target after grace and proves it is now rejected.
    /// Idempotent: a value already gone is success.
    async fn retire(
        &self,
        _ctx: &StepContext<'_>,
        _previous: &Versioned,
    ) -> Result<(), RotatorError> {
        Ok(())
    }

    /// Undoes `set` for a rotation that failed or was aborted, so the target accepts only the
    /// current value again. Idempotent.
    async fn rollback(
        &self,
        _ctx: &StepContext<'_>,
        _pending: &Versioned,
    ) -> Result<(), RotatorError> {
        Ok(())
    }

    /// Prepares the target once, when an operator asks (`rotor setup NAME`): e.g. creates the
    /// PostgreSQL group role and its two login roles for the alternating strategy. Idempotent;
    /// returns a line per thing it did (or found already done).
    async fn setup(&self, _ctx: &StepContext<'_>) -> Result<Vec<String>, RotatorError> {
        Ok(vec![format!("kind {} needs no setup", self.kind())])
    }

    /// Checks, without changing anything, that a rotation could run now: the target is
    /// reachable, the credentials rotor would use are accepted and allowed to do what the
    /// steps need. Returns a line per check that passed; an error is the first that failed
    /// (the secret is then `blocked`).
    async fn probe(&self, _ctx: &StepContext<'_>) -> Result<Vec<String>, RotatorError> {
        Ok(vec![format!("kind {} has nothing to check", self.kind())])
    }

    /// Emergency only: ends every live session that may have authenticated with `previous`
    /// or with any value older than the current one (for an alternating pair: both login
    /// roles; a session cannot be told apart by the password it used), then reads the target
    /// again and counts the sessions it saw that are still there. Rotor's own admin session
    /// is spared. Idempotent. The default (no target) ends nothing.
    async fn evict(
        &self,
        _ctx: &StepContext<'_>,
        _previous: &Versioned,
    ) -> Result<Eviction, RotatorError> {
        Ok(Eviction::default())
    }
}

/// What [`Rotator::evict`] did: sessions ended, and how many of the sessions it found are
/// still connected when it read the target again (0 when the emergency contained them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Eviction {
    pub ended: u64,
    pub surviving: u64,
}

/// A rotator's error. The message names the target and the cause and never carries a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}{}", fix.as_ref().map(|f| format!(" ({f})")).unwrap_or_default())]
pub struct RotatorError {
    pub message: String,
    /// What the operator can do about it.
    pub fix: Option<String>,
    /// Worth retrying with backoff (a refused connection, a timeout).
    pub transient: bool,
}

impl RotatorError {
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            fix: None,
            transient: false,
        }
    }
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            fix: None,
            transient: true,
        }
    }
    pub fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}
