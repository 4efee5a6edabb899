//! Human durations as the config writes them: `90d`, `12h`, `30m`, `45s`, `1h30m`.
//!
//! One grammar everywhere (config, CLI flags, API), so "90 days" is refused the same way in
//! all of them, with the fix in the message.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A non-negative span of whole seconds (rotation schedules need no finer grain).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(u64);

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "bad duration {input:?}: {why}; write a number and a unit with no spaces, e.g. \"90d\", \"12h\", \"30m\", \"45s\" or \"1h30m\" (units: w, d, h, m, s)"
)]
pub struct DurationError {
    pub input: String,
    pub why: &'static str,
}

impl Duration {
    pub const ZERO: Duration = Duration(0);

    pub const fn from_secs(secs: u64) -> Self {
        Self(secs)
    }
    pub const fn from_mins(m: u64) -> Self {
        Self(m * 60)
    }
    pub const fn from_hours(h: u64) -> Self {
        Self(h * 3600)
    }
    pub const fn from_days(d: u64) -> Self {
        Self(d * 86_400)
    }
    pub const fn as_secs(self) -> u64 {
        self.0
    }
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }
    pub fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.0)
    }
    /// As a signed span for timestamp arithmetic.
    pub fn to_span(self) -> jiff::SignedDuration {
        jiff::SignedDuration::from_secs(i64::try_from(self.0).unwrap_or(i64::MAX))
    }
    pub fn saturating_add(self, other: Duration) -> Duration {
        Duration(self.0.saturating_add(other.0))
    }

    /// Parses the config grammar.
    pub fn parse(input: &str) -> Result<Self, DurationError> {
        let err = |why| DurationError {
            input: input.to_owned(),
            why,
        };
        if input.is_empty() {
            return Err(err("it is empty"));
        }
        if input.chars().any(char::is_whitespace) {
            return Err(err("it contains spaces"));
        }
        if input.starts_with('-') {
            return Err(err(
                "it is negative (a duration counts forward from an event; drop the `-`)",
            ));
        }
        let mut total: u64 = 0;
        let mut digits = String::new();
        let mut seen_unit = false;
        for ch in input.chars() {
            if ch.is_ascii_digit() {
                digits.push(ch);
                continue;
            }
            let mult = match ch {
                'w' => 7 * 86_400,
                'd' => 86_400,
                'h' => 3_600,
                'm' => 60,
                's' => 1,
                _ => return Err(err("it has an unknown unit")),
            };
            if digits.is_empty() {
                return Err(err("a unit has no number before it"));
            }
            let n: u64 = digits.parse().map_err(|_| err("a number is too large"))?;
            digits.clear();
            total = n
                .checked_mul(mult)
                .and_then(|s| total.checked_add(s))
                .ok_or_else(|| err("it is too large"))?;
            seen_unit = true;
        }
        if !digits.is_empty() {
            return Err(err(if seen_unit {
                "the last number has no unit"
            } else {
                "it has no unit"
            }));
        }
        Ok(Self(total))
    }
}

impl FromStr for Duration {
    type Err = DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Prints the shortest exact form: `90d`, `1h30m`, `0s`.
impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0s");
        }
        let mut rest = self.0;
        for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
            if rest >= size {
                write!(f, "{}{unit}", rest / size)?;
                rest %= size;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Duration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_grammar() {
        let cases = [
            ("90d", 90 * 86_400),
            ("180d", 180 * 86_400),
            ("1h", 3_600),
            ("30m", 1_800),
            ("45s", 45),
            ("1h30m", 5_400),
            ("2w", 14 * 86_400),
            ("0s", 0),
        ];
        for (text, secs) in cases {
            assert_eq!(Duration::parse(text), Ok(Duration(secs)), "{text}");
        }
    }

    #[test]
    fn refuses_with_the_fix() {
        for (text, why) in [
            ("90 days", "it contains spaces"),
            ("90", "it has no unit"),
            ("1h30", "the last number has no unit"),
            ("90y", "it has an unknown unit"),
            ("d", "a unit has no number before it"),
            ("", "it is empty"),
            ("99999999999999999999d", "a number is too large"),
            (
                "-5d",
                "it is negative (a duration counts forward from an event; drop the `-`)",
            ),
        ] {
            let e = Duration::parse(text).expect_err(text);
            assert_eq!(e.why, why, "{text}");
            assert!(e.to_string().contains("\"90d\""), "{e}");
        }
    }

    #[test]
    fn displays_shortest_form() {
        assert_eq!(Duration::from_days(90).to_string(), "90d");
        assert_eq!(Duration::from_secs(5_400).to_string(), "1h30m");
        assert_eq!(Duration::ZERO.to_string(), "0s");
    }

    proptest::proptest! {
        #[test]
        fn display_round_trips(secs in 0u64..10_000_000_000) {
            let d = Duration(secs);
            proptest::prop_assert_eq!(Duration::parse(&d.to_string()), Ok(d));
        }
    }
}
