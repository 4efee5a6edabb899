//! The Prometheus text exposition behind `GET /metrics`.
//!
//! Names are fixed (dashboards and the generated alert rules depend on them). Per secret,
//! labelled `secret`, `tier`, `kind` (secrets without a tier get `tier="none"`):
//! - `secret_last_rotated_timestamp` (the seed's name, seconds since the epoch; a declared
//!   `last_rotated` counts; absent while the age is unknown);
//! - `secret_next_due_timestamp` (the next scheduled rotation, placed in its window),
//!   `secret_rotation_deadline_timestamp` (overdue after it), and
//!   `secret_retire_after_timestamp` while a previous value waits;
//! - state flags, present with value 1 only while they hold (absent means 0):
//!   `secret_overdue`, `secret_never_rotated` (age unknown, so overdue),
//!   `secret_rotation_failed`, `secret_rotation_in_progress`, `secret_in_grace`,
//!   `secret_retire_due`, `secret_rotation_blocked` (the last probe found the rotation
//!   could not run);
//! - `secret_rotation_failures_total`: rotations seen by this process that ended `failed`
//!   (`EngineError::rotation_failed`), never contention (busy, taken over, nothing to
//!   resume); a series appears at its first failure, as labelled counters do;
//! - `rotor_jwks_skipped_keys_total`: stored keys left out of a JWKS answer because they did
//!   not parse (the answer still carries every good key); from the first skip.
//!
//! Per kind: `secret_rotation_duration_seconds{kind}` (histogram, this process). Fleet-wide:
//! `rotor_secrets{state}` (how many secrets are in each state, every state listed),
//! `rotor_up 1`, and `rotor_audit_head_seq{hash}`: the head of the audit chain (appended by
//! the API), to anchor it outside the store.
//!
//! Why sparse flags and per-kind histograms: at 10,000 secrets a series per flag and a
//! histogram per secret made a 16 MB, 190,000-line scrape; the alerts need only the flags
//! that are set (`== 1` fires, an absent series resolves).
//!
//! Invariants: only names, kinds, tiers, times and counts, never a value; every state gauge is
//! read from the row's `Standing` (the store's truth), so it survives a restart and says what
//! `rotor status` says; only the counter and the histogram live in this process.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Mutex;

use jiff::Timestamp;
use rotor_core::{Kind, SecretState};
use rotor_engine::StatusRow;

/// Histogram bucket bounds of `secret_rotation_duration_seconds`.
pub const DURATION_BUCKETS: [f64; 10] = [0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0];

#[derive(Debug, Default, Clone)]
struct Histogram {
    buckets: [u64; DURATION_BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Debug, Default)]
struct Counters {
    /// Failures by secret name.
    failures: HashMap<String, u64>,
    /// Stored keys left out of JWKS answers, by secret name.
    jwks_skipped: HashMap<String, u64>,
    /// Durations by kind (`Kind::as_str`).
    durations: BTreeMap<&'static str, Histogram>,
}

