//! Declared ages: `last_rotated = "2026-06-01"` in the config is a person's word about a value
//! rotor holds no copy of (a vendor key nobody stored yet). The schedule takes the secret's age
//! from it (`rotor_core::schedule::evaluate`); this records that word in the audit log, once
//! per declared date, so the log says where the age came from.

use rotor_core::AuditEvent;
use rotor_core::schedule::short;
use rotor_core::store::Change;

use crate::{Engine, EngineError};

/// The audit action of a declaration.
pub const DECLARED: &str = "secret.declared";

impl Engine {
    /// Appends one `secret.declared` record for each secret whose config declares
    /// `last_rotated` while the store holds no current value of it, unless the log already
    /// has one for that secret and date. Returns how many were written. Cheap when nothing is
    /// declared: the audit log is read only when a declaration may be new.
    pub async fn record_declared_ages(&self) -> Result<usize, EngineError> {
        let declared: Vec<_> = self
            .config()
            .secrets
            .iter()
            .filter_map(|s| Some((s, s.last_rotated?)))
            .collect();
        if declared.is_empty() {
            return Ok(0);
        }
        let stored: Vec<String> = self
            .store()
            .summaries()
            .await?
            .into_iter()
            .filter(|s| s.current.is_some())
            .filter_map(|s| s.secret.map(|n| n.to_string()))
            .collect();
        let open: Vec<_> = declared
            .into_iter()
            .filter(|(s, _)| !stored.iter().any(|n| n == s.name.as_str()))
            .collect();
        if open.is_empty() {
            return Ok(0);
        }
        let log = self.store().audit_all().await?;
        let mut written = 0;
        for (spec, at) in open {
            let marker = format!("last_rotated = {}", date_or_time(at));
            let known = log.iter().any(|r| {
                r.event.action == DECLARED
                    && r.event.secret.as_ref() == Some(&spec.name)
                    && r.event
                        .reason
                        .as_deref()
                        .is_some_and(|t| t.starts_with(&marker))
            });
            if known {
                continue;
            }
            let reason = format!(
                "{marker}, declared by a person in {}: rotor holds no value of it, so its age counts from then until it is rotated or put",
                self.config().source.display()
            );
            let event = AuditEvent::new(self.actor(), DECLARED)
                .secret(&spec.name)
                .reason(Some(&reason));
            self.store().apply(Change::new().audit(event)).await?;
            written += 1;
        }
        Ok(written)
    }
}

/// `2026-06-01` for midnight UTC (how a date is declared), else the full time.
fn date_or_time(t: jiff::Timestamp) -> String {
    let utc = t.to_zoned(jiff::tz::TimeZone::UTC);
    if utc.time() == jiff::civil::Time::midnight() {
        utc.date().to_string()
    } else {
        short(t)
    }
}
