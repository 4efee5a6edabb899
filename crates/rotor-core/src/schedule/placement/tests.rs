//! Placement: table tests (windows, zones, DST, jitter) and property tests (never early,
//! always inside the window, stable until it comes).

use std::collections::HashSet;

use jiff::Timestamp;
use proptest::prelude::*;

use super::*;
use crate::config::Window;
use crate::schedule::window::is_open;

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

fn win(s: &str) -> Window {
    Window::parse(s).expect("window")
}

#[test]
fn jitter_is_deterministic_and_bounded() {
    let j = Duration::from_hours(6);
    for name in ["jwt-signing", "database", "redis", "a", "session-secret"] {
        let a = jitter_offset(name, j);
        assert_eq!(a, jitter_offset(name, j));
        assert!(a < j, "{name}: {a}");
    }
    assert_ne!(
        jitter_offset("jwt-signing", j),
        jitter_offset("database", j)
    );
    assert_eq!(jitter_offset("x", Duration::ZERO), Duration::ZERO);
}

#[test]
fn placement_table() {
    // (nominal, window, jitter, expected); names chosen below with jitter 0 unless noted.
    let cases: &[(&str, Option<&str>, &str)] = &[
        // No window, no jitter: the nominal time.
        ("2025-06-03T10:00:00Z", None, "2025-06-03T10:00:00Z"),
        // Inside a UTC window: unchanged.
        (
            "2025-06-03T02:30:00Z",
            Some("Tue-Thu 02:00-04:00 UTC"),
            "2025-06-03T02:30:00Z",
        ),
        // Before the window on a window day: its start.
        (
            "2025-06-03T01:00:00Z",
            Some("Tue-Thu 02:00-04:00 UTC"),
            "2025-06-03T02:00:00Z",
        ),
        // After Thursday's window: next Tuesday.
        (
            "2025-06-05T05:00:00Z",
            Some("Tue-Thu 02:00-04:00 UTC"),
            "2025-06-10T02:00:00Z",
        ),
        // Exactly at the end (exclusive): next day's window.
        (
            "2025-06-03T04:00:00Z",
            Some("Tue-Thu 02:00-04:00 UTC"),
            "2025-06-04T02:00:00Z",
        ),
        // Berlin in summer (CEST, UTC+2): 02:00 local is 00:00Z.
        (
            "2025-06-02T12:00:00Z",
            Some("Tue-Thu 02:00-04:00 Europe/Berlin"),
            "2025-06-03T00:00:00Z",
        ),
        // Berlin in winter (CET, UTC+1): 02:00 local is 01:00Z.
        (
            "2025-01-06T12:00:00Z",
            Some("Tue-Thu 02:00-04:00 Europe/Berlin"),
            "2025-01-07T01:00:00Z",
        ),
        // DST spring forward (Sun 2025-03-30: 02:00 → 03:00): 02:00 does not exist, the
        // window opens at 03:00 CEST = 01:00Z.
        (
            "2025-03-29T12:00:00Z",
            Some("Sun 02:00-04:00 Europe/Berlin"),
            "2025-03-30T01:00:00Z",
        ),
        // DST fall back (Sun 2025-10-26: 03:00 → 02:00): 02:00 happens twice; the first
        // (CEST) one opens the window, 00:00Z.
        (
            "2025-10-25T12:00:00Z",
            Some("Sun 02:00-04:00 Europe/Berlin"),
            "2025-10-26T00:00:00Z",
        ),
        // During the repeated hour (02:30 CET = 01:30Z) the window is open: unchanged.
        (
            "2025-10-26T01:30:00Z",
            Some("Sun 02:00-04:00 Europe/Berlin"),
            "2025-10-26T01:30:00Z",
        ),
        // The fall-back window ends at 04:00 CET = 03:00Z; 03:30Z goes to next Sunday.
        (
            "2025-10-26T03:30:00Z",
            Some("Sun 02:00-04:00 Europe/Berlin"),
            "2025-11-02T01:00:00Z",
        ),
        // A window crossing midnight, entered after midnight (Sat-Mon 22:00-02:00 UTC):
        // Monday 01:00 is inside Sunday's window.
        (
            "2025-06-09T01:00:00Z",
            Some("Sat-Mon 22:00-02:00 UTC"),
            "2025-06-09T01:00:00Z",
        ),
        // Tuesday noon: next Saturday 22:00.
        (
            "2025-06-10T12:00:00Z",
            Some("Sat-Mon 22:00-02:00 UTC"),
            "2025-06-14T22:00:00Z",
        ),
    ];
    for (nominal, window, want) in cases {
        let w = window.map(win);
        let got = place_due(ts(nominal), "x", Duration::ZERO, w.as_ref());
        assert_eq!(got, ts(want), "nominal {nominal} window {window:?}");
    }
}

