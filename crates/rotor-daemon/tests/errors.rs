//! Every error the API answers is the documented JSON object with a stable code, rejections
//! of the framework included; and the response headers each kind of answer needs.

mod common;

use std::io::{Read as _, Write as _};
use std::sync::Arc;

use rotor_daemon::{Daemon, ServeOptions};
use rotor_engine::SystemClock;

const SECRETS: &str = r#"
[secrets.app-key]
kind = "random"
tier = "high"
automation = "manual"
"#;

/// Sends `raw` as the whole request and returns (status, headers, body).
fn raw(addr: std::net::SocketAddr, request: &[u8]) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the daemon");
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .expect("set the read timeout of the raw connection");
    s.write_all(request).expect("write the raw request");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_one_json_shape_and_headers_fit_the_answer() {
    let (toks, toml) = common::tokens(&[("admin", &["admin"])]);
    let fx = common::fixture(&format!("{SECRETS}\n{toml}"));
    let engine = fx.engine(Arc::new(SystemClock), None);
    let running = Daemon::new(engine, Arc::new(SystemClock))
        .start(ServeOptions {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            scheduler: None,
            ..ServeOptions::default()
        })
        .await
        .unwrap();
    let addr = running.addr();
    let token = toks[0].clone();
    let cases: Vec<(String, u16, &str)> = vec![
        (
            "GET /v1/secrets/app-key/value?stage=current&stage=previous".into(),
            400,
            "bad_query",
        ),
        ("GET /v1/audit?n=lots".into(), 400, "bad_query"),
        ("GET /v1/secrets/%FF%FE".into(), 400, "bad_path"),
        (
            "DELETE /v1/secrets/app-key".into(),
            405,
            "method_not_allowed",
        ),
        ("POST /healthz".into(), 405, "method_not_allowed"),
        ("GET /v2/nothing".into(), 404, "not_found"),
        ("GET /v1/secrets/no-such".into(), 404, "not_found"),
    ];
    let mut tried = 0;
    for (line, status, code) in &cases {
        let req = format!(
            "{line} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        );
        let (got, head, body) = tokio::task::spawn_blocking(move || raw(addr, req.as_bytes()))
            .await
            .unwrap();
        tried += 1;
        assert_eq!(got, *status, "{line}: {head}\n{body}");
        assert!(
            head.contains("content-type: application/json"),
            "{line}: {head}"
        );
        let v: serde_json::Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{line}: not JSON ({e}): {body}"));
        assert_eq!(v["error"]["code"], *code, "{line}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    println!("error shapes: {tried} cases tried");

    // Headers: metadata and audit are never cached.
    let http = reqwest::Client::new();
    for path in ["/v1/secrets", "/v1/secrets/app-key", "/v1/audit"] {
        let r = http
            .get(format!("{}{path}", running.url()))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
        assert_eq!(r.headers()["cache-control"], "no-store", "{path}");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{path}");
    }
    // The HTML page: CSP with frame-ancestors, nosniff, referrer policy; no HSTS over HTTP.
    let r = http
        .get(format!("{}/", running.url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let h = r.headers();
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(csp.contains("form-action 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "same-origin");
    assert_eq!(h["cache-control"], "no-store");
    assert!(h.get("strict-transport-security").is_none());
    running.stop().await;
}
