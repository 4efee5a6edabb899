//! `GET /`: a small HTML status page (a table of secrets and states; no values, no JS).
//!
//! It only formats the rows of `engine.status()`: the state word (its CSS class), the label,
//! reason and hint are the ones `rotor status` prints.

use std::fmt::Write as _;

use jiff::Timestamp;
use rotor_core::schedule::short;
use rotor_engine::StatusRow;

pub(super) fn render(rows: &[StatusRow], now: Timestamp) -> String {
    let mut h = String::with_capacity(1024 + rows.len() * 300);
    h.push_str(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>rotor</title>",
    );
    h.push_str("<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left}.overdue,.failed,.retire-due{color:#b00}.due,.in-progress,.in-grace{color:#a60}.ok{color:#070}</style>");
    h.push_str("</head><body><h1>rotor</h1>");
    let _ = write!(h, "<p>{} secrets at {}</p>", rows.len(), short(now));
    h.push_str("<table><thead><tr><th>secret</th><th>kind</th><th>tier</th><th>automation</th><th>state</th><th>last rotated</th><th>next due</th><th>notes</th></tr></thead><tbody>");
    for r in rows {
        let s = &r.standing;
        let last = match s.last_rotated {
            Some(t) if s.last_rotated_declared => format!("{} (declared)", short(t)),
            Some(t) => short(t),
            None => "never".into(),
        };
        let notes: Vec<String> = [s.reason.clone(), s.hint.clone()]
            .into_iter()
            .flatten()
            .collect();
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(r.name.as_str()),
            r.kind.as_str(),
            r.tier.map_or("-", |t| t.as_str()),
            r.automation.as_str(),
            s.state.as_str(),
            esc(&s.label),
            last,
            short(s.next_due),
            esc(&notes.join("; ")),
        );
    }
    h.push_str("</tbody></table><p><a href=\"/metrics\">metrics</a> · <a href=\"/.well-known/jwks.json\">JWKS</a></p></body></html>\n");
    h
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