#[test]
fn jitter_spreads_inside_the_window() {
    let w = win("Tue-Thu 02:00-04:00 Europe/Berlin");
    let nominal = ts("2025-06-02T12:00:00Z");
    let open = ts("2025-06-03T00:00:00Z");
    let close = ts("2025-06-03T02:00:00Z");
    let mut seen = HashSet::new();
    for i in 0..50 {
        let name = format!("svc-{i}");
        let got = place_due(nominal, &name, Duration::from_hours(1), Some(&w));
        assert!(got >= open && got < close, "{name}: {got}");
        let off = jitter_offset(&name, Duration::from_hours(1));
        assert_eq!(got, open.checked_add(off.to_span()).expect("add"));
        seen.insert(got);
    }
    assert!(seen.len() > 40, "jitter spreads: {}", seen.len());
    // Jitter longer than what is left of the window wraps and stays inside it.
    let late = ts("2025-06-03T01:50:00Z");
    for i in 0..50 {
        let got = place_due(late, &format!("svc-{i}"), Duration::from_hours(5), Some(&w));
        assert!(got >= late && got < close, "{got}");
    }
    // The spring-forward day's window is one hour long (03:00-04:00 CEST).
    let w = win("Sun 02:00-04:00 Europe/Berlin");
    for i in 0..50 {
        let got = place_due(
            ts("2025-03-29T12:00:00Z"),
            &format!("svc-{i}"),
            Duration::from_hours(3),
            Some(&w),
        );
        assert!(
            got >= ts("2025-03-30T01:00:00Z") && got < ts("2025-03-30T02:00:00Z"),
            "{got}"
        );
    }
    // No window: nominal + offset.
    let off = jitter_offset("db", Duration::from_hours(2));
    assert_eq!(
        place_due(nominal, "db", Duration::from_hours(2), None),
        nominal.checked_add(off.to_span()).expect("add")
    );
}

#[test]
fn next_scheduled_table() {
    // Tuesday 2025-06-03 10:00 UTC.
    let now = ts("2025-06-03T10:00:00Z");
    let kiritimati = win("Sat-Sat 03:00-03:01 Pacific/Kiritimati");
    let utc = win("Tue-Thu 02:00-12:00 UTC");
    let cases: &[(&str, Option<&str>, Option<&Window>, &str)] = &[
        // Never rotated, no window: at once.
        ("never, no window", None, None, "2025-06-03T10:00:00Z"),
        // Never rotated: the next opening, not serve start on a Tuesday (issue 10 item 2).
        // Saturday 03:00 at UTC+14 is Friday 13:00 UTC.
        (
            "never, window later in the week",
            None,
            Some(&kiritimati),
            "2025-06-06T13:00:00Z",
        ),
        // Never rotated and the window is open: at once.
        (
            "never, window open",
            None,
            Some(&utc),
            "2025-06-03T10:00:00Z",
        ),
        // Due ahead: the slot.
        (
            "due ahead, no window",
            Some("2025-06-05T00:00:00Z"),
            None,
            "2025-06-05T00:00:00Z",
        ),
        (
            "due ahead, before the window opens",
            Some("2025-06-05T00:00:00Z"),
            Some(&utc),
            "2025-06-05T02:00:00Z",
        ),
        // Due passed while rotor was down: at once without a window ...
        (
            "missed, no window",
            Some("2025-06-01T00:00:00Z"),
            None,
            "2025-06-03T10:00:00Z",
        ),
        // ... at once when the slot's window is still open ...
        (
            "missed, its window still open",
            Some("2025-06-03T03:00:00Z"),
            Some(&utc),
            "2025-06-03T10:00:00Z",
        ),
        // ... and at the next opening when its window closed.
        (
            "missed, its window closed",
            Some("2025-05-30T00:00:00Z"),
            Some(&kiritimati),
            "2025-06-06T13:00:00Z",
        ),
    ];
    for (what, due, window, want) in cases {
        let got = next_scheduled(due.map(ts), "x", Duration::ZERO, *window, now);
        assert_eq!(got, ts(want), "{what}");
    }
    // Jitter spreads first rotations over the opening, from its start.
    let w = win("Wed 00:00-06:00 UTC");
    let open = ts("2025-06-04T00:00:00Z");
    let close = ts("2025-06-04T06:00:00Z");
    let mut seen = HashSet::new();
    for i in 0..40 {
        let name = format!("svc-{i}");
        let got = next_scheduled(None, &name, Duration::from_hours(4), Some(&w), now);
        let off = jitter_offset(&name, Duration::from_hours(4));
        assert_eq!(got, open.checked_add(off.to_span()).expect("add"), "{name}");
        assert!(got >= open && got < close);
        seen.insert(got);
    }
    assert!(seen.len() > 30, "{}", seen.len());
}

