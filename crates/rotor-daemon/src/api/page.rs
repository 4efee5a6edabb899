//! `GET /`: a small HTML status page (a table of secrets and states; no values, no JS).

use std::fmt::Write as _;

use jiff::Timestamp;
use rotor_engine::StatusRow;

pub(super) fn render(rows: &[StatusRow], held_failed: &[String], now: Timestamp) -> String {
    let mut h = String::with_capacity(1024 + rows.len() * 200);
    h.push_str(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>rotor</title>",
    );
    h.push_str("<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left}.overdue,.failed{color:#b00}.due{color:#a60}.ok{color:#070}</style>");
    h.push_str("</head><body><h1>rotor</h1>");
    let _ = write!(h, "<p>{} secrets at {}</p>", rows.len(), now);
    h.push_str("<table><thead><tr><th>secret</th><th>kind</th><th>tier</th><th>automation</th><th>state</th><th>last rotated</th><th>next due</th></tr></thead><tbody>");
    for r in rows {
        let state = if held_failed.iter().any(|n| n == r.name.as_str()) {
            "failed (held)".to_owned()
        } else {
            r.state.as_str().to_owned()
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(r.name.as_str()),
            r.kind.as_str(),
            r.tier.map_or("-", |t| t.as_str()),
            r.automation.as_str(),
            r.state.as_str(),
            esc(&state),
            r.last_rotated.map_or("never".into(), |t| t.to_string()),
            r.next_due.map_or("-".into(), |t| t.to_string()),
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