/// Counters the store does not hold: failures and durations seen by this process.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Counters>,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut Counters) -> R) -> R {
        let mut c = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut c)
    }

    pub fn count_failure(&self, secret: &str) {
        self.with(|c| *c.failures.entry(secret.to_owned()).or_default() += 1);
    }

    /// A stored key of `secret` that does not parse was left out of a JWKS answer.
    pub fn count_jwks_skipped(&self, secret: &str) {
        self.with(|c| *c.jwks_skipped.entry(secret.to_owned()).or_default() += 1);
    }

    pub fn observe_duration(&self, kind: Kind, secs: f64) {
        self.with(|c| {
            let h = c.durations.entry(kind.as_str()).or_default();
            for (i, bound) in DURATION_BUCKETS.iter().enumerate() {
                if secs <= *bound {
                    h.buckets[i] += 1;
                }
            }
            h.count += 1;
            h.sum += secs;
        });
    }

    /// Failures counted for `secret` since start.
    pub fn failures(&self, secret: &str) -> u64 {
        self.with(|c| c.failures.get(secret).copied().unwrap_or(0))
    }

    /// The exposition for `rows` (from `engine.status()`).
    pub fn render(&self, rows: &[StatusRow]) -> String {
        let (failures, skipped, durations) = self.with(|c| {
            (
                c.failures.clone(),
                c.jwks_skipped.clone(),
                c.durations.clone(),
            )
        });
        let mut out = String::with_capacity(1024 + rows.len() * 320);
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
        let header = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
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
            header(&mut out, name, "gauge", help);
            for (row, labels) in rows.iter().zip(&labels) {
                if let Some(t) = get(row) {
                    let _ = writeln!(out, "{name}{{{labels}}} {}", t.as_second());
                }
            }
        }
        let flags: [Family<bool>; 7] = [
            (
                "secret_overdue",
                "1 when the secret is past its rotation deadline, or its age is unknown (absent: 0).",
                &|r| r.standing.overdue,
            ),
            (
                "secret_never_rotated",
                "1 when rotor has no record of the secret being rotated: no current value, no declared last_rotated (absent: 0).",
                &|r| r.standing.never_rotated,
            ),
            (
                "secret_rotation_failed",
                "1 while the newest rotation failed, until a later one succeeds or a person acts (absent: 0).",
                &|r| r.standing.failed,
            ),
            (
                "secret_rotation_in_progress",
                "1 while a rotation of the secret is running (absent: 0).",
                &|r| r.standing.in_progress,
            ),
            (
                "secret_in_grace",
                "1 while the previous value stays valid until its retire time (absent: 0).",
                &|r| r.standing.in_grace,
            ),
            (
                "secret_retire_due",
                "1 when grace ended and the previous value was not retired yet; run `rotor retire --due` (absent: 0).",
                &|r| r.standing.retire_due,
            ),
            (
                "secret_rotation_blocked",
                "1 while the last probe found that a rotation could not run (see `rotor probe NAME`).",
                &|r| r.standing.blocked,
            ),
        ];
        for (name, help, get) in flags {
            header(&mut out, name, "gauge", help);
            for (row, labels) in rows.iter().zip(&labels) {
                if get(row) {
                    let _ = writeln!(out, "{name}{{{labels}}} 1");
                }
            }
        }
        header(
            &mut out,
            "secret_rotation_failures_total",
            "counter",
            "Rotations that ended failed, seen by this daemon since it started (contention never counts).",
        );
        for (row, labels) in rows.iter().zip(&labels) {
            if let Some(n) = failures.get(row.name.as_str()) {
                let _ = writeln!(out, "secret_rotation_failures_total{{{labels}}} {n}");
            }
        }
        header(
            &mut out,
            "rotor_jwks_skipped_keys_total",
            "counter",
            "Stored keys left out of JWKS answers because they do not parse, since the daemon started.",
        );
        for (row, labels) in rows.iter().zip(&labels) {
            if let Some(n) = skipped.get(row.name.as_str()) {
                let _ = writeln!(out, "rotor_jwks_skipped_keys_total{{{labels}}} {n}");
            }
        }
        header(
            &mut out,
            "secret_rotation_duration_seconds",
            "histogram",
            "How long scheduled and API rotations took, create to finish, by kind.",
        );
        for (kind, h) in &durations {
            for (b, bound) in DURATION_BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "secret_rotation_duration_seconds_bucket{{kind=\"{kind}\",le=\"{bound}\"}} {}",
                    h.buckets[b]
                );
            }
            let _ = writeln!(
                out,
                "secret_rotation_duration_seconds_bucket{{kind=\"{kind}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "secret_rotation_duration_seconds_sum{{kind=\"{kind}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "secret_rotation_duration_seconds_count{{kind=\"{kind}\"}} {}",
                h.count
            );
        }
        header(
            &mut out,
            "rotor_secrets",
            "gauge",
            "How many secrets of the inventory are in each state.",
        );
        for state in SecretState::ALL {
            let n = rows.iter().filter(|r| r.standing.state == state).count();
            let _ = writeln!(out, "rotor_secrets{{state=\"{state}\"}} {n}");
        }
        header(
            &mut out,
            "rotor_up",
            "gauge",
            "1 while the rotor daemon runs.",
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
