//! What the console's templates read: plain, serializable views built from `engine.status()`
//! rows, version metadata, rotation records and the audit log.
//!
//! Nothing here decides a state: the state word, label, reason and hint are the `Standing`
//! that `rotor_core::schedule::evaluate` computed. This module only orders rows for the eye
//! (most severe first) and formats times (relative, with the exact UTC time beside it).
//! No view holds a value: versions carry ids, stages and non-secret metadata only.

use jiff::Timestamp;
use rotor_core::schedule::{SecretState, short, window};
use rotor_core::{AuditRecord, Rotation, SecretSpec, VersionMeta};
use rotor_engine::StatusRow;
use serde::Serialize;

/// A time as the page shows it: relative text, the exact UTC time (for `<time datetime>` and
/// its `title`).
#[derive(Debug, Clone, Serialize)]
pub struct When {
    pub relative: String,
    pub exact: String,
}

impl When {
    pub fn new(t: Timestamp, now: Timestamp) -> Self {
        Self {
            relative: relative(t, now),
            exact: short(t),
        }
    }
}

/// `in 3d 4h`, `5m ago`, `now`: the two largest units, enough to read at a glance.
pub fn relative(t: Timestamp, now: Timestamp) -> String {
    let secs = t.as_second() - now.as_second();
    let span = span_text(secs.unsigned_abs());
    match secs {
        -1..=1 => "now".to_owned(),
        s if s > 0 => format!("in {span}"),
        _ => format!("{span} ago"),
    }
}

/// A length of time in its two largest units (`3d 4h`, `12m 5s`).
pub fn span_text(secs: u64) -> String {
    const UNITS: [(u64, &str); 4] = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let mut parts = Vec::new();
    let mut rest = secs;
    for (size, unit) in UNITS {
        if rest >= size || (parts.is_empty() && size == 1) {
            parts.push(format!("{}{unit}", rest / size));
            rest %= size;
        }
        if parts.len() == 2 {
            break;
        }
    }
    parts.join(" ")
}

/// Where a row sits on the overview: failed first, then blocked, ok last. `never rotated` is a flag of the
/// standing (an overdue secret with no known age), listed after the other overdue ones.
pub fn severity(row: &StatusRow) -> u8 {
    let s = &row.standing;
    match s.state {
        SecretState::Failed => 0,
        SecretState::Blocked => 1,
        SecretState::InProgress => 2,
        SecretState::RetireDue => 3,
        SecretState::Overdue if s.never_rotated => 5,
        SecretState::Overdue => 4,
        SecretState::Due => 6,
        SecretState::InGrace => 7,
        SecretState::Ok => 8,
    }
}

/// One line of the overview.
#[derive(Debug, Clone, Serialize)]
pub struct RowView {
    pub name: String,
    pub kind: String,
    pub tier: String,
    pub owner: String,
    pub automation: String,
    pub state: &'static str,
    pub label: String,
    pub attention: bool,
    pub never_rotated: bool,
    pub reason: Option<String>,
    pub hint: Option<String>,
    pub last_rotated: Option<When>,
    pub last_rotated_declared: bool,
    pub next_due: When,
    pub retire_after: Option<When>,
}

impl RowView {
    pub fn new(row: &StatusRow, spec: Option<&SecretSpec>, now: Timestamp) -> Self {
        let s = &row.standing;
        Self {
            name: row.name.to_string(),
            kind: row.kind.to_string(),
            tier: row.tier.map_or_else(|| "-".to_owned(), |t| t.to_string()),
            owner: spec
                .and_then(|s| s.owner.clone())
                .unwrap_or_else(|| "-".to_owned()),
            automation: row.automation.as_str().to_owned(),
            state: s.state.as_str(),
            label: s.label.clone(),
            attention: s.state.needs_attention(),
            never_rotated: s.never_rotated,
            reason: s.reason.clone(),
            hint: s.hint.clone(),
            last_rotated: s.last_rotated.map(|t| When::new(t, now)),
            last_rotated_declared: s.last_rotated_declared,
            next_due: When::new(s.next_due, now),
            retire_after: s.retire_after.map(|t| When::new(t, now)),
        }
    }
}

/// How many secrets are in each state (every state listed, zero included), plus the
/// never-rotated flag.
#[derive(Debug, Clone, Serialize)]
pub struct Count {
    pub state: &'static str,
    pub n: usize,
}

pub fn counts(rows: &[StatusRow]) -> Vec<Count> {
    let mut out: Vec<Count> = SecretState::ALL
        .iter()
        .map(|st| Count {
            state: st.as_str(),
            n: rows.iter().filter(|r| r.standing.state == *st).count(),
        })
        .collect();
    out.push(Count {
        state: "never-rotated",
        n: rows.iter().filter(|r| r.standing.never_rotated).count(),
    });
    out
}

/// The overview's rows, most severe first, then by next due time and name.
pub fn overview(rows: &[StatusRow], specs: &[SecretSpec], now: Timestamp) -> Vec<RowView> {
    let mut sorted: Vec<&StatusRow> = rows.iter().collect();
    sorted.sort_by(|a, b| {
        (severity(a), a.standing.next_due, a.name.as_str()).cmp(&(
            severity(b),
            b.standing.next_due,
            b.name.as_str(),
        ))
    });
    sorted
        .into_iter()
        .map(|r| RowView::new(r, specs.iter().find(|s| s.name == r.name), now))
        .collect()
}

