//! Tables and JSON for command output.

use std::io::Write;

use jiff::Timestamp;
use serde::Serialize;

use crate::cli::Format;

/// Prints `rows` as an aligned table (header first) or, in JSON mode, `json` pretty-printed.
pub fn print<T: Serialize>(
    format: Format,
    header: &[&str],
    rows: Vec<Vec<String>>,
    json: &T,
) -> anyhow::Result<()> {
    // Buffered: stdout is line-buffered, and a row per write(2) was 10,000 system calls
    // for a 10,000-secret `rotor status`.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, json)?;
            writeln!(out)?;
        }
        Format::Table => {
            let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
            for row in &rows {
                for (i, cell) in row.iter().enumerate() {
                    if let Some(w) = widths.get_mut(i) {
                        *w = (*w).max(cell.chars().count());
                    }
                }
            }
            // One line buffer for every row (a 10,000-secret status is 80,000 cells).
            let mut line = String::new();
            let mut put = |out: &mut dyn Write, cells: &mut dyn ExactSizeIterator<Item = &str>| {
                use std::fmt::Write as _;
                line.clear();
                let n = cells.len();
                for (i, c) in cells.enumerate() {
                    if i + 1 == n {
                        line.push_str(c);
                    } else {
                        let _ = write!(line, "{c:<w$}  ", w = widths[i]);
                    }
                }
                writeln!(out, "{}", line.trim_end())
            };
            put(&mut out, &mut header.iter().copied())?;
            for row in &rows {
                put(&mut out, &mut row.iter().map(String::as_str))?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// A timestamp to the second, UTC (as every surface prints it), or `-`.
pub fn time(t: Option<Timestamp>) -> String {
    t.map_or_else(|| "-".into(), rotor_core::schedule::short)
}

/// A span of seconds as `3d4h`, `5m`, `12s`.
pub fn age(secs: Option<i64>) -> String {
    let Some(secs) = secs else { return "-".into() };
    let secs = secs.max(0);
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3_600, secs % 3_600 / 60);
    if d > 0 {
        format!("{d}d{h}h")
    } else if h > 0 {
        format!("{h}h{m}m")
    } else if m > 0 {
        format!("{m}m")
    } else {
        format!("{secs}s")
    }
}
