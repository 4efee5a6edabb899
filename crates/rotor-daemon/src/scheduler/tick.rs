//! One tick of the scheduler: read every secret's status, open rotations and owed
//! rollbacks once, decide which jobs start (in this process's own order) and when to look
//! again.

use std::collections::HashSet;
use std::hash::BuildHasher as _;

use jiff::Timestamp;
use rotor_core::config::service::NotifyEvent;
use rotor_core::store::RotationStamp;
use rotor_core::{Automation, RotationId, RotationStatus, SecretName, SecretState};
use rotor_engine::EngineError;
use tokio::task::JoinSet;

use super::Scheduler;
use super::handle::Entry;
use super::jobs::{JobDone, JobKind};
use crate::notify::Notification;

impl Scheduler {
    /// Looks at every secret once; starts due jobs; returns when to look again.
    pub(super) async fn tick(
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
}

fn stamp(r: Option<&RotationStamp>) -> Option<(RotationId, RotationStatus)> {
    r.map(|r| (r.id.clone(), r.status))
}
