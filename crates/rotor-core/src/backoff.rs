//! The one bounded exponential backoff every rotor retry loop follows.
//!
//! The engine's in-step retries, webhook delivery, the scheduler's retries of a failed job
//! and the PostgreSQL store's serialization retries all wait `base * 2^(n-1)` before try
//! `n + 1`, capped at `max`. Keeping the arithmetic here means a retry log line ("next try
//! in 2 s") and the wait that follows it can never disagree. Sleeping is the caller's: this
//! crate has no runtime.

use std::time::Duration;

/// Bounded exponential backoff: `attempts` tries in all, the first retry after `base`,
/// each later one after twice the last, never more than `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Tries in all (1 = no retry).
    pub attempts: u32,
    /// The wait before the first retry.
    pub base: Duration,
    /// No wait is longer than this.
    pub max: Duration,
}

impl Backoff {
    /// `attempts` tries, waits from `base` doubling up to `max`.
    pub const fn new(attempts: u32, base: Duration, max: Duration) -> Self {
        Self {
            attempts,
            base,
            max,
        }
    }

    /// The wait after failed try `n` (1-based) before try `n + 1`: `base * 2^(n-1)`, at
    /// most `max`. Saturates instead of overflowing for any `n`.
    pub fn delay(&self, n: u32) -> Duration {
        let factor = 2u32.saturating_pow(n.saturating_sub(1));
        self.base.saturating_mul(factor).min(self.max)
    }

    /// Whether try `n` (1-based) that failed may be followed by another.
    pub fn may_retry(&self, n: u32) -> bool {
        n < self.attempts
    }

    /// The waits between tries, in order (`attempts - 1` of them).
    pub fn delays(&self) -> impl Iterator<Item = Duration> + '_ {
        (1..self.attempts).map(|n| self.delay(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_base_and_stops_at_max() {
        let b = Backoff::new(6, Duration::from_millis(200), Duration::from_secs(1));
        let waits: Vec<_> = b.delays().map(|d| d.as_millis()).collect();
        assert_eq!(waits, [200, 400, 800, 1000, 1000]);
        assert!(b.may_retry(5));
        assert!(!b.may_retry(6));
    }

    #[test]
    fn never_overflows() {
        let b = Backoff::new(u32::MAX, Duration::from_secs(u64::MAX / 2), Duration::MAX);
        assert_eq!(b.delay(u32::MAX), Duration::MAX);
        assert_eq!(b.delay(0), b.base);
    }

    #[test]
    fn one_attempt_never_retries() {
        let b = Backoff::new(1, Duration::from_secs(1), Duration::from_secs(1));
        assert!(!b.may_retry(1));
        assert_eq!(b.delays().count(), 0);
    }
}
