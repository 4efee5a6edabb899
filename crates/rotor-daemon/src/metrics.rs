//! The Prometheus text exposition behind `GET /metrics`.
//!
//! Names are fixed (dashboards and the generated alert rules depend on them):
//! `secret_last_rotated_timestamp` (the seed's name, seconds since the epoch),
//! `secret_next_due_timestamp`, `secret_overdue` (0/1), `secret_rotation_failed` (0/1, the
//! newest rotation failed), `secret_rotation_failures_total`, `secret_rotation_duration_seconds`
//! (histogram), `secret_rotation_in_progress` (0/1), each labelled `secret`, `tier`, `kind`;
//! plus `rotor_up 1`. Secrets without a tier get `tier="none"`.
//!
//! Invariant: only names, kinds, tiers, times and counts: never a value.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use jiff::Timestamp;
use rotor_core::SecretState;
use rotor_engine::StatusRow;

/// Histogram bucket bounds of `secret_rotation_duration_seconds`.
pub const DURATION_BUCKETS: [f64; 10] = [0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0];

#[derive(Debug, Default, Clone)]
struct PerSecret {
    failures: u64,
    in_progress: bool,
    buckets: [u64; DURATION_BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Counters the store does not hold: failures, durations, in-progress jobs.
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

    pub fn set_in_progress(&self, secret: &str, on: bool) {
        self.with(|m| m.entry(secret.to_owned()).or_default().in_progress = on);
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

    /// The exposition for `rows` (from `engine.status()`) at `now`.
    pub fn render(&self, rows: &[StatusRow], now: Timestamp) -> String {
        let counters = self.with(|m| m.clone());
        let empty = PerSecret::default();
        let mut out = String::with_capacity(256 + rows.len() * 900);
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
        family(
            "secret_last_rotated_timestamp",
            "gauge",
            "When the current version was created, in seconds since the epoch.",
            &|i| {
                rows[i].last_rotated.map(|t| {
                    format!(
                        "secret_last_rotated_timestamp{{{}}} {}\n",
                        labels[i],
                        t.as_second()
                    )
                })
            },
        );
        family(
            "secret_next_due_timestamp",
            "gauge",
            "When the secret must be rotated by (last rotation + rotate_every), in seconds since the epoch.",
            &|i| {
                rows[i].next_due.map(|t| {
                    format!(
                        "secret_next_due_timestamp{{{}}} {}\n",
                        labels[i],
                        t.as_second()
                    )
                })
            },
        );
        family(
            "secret_overdue",
            "gauge",
            "1 when the secret is past its rotation deadline.",
            &|i| {
                let overdue = rows[i].next_due.is_some_and(|d| now > d)
                    || rows[i].state == SecretState::Overdue;
                Some(format!(
                    "secret_overdue{{{}}} {}\n",
                    labels[i],
                    u8::from(overdue)
                ))
            },
        );
        family(
            "secret_rotation_failed",
            "gauge",
            "1 when the newest rotation failed and nothing has succeeded since.",
            &|i| {
                Some(format!(
                    "secret_rotation_failed{{{}}} {}\n",
                    labels[i],
                    u8::from(rows[i].state == SecretState::Failed)
                ))
            },
        );
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
            "secret_rotation_in_progress",
            "gauge",
            "1 while a rotation of the secret is running.",
            &|i| {
                let c = counters.get(rows[i].name.as_str()).unwrap_or(&empty);
                let on = c.in_progress || rows[i].state == SecretState::InProgress;
                Some(format!(
                    "secret_rotation_in_progress{{{}}} {}\n",
                    labels[i],
                    u8::from(on)
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

/// Label values: secret names are `[A-Za-z0-9._-]`, but escape anyway.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
