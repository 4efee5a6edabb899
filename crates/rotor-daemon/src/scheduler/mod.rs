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
//!
//! Layout: `clock` (the tokio-time [`Clock`]), `handle` (what the scheduler remembers
//! about each secret, and the handle the API and tests read it through), `tick` (one look at
//! the store: which jobs start, when to look again), `jobs` (running a job and booking its
//! result: retries, holding failed, owed-rollback retries).

mod clock;
mod handle;
mod jobs;
mod tick;

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use jiff::Timestamp;
use rotor_core::SecretName;
use rotor_core::config::service::NotifyEvent;
use rotor_engine::{Clock, Engine, Outcome};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use clock::TokioClock;
pub use handle::{SchedulerHandle, SecretSchedule};

use crate::metrics::Metrics;
use crate::notify::{Notification, Notifier};
use handle::Entry;
use jobs::JobDone;

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

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A poisoned map only means a panic elsewhere; the data is still usable.
        self.handle
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn until(now: Timestamp, at: Timestamp) -> std::time::Duration {
    if at <= now {
        return std::time::Duration::ZERO;
    }
    std::time::Duration::try_from(at.duration_since(now)).unwrap_or_default()
}
