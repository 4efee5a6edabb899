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
//!   tries (bounded by a day); the engine lets go of the job's lease when it fails, so the
//!   retry comes at its backoff, not when a lease expires; then the secret is held `failed`
//!   (a `failed` notification goes out once) until its newest rotation record changes
//!   (someone rotated, put, aborted or retired by hand);
//! - only a rotation that ended `failed` counts in `secret_rotation_failures_total`;
//!   contention (busy, taken over, nothing to resume, not due) is logged at debug and retried;
//! - a rollback owed by a failed rotation (its target was unreachable) is retried with the
//!   same doubling backoff, held failed or not, until the target confirms it;
//! - a manual secret gets one `overdue` notification per overdue period (per deadline);
//! - replicas do not chase each other: each scheduler starts the jobs of a tick in its own
//!   random order (a per-process hash of the secret name), so replicas on one store begin
//!   with different secrets instead of racing for the same one and losing every other time;
//! - a finished job wakes the loop to look at the store again, but at most every
//!   [`TICK_FLOOR`]: with thousands of due secrets, re-reading every secret's status after
//!   every single rotation cost more than the rotations;
//! - time comes from a [`Clock`] and sleeps are tokio sleeps, so tests run on paused time.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher as _;
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use rotor_core::config::service::NotifyEvent;
use rotor_core::store::RotationStamp;
use rotor_core::{Automation, RotationId, RotationStatus, SecretName, SecretState, Trigger};
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
    /// When the preflight probe runs (`None`: never, e.g. tests of the loop alone).
    pub probe: Option<crate::probing::ProbeSchedule>,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        Self {
            max_sleep: std::time::Duration::from_secs(60),
            drain: std::time::Duration::from_secs(30),
            resume_at_start: true,
            probe: Some(crate::probing::ProbeSchedule::default()),
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
    /// Retry a rollback owed by a failed rotation: `engine.settle_rollbacks(Some(name))`.
    Settle,
}