/// Wall-clock membership, computed independently of the placement code (for zones without
/// DST, where local time is unambiguous).
fn inside_by_the_clock(w: &Window, t: Timestamp) -> bool {
    let tz = jiff::tz::TimeZone::get(&w.tz).expect("tz");
    let z = t.to_zoned(tz);
    let minute =
        u16::try_from(z.hour()).expect("hour") * 60 + u16::try_from(z.minute()).expect("minute");
    let day = usize::from(z.weekday().to_monday_zero_offset().unsigned_abs());
    let yesterday = (day + 6) % 7;
    if w.start_minute < w.end_minute {
        w.days[day] && minute >= w.start_minute && minute < w.end_minute
    } else {
        (w.days[day] && minute >= w.start_minute) || (w.days[yesterday] && minute < w.end_minute)
    }
}

const ZONES: [(&str, bool); 5] = [
    ("UTC", true),
    ("Pacific/Kiritimati", true),
    ("Asia/Kolkata", true),
    ("America/Phoenix", true),
    ("Europe/Berlin", false),
];

fn window_strategy() -> impl Strategy<Value = Window> {
    (1u8..128, 0u16..1440, 1u16..1440, 0usize..ZONES.len()).prop_map(|(mask, start, len, z)| {
        let mut days = [false; 7];
        for (i, d) in days.iter_mut().enumerate() {
            *d = mask & (1 << i) != 0;
        }
        Window {
            days,
            start_minute: start,
            end_minute: (start + len) % 1440,
            tz: ZONES[z].0.to_owned(),
        }
    })
}

proptest! {
    /// Every scheduled rotation, first ones included, starts inside its window, never before
    /// now, and the answer holds until it comes.
    #[test]
    fn scheduled_rotations_start_inside_their_window(
        window in proptest::option::of(window_strategy()),
        name in "[a-z][a-z0-9-]{0,11}",
        jitter in 0u64..(14 * 86_400),
        now_secs in 1_704_067_200i64..1_798_761_600,
        due_rel in proptest::option::of(-60 * 86_400i64..60 * 86_400),
        later in 0.0f64..=1.0,
    ) {
        let now = Timestamp::from_second(now_secs).expect("now");
        let due = due_rel.map(|d| Timestamp::from_second(now_secs + d).expect("due"));
        let jitter = Duration::from_secs(jitter);
        let at = next_scheduled(due, &name, jitter, window.as_ref(), now);
        prop_assert!(at >= now, "{at} before {now}");
        match &window {
            Some(w) => {
                prop_assert!(is_open(w, at), "{at} outside {w:?}");
                let fixed = ZONES.iter().any(|(z, fixed)| *z == w.tz && *fixed);
                if fixed {
                    prop_assert!(inside_by_the_clock(w, at), "{at} outside {w:?} by the clock");
                }
            }
            None => {
                let want = due
                    .map(|d| d.checked_add(jitter_offset(&name, jitter).to_span()).expect("add"))
                    .filter(|slot| *slot >= now)
                    .unwrap_or(now);
                prop_assert_eq!(at, want);
            }
        }
        if at > now {
            let span = at.duration_since(now).as_secs();
            let step = (span as f64 * later) as i64;
            let again = now.checked_add(jiff::SignedDuration::from_secs(step)).expect("add");
            prop_assert_eq!(next_scheduled(due, &name, jitter, window.as_ref(), again), at);
        }
    }
}
