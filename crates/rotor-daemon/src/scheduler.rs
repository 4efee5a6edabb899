//! The scheduler: runs each automatic secret's rotation when it is due, retires previous
//! values when grace ends, finishes rotations waiting for activation, and reports manual
//! secrets that are overdue.
//!
//! Invariants:
//! - the due time is a pure function ([`place_due`]) of the nominal due time (last rotation +
//!   `rotate_every`), the secret's window and its name-derived jitter; tests pin it down;
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
use jiff::civil::Date;
use jiff::tz::TimeZone;
use rotor_core::config::Window;
use rotor_core::config::service::NotifyEvent;
use rotor_core::store::RotationStamp;
use rotor_core::{
    Automation, Duration, RotationId, RotationStatus, SecretName, SecretState, StoreError, Trigger,
};
use rotor_engine::{Clock, Engine, EngineError, Outcome, RotateOptions};
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::notify::{Notification, Notifier};

// ---- placement (pure) -----------------------------------------------------------------------

/// The deterministic jitter offset of `name`: SHA-256 of the name, mapped into `[0, jitter)`.
/// Stable across builds and hosts, so every replica computes the same schedule.
pub fn jitter_offset(name: &str, jitter: Duration) -> Duration {
    if jitter.is_zero() {
        return Duration::ZERO;
    }
    let digest = Sha256::digest(name.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    Duration::from_secs(u64::from_be_bytes(first) % jitter.as_secs())
}

/// When a secret nominally due at `nominal` is scheduled.
///
/// Without a window: `nominal + jitter_offset(name)`. With a window: the earliest instant at
/// or after `nominal` inside the window, plus the jitter offset, kept inside that same window
/// occurrence (the offset wraps around what is left of it), so secrets due together spread
/// over the window instead of all starting when it opens.
///
/// Windows are local wall-clock times in their IANA zone: on a DST spring-forward day a start
/// inside the gap moves to the end of the gap (02:00 → 03:00 CEST in Europe/Berlin), and on a
/// fall-back day the earlier of two ambiguous instants is taken, so the window is an hour
/// shorter or longer that day.
pub fn place_due(
    nominal: Timestamp,
    name: &str,
    jitter: Duration,
    window: Option<&Window>,
) -> Timestamp {
    let offset = jitter_offset(name, jitter).to_span();
    let Some(window) = window else {
        return nominal.checked_add(offset).unwrap_or(nominal);
    };
    let Some((at, end)) = window_at_or_after(window, nominal) else {
        return nominal.checked_add(offset).unwrap_or(nominal);
    };
    let left = end.duration_since(at).as_secs().max(1);
    let secs = offset.as_secs();
    let secs = if secs < left { secs } else { secs % left };
    at.checked_add(jiff::SignedDuration::from_secs(secs))
        .unwrap_or(at)
}

/// The earliest instant `>= t` inside `window`, with the end of that window occurrence.
pub fn window_at_or_after(window: &Window, t: Timestamp) -> Option<(Timestamp, Timestamp)> {
    let tz = TimeZone::get(&window.tz).ok()?;
    let today = t.to_zoned(tz.clone()).date();
    let mut date = today.yesterday().ok()?;
    let mut best: Option<(Timestamp, Timestamp)> = None;
    // A window crossing midnight may have opened yesterday; a week later it repeats.
    for _ in 0..10 {
        let weekday = usize::try_from(date.weekday().to_monday_zero_offset()).unwrap_or(0);
        if window.days[weekday] {
            let start = local(&tz, date, window.start_minute)?;
            let end_date = if window.end_minute <= window.start_minute {
                date.tomorrow().ok()?
            } else {
                date
            };
            let end = local(&tz, end_date, window.end_minute)?;
            if end > t && end > start {
                let at = start.max(t);
                if best.is_none_or(|(b, _)| at < b) {
                    best = Some((at, end));
                }
            }
        }
        date = date.tomorrow().ok()?;
    }
    best
}

/// `minute` minutes after local midnight of `date` in `tz` (24:00 is next midnight).
fn local(tz: &TimeZone, date: Date, minute: u16) -> Option<Timestamp> {
    let (date, minute) = if minute >= 1440 {
        (date.tomorrow().ok()?, minute - 1440)
    } else {
        (date, minute)
    };
    let hour = i8::try_from(minute / 60).ok()?;
    let min = i8::try_from(minute % 60).ok()?;
    let dt = date.at(hour, min, 0, 0);
    Some(dt.to_zoned(tz.clone()).ok()?.timestamp())
}

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
    /// The deadline an `overdue` notification was sent for.
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
            let Ok(spec) = self.engine.spec(name.as_str()) else {
                continue;
            };
            // Overdue notices: one per deadline.
            if row.automation == Automation::Manual {
                match row.next_due {
                    Some(due) if now > due => {
                        let send = {
                            let mut entries = self.lock();
                            let e = entries.entry(name.to_string()).or_default();
                            let send = e.overdue_notified != Some(Some(due));
                            e.overdue_notified = Some(Some(due));
                            send
                        };
                        if send {
                            self.notifier.spawn(Notification::new(
                                NotifyEvent::Overdue,
                                Some(&name),
                                None,
                                format!(
                                    "secret {name} is overdue: it was due at {due}; rotate it (`rotor rotate {name}` or `rotor put {name}`)"
                                ),
                                now,
                            ));
                        }
                    }
                    Some(due) => {
                        let just_after = due
                            .checked_add(jiff::SignedDuration::from_secs(1))
                            .unwrap_or(due);
                        wake = wake.min(just_after);
                    }
                    None => {}
                }
                continue;
            }
            if inflight.contains(&name)
                || has_open.contains(&name)
                || row.state == SecretState::InProgress
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
                    self.start(jobs, inflight, name, JobKind::Rotate);
                } else {
                    wake = wake.min(at);
                }
                continue;
            }
            if row.state == SecretState::Failed {
                // Failed before this daemon looked (another process, or before a restart):
                // nothing happens until someone acts.
                tracing::warn!(secret = %name, "the last rotation failed; holding it until someone rotates or puts it");
                self.lock().entry(name.to_string()).or_default().failed =
                    Some(stamp(row.last_rotation.as_ref()));
                continue;
            }
            let due = match row.next_due {
                // Never rotated: the first rotation runs now.
                None => now,
                Some(nominal) => {
                    place_due(nominal, name.as_str(), spec.jitter, spec.window.as_ref())
                }
            };
            if due <= now {
                self.start(jobs, inflight, name, JobKind::Rotate);
            } else {
                wake = wake.min(due);
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
        let metrics = self.metrics.clone();
        jobs.spawn(async move {
            // The semaphore is never closed; if it were, the job runs unlimited rather than never.
            let _permit = semaphore.acquire_owned().await.ok();
            metrics.set_in_progress(name.as_str(), true);
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
            metrics.set_in_progress(name.as_str(), false);
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
                if done.kind == JobKind::Rotate {
                    self.metrics
                        .observe_duration(name.as_str(), done.elapsed.as_secs_f64());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn win(s: &str) -> Window {
        Window::parse(s).expect("window")
    }

    #[test]
    fn jitter_is_deterministic_and_bounded() {
        let j = Duration::from_hours(6);
        for name in ["jwt-signing", "database", "redis", "a", "session-secret"] {
            let a = jitter_offset(name, j);
            assert_eq!(a, jitter_offset(name, j));
            assert!(a < j, "{name}: {a}");
        }
        assert_ne!(
            jitter_offset("jwt-signing", j),
            jitter_offset("database", j)
        );
        assert_eq!(jitter_offset("x", Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn placement_table() {
        // (nominal, window, jitter, expected); names chosen below with jitter 0 unless noted.
        let cases: &[(&str, Option<&str>, &str)] = &[
            // No window, no jitter: the nominal time.
            ("2025-06-03T10:00:00Z", None, "2025-06-03T10:00:00Z"),
            // Inside a UTC window: unchanged.
            (
                "2025-06-03T02:30:00Z",
                Some("Tue-Thu 02:00-04:00 UTC"),
                "2025-06-03T02:30:00Z",
            ),
            // Before the window on a window day: its start.
            (
                "2025-06-03T01:00:00Z",
                Some("Tue-Thu 02:00-04:00 UTC"),
                "2025-06-03T02:00:00Z",
            ),
            // After Thursday's window: next Tuesday.
            (
                "2025-06-05T05:00:00Z",
                Some("Tue-Thu 02:00-04:00 UTC"),
                "2025-06-10T02:00:00Z",
            ),
            // Exactly at the end (exclusive): next day's window.
            (
                "2025-06-03T04:00:00Z",
                Some("Tue-Thu 02:00-04:00 UTC"),
                "2025-06-04T02:00:00Z",
            ),
            // Berlin in summer (CEST, UTC+2): 02:00 local is 00:00Z.
            (
                "2025-06-02T12:00:00Z",
                Some("Tue-Thu 02:00-04:00 Europe/Berlin"),
                "2025-06-03T00:00:00Z",
            ),
            // Berlin in winter (CET, UTC+1): 02:00 local is 01:00Z.
            (
                "2025-01-06T12:00:00Z",
                Some("Tue-Thu 02:00-04:00 Europe/Berlin"),
                "2025-01-07T01:00:00Z",
            ),
            // DST spring forward (Sun 2025-03-30: 02:00 → 03:00): 02:00 does not exist, the
            // window opens at 03:00 CEST = 01:00Z.
            (
                "2025-03-29T12:00:00Z",
                Some("Sun 02:00-04:00 Europe/Berlin"),
                "2025-03-30T01:00:00Z",
            ),
            // DST fall back (Sun 2025-10-26: 03:00 → 02:00): 02:00 happens twice; the first
            // (CEST) one opens the window, 00:00Z.
            (
                "2025-10-25T12:00:00Z",
                Some("Sun 02:00-04:00 Europe/Berlin"),
                "2025-10-26T00:00:00Z",
            ),
            // During the repeated hour (02:30 CET = 01:30Z) the window is open: unchanged.
            (
                "2025-10-26T01:30:00Z",
                Some("Sun 02:00-04:00 Europe/Berlin"),
                "2025-10-26T01:30:00Z",
            ),
            // The fall-back window ends at 04:00 CET = 03:00Z; 03:30Z goes to next Sunday.
            (
                "2025-10-26T03:30:00Z",
                Some("Sun 02:00-04:00 Europe/Berlin"),
                "2025-11-02T01:00:00Z",
            ),
            // A window crossing midnight, entered after midnight (Sat-Mon 22:00-02:00 UTC):
            // Monday 01:00 is inside Sunday's window.
            (
                "2025-06-09T01:00:00Z",
                Some("Sat-Mon 22:00-02:00 UTC"),
                "2025-06-09T01:00:00Z",
            ),
            // Tuesday noon: next Saturday 22:00.
            (
                "2025-06-10T12:00:00Z",
                Some("Sat-Mon 22:00-02:00 UTC"),
                "2025-06-14T22:00:00Z",
            ),
        ];
        for (nominal, window, want) in cases {
            let w = window.map(win);
            let got = place_due(ts(nominal), "x", Duration::ZERO, w.as_ref());
            assert_eq!(got, ts(want), "nominal {nominal} window {window:?}");
        }
    }

    #[test]
    fn jitter_spreads_inside_the_window() {
        let w = win("Tue-Thu 02:00-04:00 Europe/Berlin");
        let nominal = ts("2025-06-02T12:00:00Z");
        let open = ts("2025-06-03T00:00:00Z");
        let close = ts("2025-06-03T02:00:00Z");
        let mut seen = HashSet::new();
        for i in 0..50 {
            let name = format!("svc-{i}");
            let got = place_due(nominal, &name, Duration::from_hours(1), Some(&w));
            assert!(got >= open && got < close, "{name}: {got}");
            let off = jitter_offset(&name, Duration::from_hours(1));
            assert_eq!(got, open.checked_add(off.to_span()).expect("add"));
            seen.insert(got);
        }
        assert!(seen.len() > 40, "jitter spreads: {}", seen.len());
        // Jitter longer than what is left of the window wraps and stays inside it.
        let late = ts("2025-06-03T01:50:00Z");
        for i in 0..50 {
            let got = place_due(late, &format!("svc-{i}"), Duration::from_hours(5), Some(&w));
            assert!(got >= late && got < close, "{got}");
        }
        // The spring-forward day's window is one hour long (03:00-04:00 CEST).
        let w = win("Sun 02:00-04:00 Europe/Berlin");
        for i in 0..50 {
            let got = place_due(
                ts("2025-03-29T12:00:00Z"),
                &format!("svc-{i}"),
                Duration::from_hours(3),
                Some(&w),
            );
            assert!(
                got >= ts("2025-03-30T01:00:00Z") && got < ts("2025-03-30T02:00:00Z"),
                "{got}"
            );
        }
        // No window: nominal + offset.
        let off = jitter_offset("db", Duration::from_hours(2));
        assert_eq!(
            place_due(nominal, "db", Duration::from_hours(2), None),
            nominal.checked_add(off.to_span()).expect("add")
        );
    }
}
