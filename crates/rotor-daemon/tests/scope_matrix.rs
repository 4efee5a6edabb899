//! The scope matrix: every token kind against every guarded endpoint, on a real listener over
//! a real SQLite store. Each row says who may do what; the test counts the cases it tried and
//! checks that every one was allowed or denied as the row says.

mod common;

use std::sync::Arc;

use rotor_daemon::{Daemon, Running, ServeOptions};
use rotor_engine::SystemClock;

const SECRETS: &str = r#"
[secrets.app-key]
kind = "random"
tier = "high"
automation = "manual"

[secrets.refresh-pepper]
kind = "random"
tier = "high"
automation = "manual"
requires_confirmation = true

[secrets.other-key]
kind = "random"
tier = "high"
automation = "manual"
"#;

const TOKENS: &[(&str, &[&str])] = &[
    ("reader", &["read:app-*"]),
    ("rotator", &["rotate:*"]),
    ("confirmer", &["rotate:*", "confirm:refresh-pepper"]),
    ("emergency", &["emergency:app-*"]),
    ("writer", &["write:other-*"]),
    ("admin", &["admin"]),
];

struct Matrix {
    _fx: common::Fixture,
    running: Running,
    url: String,
    tokens: Vec<(String, String)>,
    http: reqwest::Client,
}

async fn start() -> Matrix {
    let (toks, toml) = common::tokens(TOKENS);
    let fx = common::fixture(&format!("{SECRETS}\n{toml}"));
    let engine = fx.engine(Arc::new(SystemClock), None);
    let running = Daemon::new(engine, Arc::new(SystemClock))
        .start(ServeOptions {
            listen: Some("127.0.0.1:0".parse().expect("loopback listen address")),
            scheduler: None,
            ..ServeOptions::default()
        })
        .await
        .expect("start the daemon");
    let url = running.url();
    let tokens = TOKENS
        .iter()
        .map(|(n, _)| (*n).to_owned())
        .zip(toks)
        .collect();
    Matrix {
        _fx: fx,
        running,
        url,
        tokens,
        http: reqwest::Client::new(),
    }
}

impl Matrix {
    fn token(&self, name: &str) -> &str {
        &self
            .tokens
            .iter()
            .find(|(n, _)| n == name)
            .expect("a token of this name in TOKENS")
            .1
    }

    async fn call(
        &self,
        who: &str,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("HTTP method name");
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(self.token(who));
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.expect("send request to the daemon");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("read the daemon's response body");
        (status, serde_json::from_str(&text).unwrap_or_default())
    }
}

/// What a case must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// The scope check passes: 2xx, or a conflict of the secret's state (never 401/403/404).
    Allow,
    /// 403 `forbidden`: the token sees the secret but lacks the scope.
    Deny,
    /// 404 exactly as for a secret that does not exist: the token cannot see the secret.
    Hide,
}
use Want::{Allow, Deny, Hide};

/// `(token, method, path, body, want)`.
type Case = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    Want,
);

