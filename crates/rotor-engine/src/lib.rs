//! The rotation engine: the only place that talks to both a [`Store`](rotor_core::Store) and a [`Rotator`](rotor_core::Rotator).
//!
//! It drives one rotation at a time per secret through `create → set → test → [activate] →
//! finish`, and `retire` after grace, persisting each step before its side effect:
//!
//! - `create` makes the value and stores it as `pending` in the same transaction that records
//!   the step, before any target sees it (ARCHITECTURE.md invariant 3: a value that works on
//!   a target is always in the store);
//! - every later step is recorded as started before it runs and as done after, so a crash
//!   leaves a record that says which step to run again (every step is idempotent);
//! - the rotation holds a lease with a fencing token, so two processes never drive the same
//!   rotation, and a stalled one cannot write after another took over;
//! - `current` moves only in `finish`, after `test` passed; `previous` is retired only after
//!   grace and after `current` tested good again;
//! - a failed step is retried with bounded exponential backoff, then rolled back on the
//!   target, and the rotation is marked failed with the error; `current` is untouched.
//!
//! Absences: the engine parses no config, opens no files and knows no target protocol.

/// Retries a rotator call while its error is transient, as the engine's [`RetryPolicy`]
/// (rotor's one [`Backoff`](rotor_core::Backoff)) allows and waits.
macro_rules! with_retry {
    ($engine:expr, $secret:expr, $step:expr, $call:expr) => {{
        let mut attempt = 1u32;
        loop {
            match $call.await {
                Ok(v) => break Ok(v),
                Err(e) if e.transient && $engine.opts.retry.may_retry(attempt) => {
                    let shown = $engine.shows_progress();
                    $engine.report($crate::Progress::Retrying {
                        secret: $secret.clone(),
                        step: $step,
                        attempt,
                        error: e.to_string(),
                    });
                    if shown {
                        tracing::debug!(secret = %$secret, step = %$step, attempt, error = %e, "transient error, retrying");
                    } else {
                        tracing::warn!(secret = %$secret, step = %$step, attempt, error = %e, "transient error, retrying");
                    }
                    tokio::time::sleep($engine.opts.retry.delay(attempt)).await;
                    attempt += 1;
                }
                Err(e) => break Err(e),
            }
        }
    }};
}

mod clock;
mod declared;
mod drive;
mod engine;
mod error;
mod failpoint;
mod lease;
mod options;
mod outcome;
mod owner;
mod probe;
mod put;
mod queries;
mod reads;
mod recover;
mod registry;
mod rollback;
mod rotate;
mod serial;
mod summary_cache;

pub use clock::{Clock, SystemClock};
pub use declared::DECLARED;
pub use engine::Engine;
pub use error::EngineError;
pub use options::{EngineOptions, RetryPolicy, RotateOptions};
pub use outcome::{Deliver, Evicted, Outcome, Progress, ProgressFn, StageChange};
pub use owner::Owner;
pub use probe::ProbeReport;
pub use queries::{PlanAction, PlanEntry, StatusRow};
pub use reads::{ReadChannel, ValueRead};
pub use registry::Rotators;
