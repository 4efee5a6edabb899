//! `[[notify]]`: webhooks and the events they are sent.

use serde::Serialize;

/// `[[notify]]`: a webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotifySpec {
    /// The webhook URL (Slack's contain a token: keep it in an env var, `${SLACK_WEBHOOK}`),
    /// so a [`SecretUrl`](crate::SecretUrl): `Debug` shows its host only.
    #[serde(skip)]
    pub url: crate::SecretUrl,
    pub format: NotifyFormat,
    pub events: Vec<NotifyEvent>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyFormat {
    /// `{"text": "..."}`, as Slack's incoming webhooks take.
    Slack,
    /// A JSON object with `event`, `secret`, `rotation`, `message`, `time`.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyEvent {
    Rotated,
    Failed,
    Overdue,
    Emergency,
    /// The daemon's probe found that a secret's next rotation would not get through.
    Blocked,
}

impl NotifyEvent {
    pub const ALL: [NotifyEvent; 5] = [
        NotifyEvent::Rotated,
        NotifyEvent::Failed,
        NotifyEvent::Overdue,
        NotifyEvent::Emergency,
        NotifyEvent::Blocked,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::Rotated => "rotated",
            NotifyEvent::Failed => "failed",
            NotifyEvent::Overdue => "overdue",
            NotifyEvent::Emergency => "emergency",
            NotifyEvent::Blocked => "blocked",
        }
    }
}
