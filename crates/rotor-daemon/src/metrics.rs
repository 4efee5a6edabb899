//! The Prometheus text exposition behind `GET /metrics`.
//!
//! Names are fixed (dashboards and the generated alert rules depend on them), each labelled
//! `secret`, `tier`, `kind` (secrets without a tier get `tier="none"`):
//! - `secret_last_rotated_timestamp` (the seed's name, seconds since the epoch; a declared
//!   `last_rotated` counts; absent while the age is unknown);
//! - `secret_next_due_timestamp` (the next scheduled rotation, placed in its window),
//!   `secret_rotation_deadline_timestamp` (overdue after it);
//! - gauges 0/1: `secret_overdue`, `secret_never_rotated` (age unknown, so overdue),
//!   `secret_rotation_failed`, `secret_rotation_in_progress`, `secret_in_grace`,
//!   `secret_retire_due`; and `secret_retire_after_timestamp` while a previous value waits;
//! - `secret_rotation_failures_total`, `secret_rotation_duration_seconds` (histogram): what
//!   this daemon saw since it started;
//! - `rotor_jwks_skipped_keys_total`: stored keys left out of a JWKS answer because they did
//!   not parse (the answer still carries every good key);
//! - `rotor_up 1`;
//! - `rotor_audit_head_seq{hash}`: the head of the audit chain (appended by the API).
//!
//! Invariants: only names, kinds, tiers, times and counts, never a value; every state gauge is
//! read from the row's `Standing` (the store's truth), so it survives a restart and says what
//! `rotor status` says; only the counter and the histogram live in this process.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use jiff::Timestamp;
use rotor_engine::StatusRow;

/// Histogram bucket bounds of `secret_rotation_duration_seconds`.
pub const DURATION_BUCKETS: [f64; 10] = [0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0];