struct JobDone {
    name: SecretName,
    kind: JobKind,
    /// `Ok(None)`: a `Settle` job whose rollbacks the target confirmed.
    result: Result<Option<Outcome>, EngineError>,
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
    /// Owed-rollback retries in a row, and when to try the next.
    rollback_tries: u32,
    rollback_at: Option<Timestamp>,
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

/// The least time between two looks at the store that a finished job causes (a wake, a due
/// time or a retry still looks at once).
pub const TICK_FLOOR: std::time::Duration = std::time::Duration::from_millis(100);

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
    /// This process's order of starting jobs (random keys per process).
    order: RandomState,
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
            order: RandomState::new(),
        }
    }

    pub fn handle(&self) -> SchedulerHandle {
        self.handle.clone()
    }

    /// Runs until `shutdown` is cancelled, then waits (at most `drain`) for running jobs.
    pub async fn run(self, shutdown: CancellationToken) {
        if let Some(schedule) = self.opts.probe {
            let prober = crate::probing::Prober {
                engine: Arc::clone(&self.engine),
                clock: Arc::clone(&self.clock),
                notifier: self.notifier.clone(),
                schedule,
            };
            tokio::spawn(prober.run(shutdown.clone()));
        }
        if self.opts.resume_at_start {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.resume_interrupted() => {}
            }
        }
        let mut jobs: JoinSet<JobDone> = JoinSet::new();
        let mut inflight: HashSet<SecretName> = HashSet::new();
        let mut last_tick = tokio::time::Instant::now();
        let mut after_job = false;
        loop {
            if after_job {
                let floor = last_tick + TICK_FLOOR;
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep_until(floor) => {}
                    _ = self.handle.wake.notified() => {}
                }
                while let Some(done) = jobs.try_join_next() {
                    if let Ok(done) = done {
                        inflight.remove(&done.name);
                        self.finished(done).await;
                    }
                }
            }
            after_job = false;
            last_tick = tokio::time::Instant::now();
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
                    after_job = true;
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
                        Err(e) if e.is_contention() => {
                            tracing::debug!(secret = %name, error = %e, "not resumed here: another process has it, or it moved on");
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
        match self.engine.settle_rollbacks(None).await {
            Ok(results) => {
                for (name, result) in results {
                    self.settled(&name, result.map(drop));
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot list owed rollbacks"),
        }
    }

    /// Books the result of an owed-rollback retry: done, or the next try at its backoff.
    fn settled(&self, name: &SecretName, result: Result<(), EngineError>) {
        let mut entries = self.lock();
        let e = entries.entry(name.to_string()).or_default();
        match result {
            Ok(()) => {
                tracing::info!(secret = %name, "owed rollback done: the target confirmed it");
                e.rollback_tries = 0;
                e.rollback_at = None;
            }
            Err(err) => {
                e.rollback_tries = e.rollback_tries.saturating_add(1);
                let at = self.backoff(e.rollback_tries.saturating_add(1));
                if err.is_contention() {
                    tracing::debug!(secret = %name, error = %err, "owed rollback not retried here");
                } else {
                    tracing::warn!(secret = %name, retry_at = %at, error = %err, "owed rollback still fails; will retry");
                }
                e.rollback_at = Some(at);
            }
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
        let mut starts: Vec<(SecretName, JobKind)> = Vec::new();
        let open = self.engine.store().open_rotations().await?;
        let owed = self.engine.store().owed_rollbacks().await?;

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

        // Rollbacks owed by failed rotations: retried at their own backoff, held or not. A
        // secret that owes one is not rotated meanwhile (its rotation would only retry the
        // rollback first); its rotation retry comes once the target confirmed.
        let owes: HashSet<SecretName> = owed.iter().map(|r| r.secret.clone()).collect();
        for rot in &owed {
            if inflight.contains(&rot.secret) {
                continue;
            }
            let at = {
                let mut entries = self.lock();
                let e = entries.entry(rot.secret.to_string()).or_default();
                *e.rollback_at.get_or_insert_with(|| {
                    // First seen (the rotation just failed): one backoff step from now.
                    self.backoff_from(now, e.rollback_tries.saturating_add(1))
                })
            };
            if at <= now {
                self.start(&mut starts, inflight, rot.secret.clone(), JobKind::Settle);
            } else {
                wake = wake.min(at);
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
                self.start(&mut starts, inflight, rot.secret.clone(), JobKind::Resume);
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
            if inflight.contains(&name)
                || has_open.contains(&name)
                || owes.contains(&name)
                || standing.in_progress
            {
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
                    self.start(&mut starts, inflight, name, JobKind::Rotate);
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
                self.start(&mut starts, inflight, name, JobKind::Rotate);
            } else if standing.next_due > now {
                wake = wake.min(standing.next_due);
            }
        }
        // In this process's own order: see the module docs (replicas do not chase each other).
        starts.sort_by_cached_key(|(name, _)| self.order.hash_one(name.as_str()));
        for (name, kind) in starts {
            self.spawn_job(jobs, name, kind);
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

    /// Marks `name` in flight and queues its job for the end of the tick.
    fn start(
        &self,
        starts: &mut Vec<(SecretName, JobKind)>,
        inflight: &mut HashSet<SecretName>,
        name: SecretName,
        kind: JobKind,
    ) {
        inflight.insert(name.clone());
        starts.push((name, kind));
    }

    fn spawn_job(&self, jobs: &mut JoinSet<JobDone>, name: SecretName, kind: JobKind) {
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
                    engine.rotate(name.as_str(), &opts).await.map(Some)
                }
                JobKind::Resume => match engine.resume(Some(name.as_str())).await {
                    Ok(mut results) => match results.pop() {
                        Some((_, r)) => r.map(Some),
                        None => Err(EngineError::Nothing {
                            secret: name.to_string(),
                            what: "resume",
                        }),
                    },
                    Err(e) => Err(e),
                },
                JobKind::Settle => match engine.settle_rollbacks(Some(name.as_str())).await {
                    Ok(results) => results
                        .into_iter()
                        .map(|(_, r)| r.map(drop))
                        .find(Result::is_err)
                        .unwrap_or(Ok(()))
                        .map(|()| None),
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
        if done.kind == JobKind::Settle {
            self.settled(&name, done.result.map(drop));
            return;
        }
        match done.result {
            // A settle job's success; not reached for rotate and resume jobs.
            Ok(None) => {}
            Ok(Some(outcome)) => {
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
                    (Outcome::Completed { .. }, _) => None,
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
            // it, or finished the job), or there is nothing to do yet. Look again soon.
            Err(e) if e.is_contention() => {
                tracing::debug!(secret = %name, error = %e, "contention, not a failure; looking again later");
                let retry = self.backoff(1);
                let mut entries = self.lock();
                entries.entry(name.to_string()).or_default().retry_at = Some(retry);
            }
            Err(e) => self.failure(&name, &e).await,
        }
    }

    /// Counts a failed attempt: schedules the next with backoff, or holds the secret failed.
    async fn failure(&self, name: &SecretName, error: &EngineError) {
        // Only a rotation that ended `failed` is a rotation failure; a retire that failed
        // (still in grace, shown as retire-due) or a store error is retried the same way.
        if error.rotation_failed() {
            self.metrics.count_failure(name.as_str());
        }
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
        self.backoff_from(self.clock.now(), n)
    }

    fn backoff_from(&self, now: Timestamp, n: u32) -> Timestamp {
        let base = self.engine.config().server.retry_backoff.as_secs().max(1);
        let secs = base
            .saturating_mul(2u64.saturating_pow(n.saturating_sub(1)))
            .min(86_400);
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
