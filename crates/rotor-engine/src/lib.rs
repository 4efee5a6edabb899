//! The rotation engine: the only place that talks to both a [`Store`] and a [`Rotator`].
//!
//! It drives one rotation at a time per secret through `create → set → test → [activate] →
//! finish`, and `retire` after grace, persisting each step before its side effect:
//!
//! - `create` makes the value and stores it as `pending` in the same transaction that records
//!   the step, before any target sees it (invariant 1: a value that works on a target is
//!   always in the store);
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

mod clock;
mod declared;
mod engine;
mod error;
mod failpoint;
mod owner;
mod queries;
mod reads;
mod registry;

pub use clock::{Clock, SystemClock};
pub use declared::DECLARED;
pub use engine::{
    Deliver, Engine, EngineOptions, Outcome, Progress, ProgressFn, RetryPolicy, RotateOptions,
    StageChange,
};
pub use error::EngineError;
pub use owner::Owner;
pub use queries::{PlanAction, PlanEntry, StatusRow};
pub use reads::{ReadChannel, ValueRead};
pub use registry::Rotators;
