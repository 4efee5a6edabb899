//! `[[notify]]` webhooks: Slack-compatible (`{"text": ...}`) or generic JSON
//! (`{"event","secret","rotation","message","time"}`), for rotated, failed, overdue and
//! emergency events.
//!
//! Invariants:
//! - a notification is built from names, ids and error texts only: never a value;
//! - a webhook URL is never logged or audited (Slack's carry a token): only its host;
//! - delivery is retried with bounded exponential backoff (`rotor_core::Backoff`); a final
//!   failure is logged and audited (`notify.failed`) and never fails the rotation it
//!   reports;
//! - background sends belong to the notifier's `TaskTracker`, which the daemon drains at
//!   shutdown.

use std::sync::Arc;

use jiff::Timestamp;
use rotor_core::config::service::{NotifyEvent, NotifyFormat, NotifySpec};
use rotor_core::store::Change;
use rotor_core::{AuditEvent, RotationId, SecretName, Store};
use serde::Serialize;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::task::TaskTracker;

/// One event to report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notification {
    pub event: NotifyEvent,
    pub secret: Option<SecretName>,
    pub rotation: Option<RotationId>,
    pub message: String,
    pub time: Timestamp,
}

impl Notification {
    pub fn new(
        event: NotifyEvent,
        secret: Option<&SecretName>,
        rotation: Option<&RotationId>,
        message: impl Into<String>,
        time: Timestamp,
    ) -> Self {
        Self {
            event,
            secret: secret.cloned(),
            rotation: rotation.cloned(),
            message: message.into(),
            time,
        }
    }

    /// The request body for `format`.
    pub fn body(&self, format: NotifyFormat) -> serde_json::Value {
        match format {
            NotifyFormat::Slack => {
                let icon = match self.event {
                    NotifyEvent::Emergency => "🚨 Emergency secret rotation: ",
                    NotifyEvent::Failed => "❌ Secret rotation failed: ",
                    NotifyEvent::Overdue => "⏰ Secret rotation overdue: ",
                    NotifyEvent::Rotated => "🔄 Secret rotated: ",
                    NotifyEvent::Blocked => "🚧 Secret rotation blocked: ",
                };
                serde_json::json!({ "text": format!("{icon}{}", self.message) })
            }
            NotifyFormat::Json => serde_json::json!({
                "event": self.event.as_str(),
                "secret": self.secret,
                "rotation": self.rotation,
                "message": self.message,
                "time": self.time,
            }),
        }
    }
}

/// How hard delivery tries.
#[derive(Debug, Clone, Copy)]
pub struct NotifyRetry {
    /// Tries in all.
    pub attempts: u32,
    /// First delay; doubles.
    pub base: std::time::Duration,
    pub max: std::time::Duration,
    /// Per request.
    pub timeout: std::time::Duration,
}

impl NotifyRetry {
    /// The delivery retries as rotor's one backoff: `attempts` tries (at least one), `base`
    /// doubling up to `max` between them.
    fn backoff(&self) -> rotor_core::Backoff {
        rotor_core::Backoff::new(self.attempts.max(1), self.base, self.max)
    }
}

impl Default for NotifyRetry {
    fn default() -> Self {
        Self {
            attempts: 4,
            base: std::time::Duration::from_millis(500),
            max: std::time::Duration::from_secs(8),
            timeout: std::time::Duration::from_secs(10),
        }
    }
}

#[derive(Debug)]
struct Inner {
    specs: Vec<NotifySpec>,
    http: reqwest::Client,
    store: Option<Arc<dyn Store>>,
    actor: String,
    retry: NotifyRetry,
    sink: Option<UnboundedSender<Notification>>,
    tasks: TaskTracker,
}

/// Sends notifications to the configured webhooks. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

impl Notifier {
    /// A notifier for `specs`; failures are audited in `store` (as `actor`) when given.
    pub fn new(specs: Vec<NotifySpec>, store: Option<Arc<dyn Store>>, actor: &str) -> Self {
        Self::build(specs, store, actor, NotifyRetry::default(), None)
    }

    /// One that sends nowhere (and records nothing).
    pub fn disabled() -> Self {
        Self::new(Vec::new(), None, "rotor")
    }

