//! What the scheduler remembers about each secret (attempts, retry time, held failed,
//! overdue notices, owed-rollback retries) and the handle through which the API, the
//! status page and tests wake the loop and read that memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use rotor_core::{RotationId, RotationStatus};
use tokio::sync::Notify;

/// The scheduler's memory about one secret.
#[derive(Debug, Default, Clone)]
pub(super) struct Entry {
    /// Failed attempts in a row.
    pub(super) attempts: u32,
    /// When to try again after a failure.
    pub(super) retry_at: Option<Timestamp>,
    /// Held failed: the newest rotation record `(id, status)` when it was held. Cleared when
    /// that record changes.
    pub(super) failed: Option<Option<(RotationId, RotationStatus)>>,
    /// The deadline an `overdue` notification was sent for (`Some(None)`: for a secret of
    /// unknown age).
    pub(super) overdue_notified: Option<Option<Timestamp>>,
    /// Owed-rollback retries in a row, and when to try the next.
    pub(super) rollback_tries: u32,
    pub(super) rollback_at: Option<Timestamp>,
}

/// A snapshot of the scheduler's view of a secret, for tests and the status page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSchedule {
    pub attempts: u32,
    pub retry_at: Option<Timestamp>,
    pub held_failed: bool,
}

/// A handle to the scheduler's shared state: wake it up, read what it holds.
#[derive(Debug, Clone, Default)]
pub struct SchedulerHandle {
    pub(super) wake: Arc<Notify>,
    pub(super) entries: Arc<Mutex<HashMap<String, Entry>>>,
}

impl SchedulerHandle {
    /// Makes the loop look at the store now (after an API rotate or put).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// What the scheduler holds about `name`.
    pub fn schedule_of(&self, name: &str) -> Option<SecretSchedule> {
        let entries = self.entries.lock().ok()?;
        entries.get(name).map(|e| SecretSchedule {
            attempts: e.attempts,
            retry_at: e.retry_at,
            held_failed: e.failed.is_some(),
        })
    }

    /// Names held failed.
    pub fn failed(&self) -> Vec<String> {
        self.entries
            .lock()
            .map(|m| {
                let mut v: Vec<String> = m
                    .iter()
                    .filter(|(_, e)| e.failed.is_some())
                    .map(|(k, _)| k.clone())
                    .collect();
                v.sort();
                v
            })
            .unwrap_or_default()
    }
}
