//! Security headers on every answer, in one place.
//!
//! - every answer: `X-Content-Type-Options: nosniff` (a JSON body is never sniffed as HTML);
//! - HTML (the console): a CSP that allows only rotor's own CSS and JS and forms posted back
//!   to rotor, and forbids framing (`frame-ancestors 'none'`, and `X-Frame-Options: DENY` for
//!   old browsers), `Referrer-Policy: same-origin` (the console's sign-in checks the origin
//!   of a form post; nothing leaves for other sites), and `Cache-Control: no-store` (it lists
//!   secret names);
//! - over TLS: `Strict-Transport-Security`, so a browser never falls back to plain HTTP.
//!
//! `Cache-Control` set by a handler (the JWKS endpoints' public max-age, `no-store` on
//! metadata, audit and values) is left alone.

use axum::http::{HeaderValue, header};
use axum::response::Response;

/// The console's policy: its resources and form targets are rotor's own (`console/static/`).
pub const PAGE_CSP: &str =
    "default-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
/// One year, the usual HSTS max-age.
pub const HSTS: &str = "max-age=31536000";

/// Adds the headers to `resp`; `tls` when the listener serves HTTPS.
pub fn secure(mut resp: Response, tls: bool) -> Response {
    let is_html = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if is_html {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(PAGE_CSP),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if tls {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
    resp
}