#[derive(Debug, Default, Clone)]
struct PerSecret {
    failures: u64,
    jwks_skipped: u64,
    buckets: [u64; DURATION_BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Counters the store does not hold: failures and durations seen by this process.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<HashMap<String, PerSecret>>,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, PerSecret>) -> R) -> R {
        let mut map = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut map)
    }

    pub fn count_failure(&self, secret: &str) {
        self.with(|m| m.entry(secret.to_owned()).or_default().failures += 1);
    }

    /// A stored key of `secret` that does not parse was left out of a JWKS answer.
    pub fn count_jwks_skipped(&self, secret: &str) {
        self.with(|m| m.entry(secret.to_owned()).or_default().jwks_skipped += 1);
    }

    pub fn observe_duration(&self, secret: &str, secs: f64) {
        self.with(|m| {
            let e = m.entry(secret.to_owned()).or_default();
            for (i, bound) in DURATION_BUCKETS.iter().enumerate() {
                if secs <= *bound {
                    e.buckets[i] += 1;
                }
            }
            e.count += 1;
            e.sum += secs;
        });
    }

    /// Failures counted for `secret` since start.
    pub fn failures(&self, secret: &str) -> u64 {
        self.with(|m| m.get(secret).map_or(0, |e| e.failures))
    }

    /// The exposition for `rows` (from `engine.status()`).
    pub fn render(&self, rows: &[StatusRow]) -> String {
        let counters = self.with(|m| m.clone());
        let empty = PerSecret::default();
        let mut out = String::with_capacity(256 + rows.len() * 1400);
        let labels: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "secret=\"{}\",tier=\"{}\",kind=\"{}\"",
                    escape(r.name.as_str()),
                    r.tier.map_or("none", |t| t.as_str()),
                    r.kind.as_str()
                )
            })
            .collect();
        let mut family =
            |name: &str, kind: &str, help: &str, f: &dyn Fn(usize) -> Option<String>| {
                let _ = writeln!(out, "# HELP {name} {help}");
                let _ = writeln!(out, "# TYPE {name} {kind}");
                for i in 0..rows.len() {
                    if let Some(sample) = f(i) {
                        out.push_str(&sample);
                    }
                }
            };
        let times: [Family<Option<Timestamp>>; 4] = [
            (
                "secret_last_rotated_timestamp",
                "When the current version was created (or the declared last_rotated), in seconds since the epoch.",
                &|r| r.standing.last_rotated,
            ),
            (
                "secret_next_due_timestamp",
                "When the next scheduled rotation starts (due time plus jitter, inside the window), in seconds since the epoch.",
                &|r| Some(r.standing.next_due),
            ),
            (
                "secret_rotation_deadline_timestamp",
                "When the secret becomes overdue (last rotation + rotate_every), in seconds since the epoch.",
                &|r| r.standing.deadline,
            ),
            (
                "secret_retire_after_timestamp",
                "When the previous value is to be retired (end of grace), in seconds since the epoch.",
                &|r| r.standing.retire_after,
            ),
        ];
        for (name, help, get) in times {
            family(name, "gauge", help, &|i| {
                get(&rows[i]).map(|t| format!("{name}{{{}}} {}\n", labels[i], t.as_second()))
            });
        }
        let flags: [Family<bool>; 6] = [
            (
                "secret_overdue",
                "1 when the secret is past its rotation deadline, or its age is unknown.",
                &|r| r.standing.overdue,
            ),
            (
                "secret_never_rotated",
                "1 when rotor has no record of the secret being rotated (no current value, no declared last_rotated).",
                &|r| r.standing.never_rotated,
            ),
            (
                "secret_rotation_failed",
                "1 while the newest rotation failed (until a later one succeeds or a person acts).",
                &|r| r.standing.failed,
            ),
            (
                "secret_rotation_in_progress",
                "1 while a rotation of the secret is running.",
                &|r| r.standing.in_progress,
            ),
            (
                "secret_in_grace",
                "1 while the previous value stays valid until its retire time.",
                &|r| r.standing.in_grace,
            ),
            (
                "secret_retire_due",
                "1 when grace ended and the previous value was not retired yet (run `rotor retire --due`).",
                &|r| r.standing.retire_due,
            ),
        ];
        for (name, help, get) in flags {
            family(name, "gauge", help, &|i| {
                Some(format!(
                    "{name}{{{}}} {}\n",
                    labels[i],
                    u8::from(get(&rows[i]))
                ))
            });
        }
        family(
            "secret_rotation_failures_total",
            "counter",
            "Failed rotation attempts since the daemon started.",
            &|i| {
                let c = counters.get(rows[i].name.as_str()).unwrap_or(&empty);
                Some(format!(
                    "secret_rotation_failures_total{{{}}} {}\n",
                    labels[i], c.failures
                ))
            },
        );
        family(
            "rotor_jwks_skipped_keys_total",
            "counter",
            "Stored keys left out of JWKS answers because they do not parse, since the daemon started.",
            &|i| {
                let c = counters.get(rows[i].name.as_str()).unwrap_or(&empty);
                Some(format!(
                    "rotor_jwks_skipped_keys_total{{{}}} {}\n",
                    labels[i], c.jwks_skipped
                ))
            },
        );
        family(
            "secret_rotation_duration_seconds",
            "histogram",
            "How long scheduled and API rotations took, create to finish.",
            &|i| {
                let c = counters.get(rows[i].name.as_str()).unwrap_or(&empty);
                let mut s = String::new();
                for (b, bound) in DURATION_BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        s,
                        "secret_rotation_duration_seconds_bucket{{{},le=\"{bound}\"}} {}",
                        labels[i], c.buckets[b]
                    );
                }
                let _ = writeln!(
                    s,
                    "secret_rotation_duration_seconds_bucket{{{},le=\"+Inf\"}} {}",
                    labels[i], c.count
                );
                let _ = writeln!(
                    s,
                    "secret_rotation_duration_seconds_sum{{{}}} {}",
                    labels[i], c.sum
                );
                let _ = writeln!(
                    s,
                    "secret_rotation_duration_seconds_count{{{}}} {}",
                    labels[i], c.count
                );
                Some(s)
            },
        );
        family(
            "rotor_up",
            "gauge",
            "1 while the rotor daemon runs.",
            &|_| None,
        );
        out.push_str("rotor_up 1\n");
        out
    }
}

/// `rotor_audit_head_seq{hash="…"} SEQ`: the head of the audit chain.
pub fn audit_head(seq: u64, hash: &str) -> String {
    format!(
        "# HELP rotor_audit_head_seq The sequence number of the newest audit record; its hash is the label (for rotor audit verify --expect-head SEQ:HASH).\n# TYPE rotor_audit_head_seq gauge\nrotor_audit_head_seq{{hash=\"{}\"}} {seq}\n",
        escape(hash)
    )
}

/// A gauge family read from each row: name, help, and the reading.
type Family<'a, T> = (&'a str, &'a str, &'a dyn Fn(&StatusRow) -> T);

/// Label values: secret names are `[A-Za-z0-9._-]`, but escape anyway.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