    fn build(
        specs: Vec<NotifySpec>,
        store: Option<Arc<dyn Store>>,
        actor: &str,
        retry: NotifyRetry,
        sink: Option<UnboundedSender<Notification>>,
    ) -> Self {
        let http = reqwest::Client::builder()
            .timeout(retry.timeout)
            .user_agent(concat!("rotor/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self {
            inner: Arc::new(Inner {
                specs,
                http,
                store,
                actor: actor.to_owned(),
                retry,
                sink,
                tasks: TaskTracker::new(),
            }),
        }
    }

    /// The same webhooks with another retry policy.
    pub fn with_retry(&self, retry: NotifyRetry) -> Self {
        Self::build(
            self.inner.specs.clone(),
            self.inner.store.clone(),
            &self.inner.actor,
            retry,
            self.inner.sink.clone(),
        )
    }

    /// The same webhooks, also handing every notification to `sink` (tests, the status page).
    pub fn with_sink(&self, sink: UnboundedSender<Notification>) -> Self {
        Self::build(
            self.inner.specs.clone(),
            self.inner.store.clone(),
            &self.inner.actor,
            self.inner.retry,
            Some(sink),
        )
    }

    /// Sends `n` in the background (tracked; drained by [`Notifier::drain`]).
    pub fn spawn(&self, n: Notification) {
        if let Some(sink) = &self.inner.sink {
            let _ = sink.send(n.clone());
        }
        if self.inner.specs.iter().any(|s| s.events.contains(&n.event)) {
            let me = self.clone();
            self.inner.tasks.spawn(async move { me.deliver(&n).await });
        }
    }

    /// Sends `n` now and waits; returns how many webhooks took it.
    pub async fn send(&self, n: &Notification) -> usize {
        if let Some(sink) = &self.inner.sink {
            let _ = sink.send(n.clone());
        }
        self.deliver(n).await
    }

    /// Like [`Notifier::send`], but gives up waiting after `max` (the send goes on in the
    /// background): an emergency notifies first, yet a dead webhook must not hold it up.
    pub async fn send_first(&self, n: &Notification, max: std::time::Duration) -> usize {
        if let Some(sink) = &self.inner.sink {
            let _ = sink.send(n.clone());
        }
        let me = self.clone();
        let n = n.clone();
        let task = self.inner.tasks.spawn(async move { me.deliver(&n).await });
        match tokio::time::timeout(max, task).await {
            Ok(Ok(sent)) => sent,
            _ => 0,
        }
    }

    /// Waits (at most `max`) for background sends to finish; whether they all did.
    pub async fn drain(&self, max: std::time::Duration) -> bool {
        self.inner.tasks.close();
        let done = tokio::time::timeout(max, self.inner.tasks.wait())
            .await
            .is_ok();
        self.inner.tasks.reopen();
        done
    }

    async fn deliver(&self, n: &Notification) -> usize {
        let mut ok = 0;
        for spec in self
            .inner
            .specs
            .iter()
            .filter(|s| s.events.contains(&n.event))
        {
            match self.post(spec, n).await {
                Ok(()) => ok += 1,
                Err(error) => {
                    let host = host_of(spec.url.expose());
                    tracing::error!(event = n.event.as_str(), webhook = %host, %error, "notification failed");
                    if let Some(store) = &self.inner.store {
                        let mut ev = AuditEvent::new(self.inner.actor.clone(), "notify.failed")
                            .reason(Some(&format!(
                                "{} notification to {host}",
                                n.event.as_str()
                            )))
                            .failed(&error);
                        if let Some(s) = &n.secret {
                            ev = ev.secret(s);
                        }
                        if let Some(r) = &n.rotation {
                            ev = ev.rotation(r);
                        }
                        if let Err(e) = store.apply(Change::new().audit(ev)).await {
                            tracing::error!(error = %e, "cannot audit a notification failure");
                        }
                    }
                }
            }
        }
        ok
    }

    async fn post(&self, spec: &NotifySpec, n: &Notification) -> Result<(), String> {
        let body = n.body(spec.format);
        let backoff = self.inner.retry.backoff();
        let mut last = String::new();
        for attempt in 1..=backoff.attempts {
            match self
                .inner
                .http
                .post(spec.url.expose())
                .json(&body)
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => last = format!("the webhook answered {}", r.status()),
                // Strip the URL: it may hold a token.
                Err(e) => last = e.without_url().to_string(),
            }
            if backoff.may_retry(attempt) {
                tracing::warn!(webhook = %host_of(spec.url.expose()), attempt, error = %last, "notification failed; retrying");
                tokio::time::sleep(backoff.delay(attempt)).await;
            }
        }
        Err(format!("{last} (after {} attempts)", backoff.attempts))
    }
}

/// `scheme://host[:port]` of a URL, without path, query or credentials.
pub(crate) fn host_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or(authority);
    format!("{scheme}://{host}")
}

/// A URL without credentials or query string (health URLs in reports).
pub(crate) fn host_and_path(url: &str) -> String {
    let no_query = url.split(['?', '#']).next().unwrap_or(url);
    let (scheme, rest) = no_query.split_once("://").unwrap_or(("", no_query));
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let host = authority.rsplit('@').next().unwrap_or(authority);
    format!("{scheme}://{host}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_only() {
        assert_eq!(
            host_of("https://hooks.slack.com/services/T000/B000/XXXX"),
            "https://hooks.slack.com"
        );
        assert_eq!(host_of("http://u:p@127.0.0.1:9/x?y"), "http://127.0.0.1:9");
    }

    #[test]
    fn bodies() {
        let name = SecretName::new("db").expect("name");
        let n = Notification::new(
            NotifyEvent::Emergency,
            Some(&name),
            None,
            "db: suspected leak",
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(
            n.body(NotifyFormat::Slack)["text"],
            "🚨 Emergency secret rotation: db: suspected leak"
        );
        let j = n.body(NotifyFormat::Json);
        assert_eq!(j["event"], "emergency");
        assert_eq!(j["secret"], "db");
    }
}
