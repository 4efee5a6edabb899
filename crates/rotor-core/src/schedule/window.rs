//! Maintenance windows on the time line: which occurrence of a [`Window`] is open at or next
//! after an instant.
//!
//! Windows are local wall-clock times in their IANA zone: on a DST spring-forward day a start
//! inside the gap moves to the end of the gap (02:00 → 03:00 CEST in Europe/Berlin), and on a
//! fall-back day the earlier of two ambiguous instants is taken, so the window is an hour
//! shorter or longer that day.

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use crate::config::Window;

/// One opening of a window: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occurrence {
    pub start: Timestamp,
    pub end: Timestamp,
}

/// The occurrence of `window` that is open at `t`, or else the next one to open (`end > t`
/// always; `start` may be before `t`). `None` only for a time zone the build does not know
/// (the config parser refuses those).
pub fn occurrence_at_or_after(window: &Window, t: Timestamp) -> Option<Occurrence> {
    let tz = TimeZone::get(&window.tz).ok()?;
    let today = t.to_zoned(tz.clone()).date();
    let mut date = today.yesterday().ok()?;
    let mut best: Option<Occurrence> = None;
    // A window crossing midnight may have opened yesterday; a week later it repeats.
    for _ in 0..10 {
        let weekday = usize::try_from(date.weekday().to_monday_zero_offset()).unwrap_or(0);
        if window.days[weekday] {
            let start = local(&tz, date, window.start_minute)?;
            let end_date = if window.end_minute <= window.start_minute {
                date.tomorrow().ok()?
            } else {
                date
            };
            let end = local(&tz, end_date, window.end_minute)?;
            if end > t && end > start && best.is_none_or(|b| start.max(t) < b.start.max(t)) {
                best = Some(Occurrence { start, end });
            }
        }
        date = date.tomorrow().ok()?;
    }
    best
}

/// The earliest instant `>= t` inside `window`, with the end of that window occurrence.
pub fn window_at_or_after(window: &Window, t: Timestamp) -> Option<(Timestamp, Timestamp)> {
    occurrence_at_or_after(window, t).map(|o| (o.start.max(t), o.end))
}

/// Whether `t` is inside an occurrence of `window`.
pub fn is_open(window: &Window, t: Timestamp) -> bool {
    occurrence_at_or_after(window, t).is_some_and(|o| o.start <= t)
}

/// `minute` minutes after local midnight of `date` in `tz` (24:00 is next midnight).
fn local(tz: &TimeZone, date: Date, minute: u16) -> Option<Timestamp> {
    let (date, minute) = if minute >= 1440 {
        (date.tomorrow().ok()?, minute - 1440)
    } else {
        (date, minute)
    };
    let hour = i8::try_from(minute / 60).ok()?;
    let min = i8::try_from(minute % 60).ok()?;
    let dt = date.at(hour, min, 0, 0);
    Some(dt.to_zoned(tz.clone()).ok()?.timestamp())
}
