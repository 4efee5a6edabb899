//! Running a scheduler job (rotate, resume, settle an owed rollback) and booking its
//! result: success clears the secret's retry memory, contention looks again soon, a failure
//! is retried at `retry_backoff` doubling (bounded by a day, [`rotor_core::Backoff`]) until
//! `retry_attempts`, then the secret is held failed.

use jiff::Timestamp;
use rotor_core::config::service::NotifyEvent;
use rotor_core::{Backoff, SecretName, Trigger};
use rotor_engine::{EngineError, Outcome, RotateOptions};
use tokio::task::JoinSet;

use super::Scheduler;
use crate::notify::Notification;

/// The longest wait between two tries of a failed job or an owed rollback.
const MAX_RETRY_WAIT: std::time::Duration = std::time::Duration::from_secs(86_400);

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum JobKind {
    /// A scheduled rotation.
    Rotate,
    /// Retire after grace, or finish after activation: `engine.resume(Some(name))`.
    Resume,
    /// Retry a rollback owed by a failed rotation: `engine.settle_rollbacks(Some(name))`.
    Settle,
}

pub(super) struct JobDone {
    pub(super) name: SecretName,
    kind: JobKind,
    /// `Ok(None)`: a `Settle` job whose rollbacks the target confirmed.
    result: Result<Option<Outcome>, EngineError>,
    elapsed: std::time::Duration,
}

impl Scheduler {
    /// Books the result of an owed-rollback retry: done, or the next try at its backoff.
    pub(super) fn settled(&self, name: &SecretName, result: Result<(), EngineError>) {
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

    pub(super) fn spawn_job(&self, jobs: &mut JoinSet<JobDone>, name: SecretName, kind: JobKind) {
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

    pub(super) async fn finished(&self, done: JobDone) {
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
    pub(super) async fn failure(&self, name: &SecretName, error: &EngineError) {
        // Only a rotation that ended `failed` is a rotation failure; a retire that failed
        // (still in grace, shown as retire-due) or a store error is retried the same way.
        if error.rotation_failed() {
            self.metrics.count_failure(name.as_str());
        }
        let attempts = {
            let mut entries = self.lock();
            let e = entries.entry(name.to_string()).or_default();
            e.attempts = e.attempts.saturating_add(1);
            e.attempts
        };
        if self.retries().may_retry(attempts) {
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

    pub(super) fn backoff_from(&self, now: Timestamp, n: u32) -> Timestamp {
        now.checked_add(
            jiff::SignedDuration::try_from(self.retries().delay(n))
                .unwrap_or(jiff::SignedDuration::from_secs(86_400)),
        )
        .unwrap_or(now)
    }

    /// `retry_attempts` tries of a failed job, `retry_backoff` (whole seconds, at least one)
    /// doubling between them, at most a day; owed rollbacks use its delays without a bound
    /// on tries.
    fn retries(&self) -> Backoff {
        let server = &self.engine.config().server;
        Backoff::new(
            server.retry_attempts.max(1),
            std::time::Duration::from_secs(server.retry_backoff.as_secs().max(1)),
            MAX_RETRY_WAIT,
        )
    }
}