/// A stored version: id, when and by whom, its stages and its non-secret metadata.
#[derive(Debug, Clone, Serialize)]
pub struct VersionView {
    pub id: String,
    pub created: When,
    pub created_by: String,
    pub stages: Vec<String>,
    pub metadata: String,
}

pub fn versions(list: &[VersionMeta], now: Timestamp) -> Vec<VersionView> {
    let mut out: Vec<VersionView> = list
        .iter()
        .map(|v| VersionView {
            id: v.id.to_string(),
            created: When::new(v.created_at, now),
            created_by: v.created_by.clone(),
            stages: v.stages.iter().map(ToString::to_string).collect(),
            metadata: match &v.metadata {
                serde_json::Value::Object(m) if m.is_empty() => String::new(),
                serde_json::Value::Null => String::new(),
                m => m.to_string(),
            },
        })
        .collect();
    out.reverse();
    out
}

/// One audited step of a rotation, with how long it took since the step before it.
#[derive(Debug, Clone, Serialize)]
pub struct StepView {
    pub action: String,
    pub at: When,
    pub took: String,
    pub outcome: String,
}

/// One rotation of the secret's history.
#[derive(Debug, Clone, Serialize)]
pub struct RotationView {
    pub id: String,
    pub trigger: String,
    pub actor: String,
    pub reason: Option<String>,
    pub emergency: bool,
    pub status: String,
    pub step: String,
    pub error: Option<String>,
    pub started: When,
    pub duration: String,
    pub retire_after: Option<When>,
    pub steps: Vec<StepView>,
}

pub fn rotations(list: &[Rotation], audit: &[AuditRecord], now: Timestamp) -> Vec<RotationView> {
    list.iter()
        .map(|r| {
            let mut prev = r.started_at;
            let steps = audit
                .iter()
                .filter(|a| a.event.rotation.as_ref() == Some(&r.id))
                .map(|a| {
                    let took = (a.time.as_millisecond() - prev.as_millisecond()).max(0);
                    prev = a.time;
                    StepView {
                        action: a
                            .event
                            .action
                            .strip_prefix("rotation.")
                            .unwrap_or(&a.event.action)
                            .to_owned(),
                        at: When::new(a.time, now),
                        took: took_text(took),
                        outcome: a.event.outcome.clone(),
                    }
                })
                .collect();
            RotationView {
                id: r.id.to_string(),
                trigger: r.trigger.as_str().to_owned(),
                actor: r.actor.clone(),
                reason: r.reason.clone(),
                emergency: r.emergency,
                status: r.status.to_string(),
                step: format!("{}{}", r.step, if r.step_done { " (done)" } else { "" }),
                error: r.error.clone(),
                started: When::new(r.started_at, now),
                duration: took_text(
                    (r.updated_at.as_millisecond() - r.started_at.as_millisecond()).max(0),
                ),
                retire_after: r.retire_after.map(|t| When::new(t, now)),
                steps,
            }
        })
        .collect()
}

/// How long a step took, from milliseconds: `12ms`, `3.4s`, then `2m 5s`.
fn took_text(ms: i64) -> String {
    match ms {
        ..1 => "<1ms".to_owned(),
        1..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{:.1}s", ms as f64 / 1_000.0),
        _ => span_text((ms / 1_000).unsigned_abs()),
    }
}

/// The maintenance window the next scheduled rotation falls in, as text.
pub fn window_of(spec: &SecretSpec, row: &StatusRow, now: Timestamp) -> Option<String> {
    let w = spec.window.as_ref()?;
    let (start, end) = window::window_at_or_after(w, row.standing.next_due)?;
    Some(format!(
        "{} – {} ({})",
        short(start),
        short(end),
        relative(start, now)
    ))
}

/// One audit record as the audit page lists it.
#[derive(Debug, Clone, Serialize)]
pub struct AuditView {
    pub seq: u64,
    pub at: When,
    pub actor: String,
    pub action: String,
    pub secret: Option<String>,
    pub versions: String,
    pub reason: Option<String>,
    pub outcome: String,
    pub ok: bool,
}

pub fn audit(records: &[AuditRecord], now: Timestamp, limit: usize) -> Vec<AuditView> {
    records
        .iter()
        .rev()
        .take(limit)
        .map(|r| AuditView {
            seq: r.seq,
            at: When::new(r.time, now),
            actor: r.event.actor.clone(),
            action: r.event.action.clone(),
            secret: r.event.secret.as_ref().map(ToString::to_string),
            versions: r
                .event
                .versions
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            reason: r.event.reason.clone(),
            outcome: r.event.outcome.clone(),
            ok: r.event.outcome == "ok",
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_at_a_glance() {
        let now = Timestamp::from_second(1_800_000_000).expect("ts");
        let at = |d: i64| Timestamp::from_second(1_800_000_000 + d).expect("ts");
        assert_eq!(relative(at(0), now), "now");
        assert_eq!(relative(at(90), now), "in 1m 30s");
        assert_eq!(relative(at(-3 * 86_400 - 4 * 3_600 - 60), now), "3d 4h ago");
        assert_eq!(relative(at(7_200), now), "in 2h");
        assert_eq!(span_text(5), "5s");
        assert_eq!(took_text(0), "<1ms");
        assert_eq!(took_text(42), "42ms");
        assert_eq!(took_text(3_400), "3.4s");
        assert_eq!(took_text(125_000), "2m 5s");
    }
}
