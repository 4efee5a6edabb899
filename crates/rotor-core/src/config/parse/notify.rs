//! `[[notify]]`: webhooks and the events each is sent.

use toml_edit::Item;

use super::Walker;
use crate::config::notify::{NotifyEvent, NotifyFormat, NotifySpec};

pub(super) const NOTIFY_KEYS: &[&str] = &["url", "format", "events"];

impl Walker<'_> {
    pub(super) fn notify(&mut self, root: &toml_edit::Table) -> Vec<NotifySpec> {
        let mut out = Vec::new();
        for t in self.tables(root, "notify") {
            self.unknown_keys(t, NOTIFY_KEYS, "[[notify]]");
            let Some((url, span)) = self.string(t, "url") else {
                if t.get("url").is_none() {
                    self.error(
                        0..0,
                        "a [[notify]] entry needs `url`".into(),
                        Some("add url = \"${SLACK_WEBHOOK}\"".into()),
                    );
                }
                continue;
            };
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                self.error(
                    span,
                    "`url` must be an http:// or https:// URL".into(),
                    None,
                );
                continue;
            }
            let format = match self.string(t, "format") {
                None => NotifyFormat::Slack,
                Some((f, span)) => match f.as_str() {
                    "slack" => NotifyFormat::Slack,
                    "json" => NotifyFormat::Json,
                    other => {
                        self.error(
                            span,
                            format!("unknown notify format {other:?}"),
                            Some("use \"slack\" or \"json\"".into()),
                        );
                        continue;
                    }
                },
            };
            let events = match self.strings(t, "events") {
                None => NotifyEvent::ALL.to_vec(),
                Some(list) => {
                    let mut evs = Vec::new();
                    for e in list {
                        match NotifyEvent::ALL.into_iter().find(|x| x.as_str() == e) {
                            Some(ev) => evs.push(ev),
                            None => self.error(
                                t.get("events").and_then(Item::span).unwrap_or(0..0),
                                format!("unknown notify event {e:?}"),
                                Some("use rotated, failed, overdue, emergency, blocked".into()),
                            ),
                        }
                    }
                    evs
                }
            };
            out.push(NotifySpec {
                url: crate::SecretUrl::new(url),
                format,
                events,
            });
        }
        out
    }
}
