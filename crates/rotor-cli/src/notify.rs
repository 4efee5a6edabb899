//! `[[notify]]` webhooks from CLI commands (`rotor rotate`, `retire`, `put`, `resume`,
//! emergencies), with the events `rotor serve` sends for the same outcomes: `rotated` when a
//! rotation finished, `failed` when a step failed for good, `emergency` first in an emergency.
//!
//! Why a bounded wait: a CLI process exits when its command is done, and cron jobs must not
//! hang on a dead webhook. Sends start in the background as each result comes in; before
//! exiting, the command waits at most [`NOTIFY_WAIT`] for them (retries included) and then
//! exits anyway with a warning. A notification never changes a command's exit status.

use std::time::Duration;

use rotor_core::SecretName;
use rotor_core::config::service::NotifyEvent;
use rotor_daemon::Notification;
use rotor_daemon::notify::NotifyRetry;
use rotor_engine::{EngineError, Outcome};

use crate::context::Context;

/// How long a command waits for its notifications before exiting.
pub const NOTIFY_WAIT: Duration = Duration::from_secs(5);

/// Tries within [`NOTIFY_WAIT`]: three attempts of at most 1.5 s, 250 ms then 500 ms apart.
const CLI_RETRY: NotifyRetry = NotifyRetry {
    attempts: 3,
    base: Duration::from_millis(250),
    max: Duration::from_millis(500),
    timeout: Duration::from_millis(1500),
};

/// The webhooks of the config, for one command.
pub struct CliNotifier {
    notifier: rotor_daemon::Notifier,
    /// `user@host`, named in messages as the daemon names the API token.
    actor: String,
    any: bool,
}

impl CliNotifier {
    pub fn new(ctx: &Context) -> Self {
        let actor = ctx.engine.actor().to_owned();
        Self {
            notifier: rotor_daemon::Notifier::new(
                ctx.config().notify.clone(),
                Some(ctx.store().clone()),
                &actor,
            )
            .with_retry(CLI_RETRY),
            actor,
            any: !ctx.config().notify.is_empty(),
        }
    }

    /// The notifier, for the emergency runbook (which sends its own `emergency` first).
    pub fn inner(&self) -> &rotor_daemon::Notifier {
        &self.notifier
    }

    /// Reports what `rotor rotate` or `resume` did to `name` (`how`: "rotated", "resumed"):
    /// `rotated` for a finished rotation, `failed` for a failed step; nothing for a rotation
    /// waiting to activate or a refusal (busy, not due, unknown secret), as the daemon does.
    /// (`retire --due` reports its failures only: the daemon announces no retire.)
    pub fn outcome(&self, name: &SecretName, result: &Result<Outcome, EngineError>, how: &str) {
        let n = match result {
            Ok(Outcome::Completed { rotation, .. } | Outcome::InGrace { rotation, .. }) => {
                Notification::new(
                    NotifyEvent::Rotated,
                    Some(name),
                    Some(rotation),
                    format!("secret {name} was {how} by `rotor` ({})", self.actor),
                    jiff::Timestamp::now(),
                )
            }
            // Only a rotation that ended failed (an owed rollback included), never contention.
            Err(e) if e.rotation_failed() => Notification::new(
                NotifyEvent::Failed,
                Some(name),
                None,
                format!(
                    "secret {name}: rotation by `rotor` ({}) failed: {e}",
                    self.actor
                ),
                jiff::Timestamp::now(),
            ),
            _ => return,
        };
        self.notifier.spawn(n);
    }

    /// Reports `rotor put NAME`: a new current stored by an operator.
    pub fn put(&self, name: &SecretName, version: &rotor_core::VersionId) {
        self.notifier.spawn(Notification::new(
            NotifyEvent::Rotated,
            Some(name),
            None,
            format!(
                "secret {name}: version {} stored as current by `rotor put` ({})",
                version.short(),
                self.actor
            ),
            jiff::Timestamp::now(),
        ));
    }

    /// Waits at most [`NOTIFY_WAIT`] for the notifications sent so far.
    pub async fn finish(&self) {
        if !self.any {
            return;
        }
        if !self.notifier.drain(NOTIFY_WAIT).await {
            eprintln!(
                "warning: some [[notify]] webhooks did not answer within {}s; the command's result is unchanged",
                NOTIFY_WAIT.as_secs()
            );
        }
    }
}
