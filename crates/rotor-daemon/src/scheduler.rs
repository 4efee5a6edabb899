//! The scheduler: runs each automatic secret's rotation when it is due, retires previous
//! values when grace ends, finishes rotations waiting for activation, and reports manual
//! secrets that are overdue.
//!
//! Invariants:
//! - when a secret is due is not decided here: each row of `engine.status()` carries the
//!   secret's `Standing` (rotor-core's `schedule::evaluate`: due time, window, jitter), the
//!   same one `rotor status`, `plan` and `rotate --due` read; the loop starts a rotation when
//!   it says `wants_scheduled_rotation` and sleeps until its `next_due` otherwise;
//! - at most `max_concurrent_rotations` jobs run at once (a semaphore), at most one per secret,
//!   and every job belongs to the scheduler's `JoinSet`: on shutdown the loop stops starting
//!   jobs and waits (bounded) for the running ones;
//! - a failed job is retried `retry_attempts` times in all, `retry_backoff` doubling between
//!   tries; then the secret is held `failed` (a `failed` notification goes out once) until its
//!   newest rotation record changes (someone rotated, put, aborted or retired by hand);
//! - a manual secret gets one `overdue` notification per overdue period (per deadline);
//! - time comes from a [`Clock`] and sleeps are tokio sleeps, so tests run on paused time.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use rotor_core::config::service::NotifyEvent;
use rotor_core::store::RotationStamp;
use rotor_core::{
    Automation, RotationId, RotationStatus, SecretName, SecretState, StoreError, Trigger,
};
use rotor_engine::{Clock, Engine, EngineError, Outcome, RotateOptions};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::notify::{Notification, Notifier};

// ---- clock over tokio time ------------------------------------------------------------------

/// A [`Clock`] that follows tokio's clock from `base`: `base + (tokio::now - start)`. With
/// paused tokio time (tests), time moves only when the runtime is idle or `advance` is called.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    base: Timestamp,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// Starts at `base` now.
    pub fn new(base: Timestamp) -> Self {
        Self {
            base,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        let elapsed = tokio::time::Instant::now().saturating_duration_since(self.start);
        let span = jiff::SignedDuration::try_from(elapsed).unwrap_or(jiff::SignedDuration::MAX);
        self.base.checked_add(span).unwrap_or(self.base)
    }
}

// ---- the loop -------------------------------------------------------------------------------

/// Knobs of the scheduler loop.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// The longest the loop sleeps without looking at the store (it also wakes at every known
    /// due time and when the API changes something).
    pub max_sleep: std::time::Duration,
    /// How long shutdown waits for running jobs before aborting them (they resume next start).
    pub drain: std::time::Duration,
    /// Run `engine.resume(None)` before the first tick.
    pub resume_at_start: bool,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        Self {
            max_sleep: std::time::Duration::from_secs(60),
            drain: std::time::Duration::from_secs(30),
            resume_at_start: true,
        }
    }
}

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JobKind {
    /// A scheduled rotation.
    Rotate,
    /// Retire after grace, or finish after activation: `engine.resume(Some(name))`.
    Resume,
}

struct JobDone {
    name: SecretName,
    kind: JobKind,
    result: Result<Outcome, EngineError>,
    elapsed: std::time::Duration,
}

/// The scheduler's memory about one secret.
#[derive(Debug, Default, Clone)]
struct Entry {
    /// Failed attempts in a row.
    attempts: u32,
    /// When to try again after a failure.
    retry_at: Option<Timestamp>,
    /// Held failed: the newest rotation record `(id, status)` when it was held. Cleared when
    /// that record changes.
    failed: Option<Option<(RotationId, RotationStatus)>>,
    /// The deadline an `overdue` notification was sent for (`Some(None)`: for a secret of
    /// unknown age).
    overdue_notified: Option<Option<Timestamp>>,
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
    wake: Arc<Notify>,
    entries: Arc<Mutex<HashMap<String, Entry>>>,
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

/// The scheduler. Build it with [`Scheduler::new`] and drive it with [`Scheduler::run`].
#[derive(Debug)]
pub struct Scheduler {
    engine: Arc<Engine>,
    clock: Arc<dyn Clock>,
    notifier: Notifier,
    metrics: Arc<Metrics>,
    opts: SchedulerOptions,
    handle: SchedulerHandle,
    semaphore: Arc<Semaphore>,
}

impl Scheduler {
    pub fn new(
        engine: Arc<Engine>,
        clock: Arc<dyn Clock>,
        notifier: Notifier,
        metrics: Arc<Metrics>,
        opts: SchedulerOptions,
        handle: SchedulerHandle,
    ) -> Self {
        let permits = engine.config().server.max_concurrent_rotations.max(1);
        Self {
            engine,
            clock,
            notifier,
            metrics,
            opts,
            handle,
            semaphore: Arc::new(Semaphore::new(permits)),
        }
    }

