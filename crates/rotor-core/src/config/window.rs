//! A secret's maintenance `window`: when its scheduled rotations may run.

use serde::Serialize;

/// A maintenance window: days of the week and a time range in a named time zone, e.g.
/// `Tue-Thu 02:00-04:00 Europe/Berlin`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Window {
    /// Monday first.
    pub days: [bool; 7],
    /// Minutes after midnight, start inclusive.
    pub start_minute: u16,
    /// Minutes after midnight, end exclusive (may be below start: the window crosses midnight).
    pub end_minute: u16,
    /// IANA time zone name.
    pub tz: String,
}

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

impl Window {
    /// Parses `DAYS HH:MM-HH:MM TZ` where DAYS is `Mon`, `Tue-Thu`, `Mon,Wed,Fri` or `*`.
    pub fn parse(s: &str) -> Result<Window, String> {
        let usage = "write e.g. \"Tue-Thu 02:00-04:00 Europe/Berlin\" (days, a time range, an IANA time zone)";
        let fields: Vec<&str> = s.split_whitespace().collect();
        let [days, range, tz] = fields.as_slice() else {
            return Err(format!("window {s:?} does not have three parts; {usage}"));
        };
        let mut set = [false; 7];
        let day = |d: &str| {
            DAYS.iter()
                .position(|x| x.eq_ignore_ascii_case(d))
                .ok_or_else(|| format!("unknown day {d:?} in window; use Mon..Sun"))
        };
        if *days == "*" {
            set = [true; 7];
        } else {
            for part in days.split(',') {
                match part.split_once('-') {
                    Some((a, b)) => {
                        let (a, b) = (day(a)?, day(b)?);
                        let mut i = a;
                        loop {
                            set[i] = true;
                            if i == b {
                                break;
                            }
                            i = (i + 1) % 7;
                        }
                    }
                    None => set[day(part)?] = true,
                }
            }
        }
        let (a, b) = range
            .split_once('-')
            .ok_or_else(|| format!("window time range {range:?} is not HH:MM-HH:MM; {usage}"))?;
        let minute = |t: &str| -> Result<u16, String> {
            let (h, m) = t
                .split_once(':')
                .ok_or_else(|| format!("time {t:?} is not HH:MM"))?;
            let (h, m): (u16, u16) = (
                h.parse().map_err(|_| format!("time {t:?} is not HH:MM"))?,
                m.parse().map_err(|_| format!("time {t:?} is not HH:MM"))?,
            );
            if h > 24 || m > 59 || (h == 24 && m != 0) {
                return Err(format!("time {t:?} is out of range"));
            }
            Ok(h * 60 + m)
        };
        let (start, end) = (minute(a)?, minute(b)?);
        if start == end {
            return Err(format!("window {range:?} is empty"));
        }
        if jiff::tz::TimeZone::get(tz).is_err() {
            return Err(format!(
                "unknown time zone {tz:?}; use an IANA name such as Europe/Berlin or UTC"
            ));
        }
        Ok(Window {
            days: set,
            start_minute: start,
            end_minute: end,
            tz: (*tz).to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows() {
        let w = Window::parse("Tue-Thu 02:00-04:00 Europe/Berlin").expect("valid");
        assert_eq!(w.days, [false, true, true, true, false, false, false]);
        assert_eq!((w.start_minute, w.end_minute), (120, 240));
        let w = Window::parse("Sat-Mon 22:00-02:00 UTC").expect("valid");
        assert_eq!(w.days, [true, false, false, false, false, true, true]);
        assert!(Window::parse("Tue 02:00-04:00 Mars/Olympus").is_err());
        assert!(Window::parse("Tue 02:00").is_err());
        assert!(Window::parse("Xyz 02:00-03:00 UTC").is_err());
    }
}
