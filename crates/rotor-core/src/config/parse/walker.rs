//! The span-keeping walker over the TOML document and its diagnostics plumbing: every
//! reader of a typed value reports a wrong type or an unset `${VAR}` at the value's place
//! (file, line, column, secret) and lets the caller carry on, so one `rotor check` reports
//! every problem at once.

use std::cell::OnceCell;
use std::ops::Range;
use std::path::PathBuf;

use toml_edit::{TableLike, Value};

use crate::config::Diagnostic;
use crate::{Duration, SecretName};

/// The walk in progress: the text (for line and column), the diagnostics so far and the
/// secret being read.
pub(super) struct Walker<'a> {
    pub(super) text: &'a str,
    pub(super) file: PathBuf,
    pub(super) env: &'a dyn Fn(&str) -> Option<String>,
    pub(super) diags: Vec<Diagnostic>,
    /// Diagnostics that do not make the config invalid ([`Config::warnings`](crate::config::Config::warnings)).
    pub(super) warnings: Vec<Diagnostic>,
    /// The secret being walked, named in its diagnostics.
    pub(super) secret: Option<String>,
    /// Byte offset of each line's start, made at the first diagnostic: a config with
    /// thousands of problems is not rescanned from the top for each one.
    pub(super) line_starts: OnceCell<Vec<usize>>,
}

