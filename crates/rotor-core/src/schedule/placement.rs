//! When a scheduled rotation starts: the due time, spread by the name's jitter, inside the
//! secret's window.
//!
//! Pure functions of their arguments, so every replica of `rotor serve`, every `rotor plan`
//! and every cron `rotor rotate --due` computes the same instant. Invariants (table and
//! property tests below):
//! - the result of [`next_scheduled`] is never before `now`, and always inside the window;
//! - it is stable: asked again at any instant up to it, the answer is the same, so the
//!   scheduler that sleeps until it finds it due when it wakes;
//! - first rotations (no due time yet) are placed too: at once without a window, else in
//!   the next opening, spread by the jitter.

use jiff::Timestamp;
use sha2::{Digest, Sha256};

use super::window::occurrence_at_or_after;
use crate::Duration;
use crate::config::Window;

/// The deterministic jitter offset of `name`: SHA-256 of the name, mapped into `[0, jitter)`.
/// Stable across builds and hosts, so every replica computes the same schedule.
pub fn jitter_offset(name: &str, jitter: Duration) -> Duration {
    if jitter.is_zero() {
        return Duration::ZERO;
    }
    let digest = Sha256::digest(name.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    Duration::from_secs(u64::from_be_bytes(first) % jitter.as_secs())
}

/// Where a rotation nominally due at `nominal` is slotted.
///
/// Without a window: `nominal + jitter_offset(name)`. With a window: the earliest instant at
/// or after `nominal` inside the window, plus the jitter offset, kept inside that same window
/// occurrence (the offset wraps around what is left of it), so secrets due together spread
/// over the window instead of all starting when it opens.
pub fn place_due(
    nominal: Timestamp,
    name: &str,
    jitter: Duration,
    window: Option<&Window>,
) -> Timestamp {
    let offset = jitter_offset(name, jitter);
    let Some(occ) = window.and_then(|w| occurrence_at_or_after(w, nominal)) else {
        return nominal.checked_add(offset.to_span()).unwrap_or(nominal);
    };
    spread(nominal.max(occ.start), occ.end, offset)
}

/// When the next scheduled rotation starts, seen at `now`. `due` is when the secret comes
/// due (`None`: it never was rotated, so it is due from the start).
///
/// The slot of [`place_due`] while it is still ahead. Once it has passed (rotor was not
/// running, or the secret was never rotated): at once when there is no window or the window
/// that held the slot is still open; otherwise in the next opening, spread by the jitter
/// from its start (and at once if that point of the opening has passed too).
pub fn next_scheduled(
    due: Option<Timestamp>,
    name: &str,
    jitter: Duration,
    window: Option<&Window>,
    now: Timestamp,
) -> Timestamp {
    let slot = due.map(|d| place_due(d, name, jitter, window));
    if let Some(slot) = slot
        && slot >= now
    {
        return slot;
    }
    let Some(occ) = window.and_then(|w| occurrence_at_or_after(w, now)) else {
        return now;
    };
    if slot.is_some_and(|s| s >= occ.start) {
        // The slot was in the opening that is still open.
        return now;
    }
    spread(occ.start, occ.end, jitter_offset(name, jitter)).max(now)
}

/// `at + offset`, the offset wrapped into `[at, end)`.
fn spread(at: Timestamp, end: Timestamp, offset: Duration) -> Timestamp {
    let left = end.duration_since(at).as_secs().max(1);
    let secs = i64::try_from(offset.as_secs()).unwrap_or(i64::MAX) % left;
    at.checked_add(jiff::SignedDuration::from_secs(secs))
        .unwrap_or(at)
}

#[cfg(test)]
mod tests;
