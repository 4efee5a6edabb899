//! The daemon's preflight: probes each automatic secret on start and again, every
//! `probe_every`, once it is within `probe_ahead` of its due time, so a rotation that would
//! fail (target unreachable, a privilege gone, a plugin broken) shows up as `blocked`
//! (`secret_rotation_blocked`, `SecretRotationBlocked`, a `blocked` notification) while
//! there is still time to fix it.
//!
//! The verdict lives in the engine (`Engine::probe` remembers it; `status()` reads it as the
//! `blocked` fact of `schedule::evaluate`), so every surface shows the one state. It runs as
//! its own task beside the scheduler loop: a slow probe (a plugin's timeout) never delays a
//! due rotation.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;
use rotor_core::Automation;
use rotor_core::config::service::NotifyEvent;
use rotor_engine::{Clock, Engine};
use tokio_util::sync::CancellationToken;

use crate::notify::{Notification, Notifier};

/// When the prober looks again, and how far ahead of a due time it probes.
#[derive(Debug, Clone, Copy)]
pub struct ProbeSchedule {
    /// Probe a secret whose next rotation is at most this far away (default a day).
    pub ahead: std::time::Duration,
    /// Probe such a secret again after this long (default an hour).
    pub every: std::time::Duration,
    /// How often the prober looks at the inventory (default five minutes).
    pub tick: std::time::Duration,
}

impl Default for ProbeSchedule {
    fn default() -> Self {
        Self {
            ahead: std::time::Duration::from_secs(24 * 3600),
            every: std::time::Duration::from_secs(3600),
            tick: std::time::Duration::from_secs(300),
        }
    }
}

pub(crate) struct Prober {
    pub engine: Arc<Engine>,
    pub clock: Arc<dyn Clock>,
    pub notifier: Notifier,
    pub schedule: ProbeSchedule,
}

/// What the prober remembers of one secret: when it last probed, and whether it was blocked
/// then (a notification goes out when a secret becomes blocked, not at every probe).
#[derive(Debug, Clone, Copy)]
struct Last {
    at: Timestamp,
    blocked: bool,
}

impl Prober {
    pub(crate) async fn run(self, shutdown: CancellationToken) {
        let mut last: HashMap<String, Last> = HashMap::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.round(&mut last) => {}
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.schedule.tick) => {}
            }
        }
    }

    async fn round(&self, last: &mut HashMap<String, Last>) {
        let rows = match self.engine.status().await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "probe: cannot read the status; trying again later");
                return;
            }
        };
        let now = self.clock.now();
        let span = |d: std::time::Duration| {
            jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX)
        };
        let horizon = now
            .checked_add(span(self.schedule.ahead))
            .unwrap_or(Timestamp::MAX);
        for row in rows {
            if row.automation != Automation::Automatic || row.standing.in_progress {
                continue;
            }
            let name = row.name.to_string();
            let seen = last.get(&name).copied();
            let stale = seen.is_none_or(|l| {
                l.at.checked_add(span(self.schedule.every))
                    .is_ok_and(|t| t <= now)
            });
            let soon = row.standing.next_due <= horizon;
            // Always once at start; then while the due time approaches.
            if seen.is_some() && !(soon && stale) {
                continue;
            }
            let report = match self.engine.probe(&name).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(secret = %name, error = %e, "probe could not run");
                    continue;
                }
            };
            let blocked = report.is_blocked();
            if let Some(cause) = &report.blocked {
                tracing::warn!(secret = %name, cause = %cause, "probe: the next rotation would not get through");
            }
            if blocked && !seen.is_some_and(|l| l.blocked) {
                let fix = report
                    .fix
                    .as_deref()
                    .map(|f| format!(" ({f})"))
                    .unwrap_or_default();
                self.notifier.spawn(Notification::new(
                    NotifyEvent::Blocked,
                    Some(&row.name),
                    None,
                    format!(
                        "secret {name}: its next rotation (due {}) would not get through: {}{fix}. See `rotor probe {name}`",
                        row.standing.next_due,
                        report.blocked.as_deref().unwrap_or_default()
                    ),
                    now,
                ));
            }
            last.insert(name, Last { at: now, blocked });
        }
    }
}