const ROTATE: &str = "/v1/secrets/app-key/rotate";
const PEPPER: &str = "/v1/secrets/refresh-pepper/rotate";
const CONFIRM: Option<&str> = Some(r#"{"confirm": true}"#);
const EMERGENCY: Option<&str> = Some(r#"{"emergency": true}"#);
const EMERGENCY_CONFIRM: Option<&str> = Some(r#"{"emergency": true, "confirm": true}"#);
const VALUE: Option<&str> = Some(r#"{"value": "a-value-long-enough-0123456789"}"#);

const CASES: &[Case] = &[
    // Ordinary rotations: rotate scope.
    ("rotator", "POST", ROTATE, None, Allow),
    ("reader", "POST", ROTATE, None, Deny),
    ("writer", "POST", ROTATE, None, Hide),
    ("emergency", "POST", ROTATE, None, Deny),
    // Confirmation-guarded secret: rotate alone is not enough, even with "confirm": true.
    ("rotator", "POST", PEPPER, CONFIRM, Deny),
    ("rotator", "POST", PEPPER, None, Deny),
    ("confirmer", "POST", PEPPER, CONFIRM, Allow),
    ("emergency", "POST", PEPPER, CONFIRM, Hide),
    ("admin", "POST", PEPPER, CONFIRM, Allow),
    // Emergencies: emergency scope only.
    ("rotator", "POST", ROTATE, EMERGENCY, Deny),
    ("confirmer", "POST", ROTATE, EMERGENCY, Deny),
    ("emergency", "POST", ROTATE, EMERGENCY, Allow),
    (
        "emergency",
        "POST",
        "/v1/secrets/other-key/rotate",
        EMERGENCY,
        Hide,
    ),
    ("confirmer", "POST", PEPPER, EMERGENCY_CONFIRM, Deny),
    ("admin", "POST", ROTATE, EMERGENCY, Allow),
    // Values.
    ("reader", "GET", "/v1/secrets/app-key/value", None, Allow),
    ("reader", "GET", "/v1/secrets/other-key/value", None, Hide),
    ("rotator", "GET", "/v1/secrets/app-key/value", None, Deny),
    ("emergency", "GET", "/v1/secrets/app-key/value", None, Deny),
    ("admin", "GET", "/v1/secrets/app-key/value", None, Allow),
    // Writes.
    ("writer", "PUT", "/v1/secrets/other-key/value", VALUE, Allow),
    ("writer", "PUT", "/v1/secrets/app-key/value", VALUE, Hide),
    ("rotator", "PUT", "/v1/secrets/other-key/value", VALUE, Deny),
    // Metadata: only secrets within the token's scopes.
    ("reader", "GET", "/v1/secrets/app-key", None, Allow),
    ("reader", "GET", "/v1/secrets/refresh-pepper", None, Hide),
    ("writer", "GET", "/v1/secrets/app-key", None, Hide),
    ("emergency", "GET", "/v1/secrets/app-key", None, Allow),
    // The audit log.
    ("rotator", "GET", "/v1/audit", None, Deny),
    ("reader", "GET", "/v1/audit", None, Deny),
    ("admin", "GET", "/v1/audit", None, Allow),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scope_allows_exactly_its_actions() {
    let m = start().await;
    // What a secret that does not exist answers, per endpoint shape.
    let mut tried = 0;
    let mut wrong = Vec::new();
    for (who, method, path, body, want) in CASES {
        let parsed = body.map(|b| serde_json::from_str(b).unwrap());
        let (status, v) = m.call(who, method, path, parsed).await;
        tried += 1;
        let ok = match want {
            Allow => !matches!(status, 401 | 403 | 404) && status < 500,
            Deny => status == 403 && v["error"]["code"] == "forbidden",
            Hide => {
                let ghost = path.replace(secret_of(path), "no-such-secret");
                let (gs, gv) = m
                    .call(
                        who,
                        method,
                        &ghost,
                        body.map(|b| serde_json::from_str(b).unwrap()),
                    )
                    .await;
                let same = |x: &serde_json::Value| {
                    x["error"]["message"]
                        .as_str()
                        .map(|t| t.replace(secret_of(path), "no-such-secret"))
                };
                status == 404
                    && gs == 404
                    && v["error"]["code"] == gv["error"]["code"]
                    && same(&v) == same(&gv)
            }
        };
        if !ok {
            wrong.push(format!(
                "{who} {method} {path} (want {want:?}): {status} {v}"
            ));
        }
    }
    println!(
        "scope matrix: {tried} cases tried, {} answered as the matrix says",
        tried - wrong.len()
    );
    assert!(
        wrong.is_empty(),
        "cases answered wrongly:\n{}",
        wrong.join("\n")
    );

    // Lists: each token sees exactly the secrets its scopes match.
    for (who, want) in [
        ("reader", vec!["app-key"]),
        ("writer", vec!["other-key"]),
        ("confirmer", vec!["app-key", "other-key", "refresh-pepper"]),
    ] {
        let (s, v) = m.call(who, "GET", "/v1/secrets", None).await;
        assert_eq!(s, 200);
        let mut names: Vec<&str> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        names.sort_unstable();
        assert_eq!(names, want, "{who}");
    }
    m.running.stop().await;
}

/// The secret name in an API path.
fn secret_of(path: &str) -> &str {
    path.trim_start_matches("/v1/secrets/")
        .split('/')
        .next()
        .expect("split yields at least one part")
}
