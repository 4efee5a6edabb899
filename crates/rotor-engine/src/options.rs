//! How the engine is set up ([`EngineOptions`], its [`RetryPolicy`]) and how one rotation
//! was asked for ([`RotateOptions`]).

use rotor_core::{Backoff, Trigger};

use crate::Owner;

/// Bounded exponential backoff for transient errors within one step: rotor's one
/// [`Backoff`], with the engine's defaults (4 tries, waits from 200 ms up to 5 s). Its fields
/// stay public so callers build and tune it as before (`opts.retry.attempts = 1`); every
/// wait and every "may it try again" is [`Backoff`]'s.
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
    /// The policy as rotor's [`Backoff`].
    pub fn backoff(&self) -> Backoff {
        Backoff::new(self.attempts, self.base, self.max)
    }

    /// The wait before try `attempt + 1` (the first retry waits `base`): [`Backoff::delay`].
    pub fn delay(&self, attempt: u32) -> std::time::Duration {
        self.backoff().delay(attempt)
    }

    /// Whether try `attempt` that failed may be followed by another: [`Backoff::may_retry`].
    pub fn may_retry(&self, attempt: u32) -> bool {
        self.backoff().may_retry(attempt)
    }
}

impl From<RetryPolicy> for Backoff {
    fn from(p: RetryPolicy) -> Self {
        p.backoff()
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