impl Walker<'_> {
    pub(super) fn error(&mut self, span: Range<usize>, message: String, help: Option<String>) {
        let d = self.diagnostic(span, message, help);
        self.diags.push(d);
    }

    /// A problem that does not make the config invalid (see [`Config::warnings`]).
    pub(super) fn warn(&mut self, span: Range<usize>, message: String, help: Option<String>) {
        let d = self.diagnostic(span, message, help);
        self.warnings.push(d);
    }

    pub(super) fn diagnostic(
        &self,
        span: Range<usize>,
        message: String,
        help: Option<String>,
    ) -> Diagnostic {
        let (line, column) = self.line_col(span.start);
        Diagnostic {
            file: self.file.clone(),
            line,
            column,
            secret: self.secret.clone(),
            message,
            help,
        }
    }

    pub(super) fn unknown_keys(&mut self, table: &dyn TableLike, known: &[&str], section: &str) {
        for (key, item) in table.iter() {
            if known.contains(&key) {
                continue;
            }
            let span = table
                .key(key)
                .and_then(|k| k.span())
                .or_else(|| item.span())
                .unwrap_or(0..0);
            let help = match suggest(key, known) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("known keys here: {}", known.join(", ")),
            };
            self.error(
                span,
                format!("unknown key `{key}` in {section}"),
                Some(help),
            );
        }
    }

    /// A string value, with `${VAR}` expanded. Reports a wrong type.
    pub(super) fn string(
        &mut self,
        table: &dyn TableLike,
        key: &str,
    ) -> Option<(String, Range<usize>)> {
        let item = table.get(key)?;
        let span = item.span().unwrap_or(0..0);
        match item.as_str() {
            Some(s) => self.interpolate(s, span.clone()).map(|v| (v, span)),
            None => {
                self.error(
                    span,
                    format!("`{key}` must be a string"),
                    Some(format!("quote it: {key} = \"...\"")),
                );
                None
            }
        }
    }

    pub(super) fn interpolate(&mut self, s: &str, span: Range<usize>) -> Option<String> {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        let mut ok = true;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if let Some(stripped) = after.strip_prefix('$') {
                out.push('$');
                rest = stripped;
            } else if let Some(body) = after.strip_prefix('{') {
                let Some(end) = body.find('}') else {
                    self.error(
                        span.clone(),
                        "unclosed `${` in a string".into(),
                        Some("write ${VAR}, or $$ for a literal $".into()),
                    );
                    return None;
                };
                let var = &body[..end];
                match (self.env)(var) {
                    Some(v) => out.push_str(&v),
                    None => {
                        self.error(
                            span.clone(),
                            format!("environment variable `{var}` is not set"),
                            Some(format!("export {var}=... before running rotor (e.g. source the env file of scripts/dev-services)")),
                        );
                        ok = false;
                    }
                }
                rest = &body[end + 1..];
            } else {
                out.push('$');
                rest = after;
            }
        }
        out.push_str(rest);
        ok.then_some(out)
    }

    pub(super) fn duration(&mut self, table: &dyn TableLike, key: &str) -> Option<Duration> {
        let item = table.get(key)?;
        let span = item.span().unwrap_or(0..0);
        if item.as_integer().is_some() {
            self.error(
                span,
                format!("`{key}` must be a duration string, not a number"),
                Some(format!("write e.g. {key} = \"90d\" (units: w, d, h, m, s)")),
            );
            return None;
        }
        let (s, span) = self.string(table, key)?;
        match Duration::parse(&s) {
            Ok(d) => Some(d),
            Err(e) => {
                self.error(span, format!("`{key}`: {e}"), None);
                None
            }
        }
    }

    /// A point in time a person declares (`last_rotated = "2026-06-01"`): a date (midnight
    /// UTC), an RFC 3339 timestamp with its offset, or the same as a TOML date literal.
    pub(super) fn declared_time(
        &mut self,
        table: &dyn TableLike,
        key: &str,
    ) -> Option<jiff::Timestamp> {
        let item = table.get(key)?;
        let span = item.span().unwrap_or(0..0);
        let text = match item.as_value() {
            Some(Value::String(s)) => s.value().clone(),
            Some(Value::Datetime(d)) => d.value().to_string(),
            _ => String::new(),
        };
        // A bare date is exactly `YYYY-MM-DD`: a time without its offset is ambiguous.
        let parsed = text.parse::<jiff::Timestamp>().ok().or_else(|| {
            let date = (text.len() == 10)
                .then(|| text.parse::<jiff::civil::Date>().ok())
                .flatten()?;
            date.to_zoned(jiff::tz::TimeZone::UTC)
                .ok()
                .map(|z| z.timestamp())
        });
        if parsed.is_none() {
            self.error(
                span,
                format!("`{key}` must be a date or a time with its offset"),
                Some(format!(
                    "write e.g. {key} = \"2026-06-01\" (midnight UTC) or {key} = \"2026-06-01T09:30:00Z\""
                )),
            );
        }
        parsed
    }

    pub(super) fn bool(&mut self, table: &dyn TableLike, key: &str) -> Option<bool> {
        let item = table.get(key)?;
        match item.as_bool() {
            Some(b) => Some(b),
            None => {
                self.error(
                    item.span().unwrap_or(0..0),
                    format!("`{key}` must be true or false"),
                    Some(format!("write {key} = true (no quotes)")),
                );
                None
            }
        }
    }

    pub(super) fn integer(
        &mut self,
        table: &dyn TableLike,
        key: &str,
        min: i64,
        max: i64,
    ) -> Option<i64> {
        let item = table.get(key)?;
        let span = item.span().unwrap_or(0..0);
        match item.as_integer() {
            Some(n) if (min..=max).contains(&n) => Some(n),
            Some(n) => {
                self.error(
                    span,
                    format!("`{key}` = {n} is out of range"),
                    Some(format!("use a number from {min} to {max}")),
                );
                None
            }
            None => {
                self.error(
                    span,
                    format!("`{key}` must be a whole number"),
                    Some(format!("write {key} = 32 (no quotes)")),
                );
                None
            }
        }
    }

    pub(super) fn secret_name(&mut self, table: &dyn TableLike, key: &str) -> Option<SecretName> {
        let (s, span) = self.string(table, key)?;
        match SecretName::new(&s) {
            Ok(n) => Some(n),
            Err(e) => {
                self.error(span, format!("`{key}`: {e}"), None);
                None
            }
        }
    }

    pub(super) fn required_string(
        &mut self,
        t: &dyn TableLike,
        key: &str,
        header: &Range<usize>,
        example: &str,
    ) -> Option<String> {
        if t.get(key).is_none() {
            self.error(
                header.clone(),
                format!("missing `{key}`"),
                Some(format!("add {example}")),
            );
            return None;
        }
        self.string(t, key).map(|(s, _)| s)
    }

    /// The array-of-tables items of `key` (also accepts an inline array of tables).
    pub(super) fn tables<'d>(
        &mut self,
        root: &'d toml_edit::Table,
        key: &str,
    ) -> Vec<&'d dyn TableLike> {
        let Some(item) = root.get(key) else {
            return Vec::new();
        };
        if let Some(aot) = item.as_array_of_tables() {
            return aot.iter().map(|t| t as &dyn TableLike).collect();
        }
        if let Some(arr) = item.as_array() {
            let tables: Vec<&dyn TableLike> = arr
                .iter()
                .filter_map(|v| v.as_inline_table().map(|t| t as &dyn TableLike))
                .collect();
            if tables.len() == arr.len() {
                return tables;
            }
        }
        self.error(
            item.span().unwrap_or(0..0),
            format!("`{key}` must be a list of tables"),
            Some(format!("write each entry as a [[{key}]] section")),
        );
        Vec::new()
    }

    pub(super) fn strings(&mut self, t: &dyn TableLike, key: &str) -> Option<Vec<String>> {
        let item = t.get(key)?;
        let span = item.span().unwrap_or(0..0);
        match item.as_array() {
            Some(arr) if arr.iter().all(|v| v.as_str().is_some()) => {
                let mut out = Vec::new();
                for v in arr.iter().filter_map(|v| v.as_str()) {
                    out.push(self.interpolate(v, span.clone())?);
                }
                Some(out)
            }
            _ => {
                self.error(
                    span,
                    format!("`{key}` must be a list of strings"),
                    Some(format!("write {key} = [\"...\", \"...\"]")),
                );
                None
            }
        }
    }
}

/// The closest known word, if it is close enough to be a typo.
pub(super) fn suggest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(word, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

impl Walker<'_> {
    /// 1-based line and column (in characters) of byte offset `at`.
    fn line_col(&self, at: usize) -> (usize, usize) {
        let at = at.min(self.text.len());
        let starts = self.line_starts.get_or_init(|| {
            std::iter::once(0)
                .chain(self.text.match_indices('\n').map(|(i, _)| i + 1))
                .collect()
        });
        // Lines starting at or before `at`: the first always does.
        let line = starts.partition_point(|&s| s <= at);
        let start = starts.get(line - 1).copied().unwrap_or(0);
        let col = self.text[start..at].chars().count() + 1;
        (line, col)
    }
}
