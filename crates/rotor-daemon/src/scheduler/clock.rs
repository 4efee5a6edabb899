//! The scheduler's clock: tokio time from a base timestamp, so tests run on paused time.

use jiff::Timestamp;
use rotor_engine::Clock;

/// A [`Clock`] that follows tokio's clock from `base`: `base + (tokio::now - start)`. With
/// paused tokio time (tests), time moves only when the runtime is idle or `advance` is called.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    base: Timestamp,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// Starts at `base` now.
    pub fn new(base: Timestamp) -> Self {
        Self {
            base,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        let elapsed = tokio::time::Instant::now().saturating_duration_since(self.start);
        let span = jiff::SignedDuration::try_from(elapsed).unwrap_or(jiff::SignedDuration::MAX);
        self.base.checked_add(span).unwrap_or(self.base)
    }
}