    pub fn handle(&self) -> SchedulerHandle {
        self.handle.clone()
    }

    /// Runs until `shutdown` is cancelled, then waits (at most `drain`) for running jobs.
    pub async fn run(self, shutdown: CancellationToken) {
        if self.opts.resume_at_start {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.resume_interrupted() => {}
            }
        }
        let mut jobs: JoinSet<JobDone> = JoinSet::new();
        let mut inflight: HashSet<SecretName> = HashSet::new();
        loop {
            let now = self.clock.now();
            let wake_at = match self.tick(&mut jobs, &mut inflight).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!(error = %e, "scheduler tick failed; trying again later");
                    now.checked_add(jiff::SignedDuration::from_secs(30))
                        .unwrap_or(now)
                }
            };
            let wait = until(self.clock.now(), wake_at).min(self.opts.max_sleep);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
                _ = self.handle.wake.notified() => {}
                Some(done) = jobs.join_next(), if !jobs.is_empty() => {
                    match done {
                        Ok(done) => {
                            inflight.remove(&done.name);
                            self.finished(done).await;
                        }
                        Err(e) => tracing::error!(error = %e, "a scheduler job panicked or was cancelled"),
                    }
                    // Reap every other finished job before looking at the store again.
                    while let Some(done) = jobs.try_join_next() {
                        if let Ok(done) = done {
                            inflight.remove(&done.name);
                            self.finished(done).await;
                        }
                    }
                }
            }
        }
        let drain = async {
            while let Some(done) = jobs.join_next().await {
                if let Ok(done) = done {
                    self.finished(done).await;
                }
            }
        };
        if tokio::time::timeout(self.opts.drain, drain).await.is_err() {
            tracing::warn!(
                "shutdown: aborting rotations still running; they resume at the next start"
            );
            jobs.abort_all();
            while jobs.join_next().await.is_some() {}
        }
    }

    /// Resumes rotations interrupted by a crash or a stop (and retires whose grace ended).
    async fn resume_interrupted(&self) {
        match self.engine.resume(None).await {
            Ok(results) => {
                for (name, result) in results {
                    match result {
                        Ok(outcome) => {
                            tracing::info!(secret = %name, ?outcome, "resumed an interrupted rotation");
                            if let Outcome::Completed { rotation, .. }
                            | Outcome::InGrace { rotation, .. } = &outcome
                            {
                                self.notifier.spawn(Notification::new(
                                    NotifyEvent::Rotated,
                                    Some(&name),
                                    Some(rotation),
                                    format!("secret {name}: an interrupted rotation was resumed and finished"),
                                    self.clock.now(),
                                ));
                            }
                        }
                        Err(e) => {
                            tracing::error!(secret = %name, error = %e, "resuming an interrupted rotation failed");
                            self.failure(&name, &e).await;
                        }
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot list interrupted rotations"),
        }
    }

    /// Looks at every secret once; starts due jobs; returns when to look again.
    async fn tick(
        &self,
        jobs: &mut JoinSet<JobDone>,
        inflight: &mut HashSet<SecretName>,
    ) -> Result<Timestamp, EngineError> {
        let now = self.clock.now();
        let mut wake = now
            .checked_add(jiff::SignedDuration::try_from(self.opts.max_sleep).unwrap_or_default())
            .unwrap_or(now);
        let rows = self.engine.status().await?;
        let open = self.engine.store().open_rotations().await?;

        // Held-failed secrets whose newest rotation changed were acted on: release them.
        {
            let mut entries = self.lock();
            for row in &rows {
                if let Some(e) = entries.get_mut(row.name.as_str())
                    && let Some(marker) = &e.failed
                    && *marker != stamp(row.last_rotation.as_ref())
                {
                    tracing::info!(secret = %row.name, "no longer held failed: its rotation record changed");
                    *e = Entry {
                        overdue_notified: e.overdue_notified,
                        ..Entry::default()
                    };
                }
            }
        }

        // Open rotations: retire after grace, finish after activation.
        let mut has_open: HashSet<SecretName> = HashSet::new();
        for rot in &open {
            has_open.insert(rot.secret.clone());
            if inflight.contains(&rot.secret) || self.held(&rot.secret, now, &mut wake) {
                continue;
            }
            let at = match rot.status {
                RotationStatus::Grace => rot.retire_after.unwrap_or(now),
                RotationStatus::Running => match (rot.activate_after, &rot.lease) {
                    (Some(t), _) => t,
                    // Someone else's (or a crashed) rotation: look again when its lease ends.
                    (None, Some(l)) => l.expires_at,
                    (None, None) => now,
                },
                _ => continue,
            };
            if at <= now {
                self.start(jobs, inflight, rot.secret.clone(), JobKind::Resume);
            } else {
                wake = wake.min(at);
            }
        }

        for row in rows {
            let name = row.name.clone();
            let standing = &row.standing;
            // Overdue notices: one per deadline (and one for a secret of unknown age).
            if row.automation == Automation::Manual {
                if standing.overdue {
                    let deadline = standing.deadline;
                    let send = {
                        let mut entries = self.lock();
                        let e = entries.entry(name.to_string()).or_default();
                        let send = e.overdue_notified != Some(deadline);
                        e.overdue_notified = Some(deadline);
                        send
                    };
                    if send {
                        let how = standing
                            .hint
                            .clone()
                            .unwrap_or_else(|| format!("rotor put {name}"));
                        let message = match deadline {
                            Some(due) => format!(
                                "secret {name} is overdue: it was due at {due}; rotate it (`{how}`)"
                            ),
                            None => format!(
                                "secret {name} is overdue: rotor has no record of it ever being rotated; rotate it (`{how}`), or declare last_rotated in the config"
                            ),
                        };
                        self.notifier.spawn(Notification::new(
                            NotifyEvent::Overdue,
                            Some(&name),
                            None,
                            message,
                            now,
                        ));
                    }
                } else if let Some(due) = standing.deadline {
                    let just_after = due
                        .checked_add(jiff::SignedDuration::from_secs(1))
                        .unwrap_or(due);
                    wake = wake.min(just_after);
                }
                continue;
            }
            if inflight.contains(&name) || has_open.contains(&name) || standing.in_progress {
                continue;
            }
            // Retrying after a failure, or held failed.
            let (retry_at, held) = {
                let entries = self.lock();
                entries
                    .get(name.as_str())
                    .map(|e| (e.retry_at, e.failed.is_some()))
                    .unwrap_or((None, false))
            };
            if held {
                continue;
            }
            if let Some(at) = retry_at {
                if at <= now {
                    self.start(jobs, inflight, name, JobKind::Rotate);
                } else {
                    wake = wake.min(at);
                }
                continue;
            }
            if standing.state == SecretState::Failed {
                // Failed before this daemon looked (another process, or before a restart):
                // nothing happens until someone acts.
                tracing::warn!(secret = %name, "the last rotation failed; holding it until someone rotates or puts it");
                self.lock().entry(name.to_string()).or_default().failed =
                    Some(stamp(row.last_rotation.as_ref()));
                continue;
            }
            // The placed due time (window and jitter), as `rotor plan` shows it.
            if standing.wants_scheduled_rotation() {
                self.start(jobs, inflight, name, JobKind::Rotate);
            } else if standing.next_due > now {
                wake = wake.min(standing.next_due);
            }
        }
        Ok(wake)
    }

    /// Whether `name` is held failed or waiting for its retry time (which then joins `wake`).
    fn held(&self, name: &SecretName, now: Timestamp, wake: &mut Timestamp) -> bool {
        let entries = self.lock();
        match entries.get(name.as_str()) {
            Some(e) if e.failed.is_some() => true,
            Some(Entry {
                retry_at: Some(at), ..
            }) if *at > now => {
                *wake = (*wake).min(*at);
                true
            }
            _ => false,
        }
    }

    fn start(
        &self,
        jobs: &mut JoinSet<JobDone>,
        inflight: &mut HashSet<SecretName>,
        name: SecretName,
        kind: JobKind,
    ) {
        inflight.insert(name.clone());
        let engine = self.engine.clone();
        let semaphore = self.semaphore.clone();
        jobs.spawn(async move {
            // The semaphore is never closed; if it were, the job runs unlimited rather than never.
            let _permit = semaphore.acquire_owned().await.ok();
            let started = tokio::time::Instant::now();
            let result = match kind {
                JobKind::Rotate => {
                    let opts = RotateOptions {
                        trigger: Trigger::Schedule,
                        reason: Some("scheduled: due".into()),
                        emergency: false,
                        evict: true,
                        confirm: false,
                    };
                    engine.rotate(name.as_str(), &opts).await
                }
                JobKind::Resume => match engine.resume(Some(name.as_str())).await {
                    Ok(mut results) => match results.pop() {
                        Some((_, r)) => r,
                        None => Err(EngineError::Nothing {
                            secret: name.to_string(),
                            what: "resume",
                        }),
                    },
                    Err(e) => Err(e),
                },
            };
            JobDone {
                name,
                kind,
                result,
                elapsed: started.elapsed(),
            }
        });
    }

    async fn finished(&self, done: JobDone) {
        let name = done.name;
        match done.result {
            Ok(outcome) => {
                {
                    let mut entries = self.lock();
                    let e = entries.entry(name.to_string()).or_default();
                    e.attempts = 0;
                    e.retry_at = None;
                    e.failed = None;
                }
                if done.kind == JobKind::Rotate
                    && let Ok(spec) = self.engine.spec(name.as_str())
                {
                    self.metrics
                        .observe_duration(spec.kind, done.elapsed.as_secs_f64());
                }
                let finished_now = match (&outcome, done.kind) {
                    (Outcome::Waiting { .. }, _) => None,
                    (Outcome::Completed { rotation, .. }, JobKind::Rotate)
                    | (Outcome::InGrace { rotation, .. }, _) => Some(rotation.clone()),
                    (Outcome::Completed { .. }, JobKind::Resume) => None,
                };
                tracing::info!(secret = %name, ?outcome, "scheduled job done");
                if let Some(rotation) = finished_now {
                    self.notifier.spawn(Notification::new(
                        NotifyEvent::Rotated,
                        Some(&name),
                        Some(&rotation),
                        format!("secret {name} was rotated (scheduled)"),
                        self.clock.now(),
                    ));
                }
            }
            // Not failures: someone else holds the secret (or another replica just rotated
            // it), or grace is not over yet.
            Err(EngineError::Store(StoreError::Busy { .. } | StoreError::Stale { .. }))
            | Err(EngineError::GraceNotOver { .. })
            | Err(EngineError::NotDue { .. }) => {
                let retry = self.backoff(1);
                let mut entries = self.lock();
                entries.entry(name.to_string()).or_default().retry_at = Some(retry);
            }
            Err(e) => self.failure(&name, &e).await,
        }
    }

    /// Counts a failed attempt: schedules the next with backoff, or holds the secret failed.
    async fn failure(&self, name: &SecretName, error: &EngineError) {
        self.metrics.count_failure(name.as_str());
        let attempts_allowed = self.engine.config().server.retry_attempts.max(1);
        let attempts = {
            let mut entries = self.lock();
            let e = entries.entry(name.to_string()).or_default();
            e.attempts = e.attempts.saturating_add(1);
            e.attempts
        };
        if attempts < attempts_allowed {
            let at = self.backoff(attempts);
            tracing::warn!(secret = %name, attempts, retry_at = %at, error = %error, "rotation failed; will retry");
            self.lock().entry(name.to_string()).or_default().retry_at = Some(at);
            return;
        }
        let newest = self
            .engine
            .store()
            .rotations(Some(name), 1)
            .await
            .ok()
            .and_then(|mut v| v.pop())
            .map(|r| (r.id, r.status));
        {
            let mut entries = self.lock();
            let e = entries.entry(name.to_string()).or_default();
            e.retry_at = None;
            e.failed = Some(newest.clone());
        }
        tracing::error!(secret = %name, attempts, error = %error, "rotation failed for good; holding the secret until someone acts");
        self.notifier.spawn(Notification::new(
            NotifyEvent::Failed,
            Some(name),
            newest.as_ref().map(|(id, _)| id),
            format!(
                "secret {name}: rotation failed {attempts} time(s) and is held: {error}. Fix the cause, then `rotor rotate {name}` (or `rotor put {name}`)"
            ),
            self.clock.now(),
        ));
    }

    /// When attempt `n + 1` may start: `retry_backoff * 2^(n-1)` from now, at most a day.
    fn backoff(&self, n: u32) -> Timestamp {
        let base = self.engine.config().server.retry_backoff.as_secs().max(1);
        let secs = base
            .saturating_mul(2u64.saturating_pow(n.saturating_sub(1)))
            .min(86_400);
        let now = self.clock.now();
        now.checked_add(jiff::SignedDuration::from_secs(
            i64::try_from(secs).unwrap_or(86_400),
        ))
        .unwrap_or(now)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A poisoned map only means a panic elsewhere; the data is still usable.
        self.handle
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn stamp(r: Option<&RotationStamp>) -> Option<(RotationId, RotationStatus)> {
    r.map(|r| (r.id.clone(), r.status))
}

fn until(now: Timestamp, at: Timestamp) -> std::time::Duration {
    if at <= now {
        return std::time::Duration::ZERO;
    }
    std::time::Duration::try_from(at.duration_since(now)).unwrap_or_default()
}
