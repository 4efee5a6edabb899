//! The HTTP API on a real listener (port 0) over a real SQLite store.

mod common;

use std::sync::Arc;
use std::time::Duration;

use rotor_core::Stage;
use rotor_daemon::{Client, ClientError, Daemon, Running, ServeOptions};
use rotor_engine::SystemClock;

const SECRETS: &str = r#"
[secrets.app-key]
kind = "random"
tier = "high"
automation = "manual"
grace = "1h"

[secrets.jwt-es]
kind = "jwt"
algorithm = "ES256"
tier = "high"
jwks_max_age = "0s"
automation = "manual"
grace = "1h"

[secrets.jwt-hs]
kind = "jwt"
algorithm = "HS256"
tier = "high"
automation = "manual"

[secrets.manual-api]
kind = "manual"
tier = "medium"
"#;

struct Api {
    _fx: common::Fixture,
    running: Running,
    url: String,
    reader: String,
    rotator: String,
    writer: String,
    admin: String,
    meta: String,
    http: reqwest::Client,
}

async fn start() -> Api {
    let (t, toml) = common::tokens(&[
        ("reader", &["read:app-*"]),
        ("rotator", &["rotate:*"]),
        ("writer", &["write:manual-*"]),
        ("admin", &["admin"]),
        ("meta", &["read:nothing-*"]),
    ]);
    let fx = common::fixture(&format!("{SECRETS}\n{toml}"));
    let engine = fx.engine(Arc::new(SystemClock), None);
    let daemon = Daemon::new(engine, Arc::new(SystemClock));
    let running = daemon
        .start(ServeOptions {
            listen: Some("127.0.0.1:0".parse().expect("loopback listen address")),
            scheduler: None,
            ..ServeOptions::default()
        })
        .await
        .expect("start the daemon");
    let url = running.url();
    let mut t = t.into_iter();
    Api {
        _fx: fx,
        running,
        url,
        reader: t.next().expect("token reader"),
        rotator: t.next().expect("token rotator"),
        writer: t.next().expect("token writer"),
        admin: t.next().expect("token admin"),
        meta: t.next().expect("token meta"),
        http: reqwest::Client::new(),
    }
}

impl Api {
    async fn req(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut r = self.http.request(method, format!("{}{path}", self.url));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.expect("send request to the daemon");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("read the daemon's response body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }
    async fn get(&self, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
        self.req(reqwest::Method::GET, path, token, None).await
    }
}

fn code(v: &serde_json::Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<none>")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_scopes_and_values() {
    let api = start().await;
    // Rotate app-key so it has a value (rotate scope).
    let (s, v) = api
        .req(
            reqwest::Method::POST,
            "/v1/secrets/app-key/rotate",
            Some(&api.rotator),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["outcome"], "completed");

    // No token → 401, bad token → 401, both with stable JSON codes.
    let (s, v) = api.get("/v1/secrets", None).await;
    assert_eq!((s, code(&v)), (401, "unauthorized"));
    assert!(v["error"]["message"].as_str().unwrap().contains("Bearer"));
    let (s, v) = api.get("/v1/secrets", Some("rtr_not-a-token")).await;
    assert_eq!((s, code(&v)), (401, "unauthorized"));

    // A token sees the metadata of the secrets its scopes match, and nothing of the others.
    let (s, v) = api.get("/v1/secrets", Some(&api.admin)).await;
    assert_eq!(s, 200);
    assert_eq!(v.as_array().unwrap().len(), 4);
    let (s, v) = api.get("/v1/secrets", Some(&api.meta)).await;
    assert_eq!((s, v.as_array().unwrap().len()), (200, 0), "{v}");
    let (s, v) = api.get("/v1/secrets", Some(&api.reader)).await;
    assert_eq!((s, v.as_array().unwrap().len()), (200, 1), "{v}");
    assert_eq!(v[0]["name"], "app-key");
    let (s, v) = api.get("/v1/secrets/app-key", Some(&api.meta)).await;
    assert_eq!((s, code(&v)), (404, "not_found"));
    let (s, v) = api.get("/v1/secrets/app-key", Some(&api.reader)).await;
    assert_eq!(s, 200);
    assert_eq!(v["versions"].as_array().unwrap().len(), 1);
    assert!(
        v.to_string().find("\"value\"").is_none(),
        "metadata has no value: {v}"
    );

    // Values only with a read scope that matches.
    let (s, v) = api.get("/v1/secrets/app-key/value", Some(&api.meta)).await;
    assert_eq!((s, code(&v)), (404, "not_found"));
    let (s, v) = api
        .get("/v1/secrets/app-key/value", Some(&api.rotator))
        .await;
    assert_eq!((s, code(&v)), (403, "forbidden"));
    let (s, v) = api
        .get("/v1/secrets/app-key/value?stage=current", Some(&api.reader))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["stage"], "current");
    let value = v["value"].as_str().unwrap().to_owned();
    assert!(value.len() >= 22);
    let (s, v) = api
        .get(
            "/v1/secrets/app-key/value?stage=previous",
            Some(&api.reader),
        )
        .await;
    assert_eq!((s, code(&v)), (404, "no_value"));
    let (s, v) = api
        .get("/v1/secrets/app-key/value?stage=latest", Some(&api.reader))
        .await;
    assert_eq!((s, code(&v)), (400, "bad_request"));
    // Admin reads everything.
    let (s, _) = api.get("/v1/secrets/app-key/value", Some(&api.admin)).await;
    assert_eq!(s, 200);

    // Rotate needs rotate scope; put needs write scope.
    let (s, v) = api
        .req(
            reqwest::Method::POST,
            "/v1/secrets/app-key/rotate",
            Some(&api.reader),
            None,
        )
        .await;
    assert_eq!((s, code(&v)), (403, "forbidden"));
    let put =
        serde_json::json!({"value": "sg-secret-value-1234567890", "reason": "vendor rotated it"});
    let (s, v) = api
        .req(
            reqwest::Method::PUT,
            "/v1/secrets/manual-api/value",
            Some(&api.reader),
            Some(put.clone()),
        )
        .await;
    // The reader cannot see manual-api at all: it answers like a secret that does not exist.
    assert_eq!((s, code(&v)), (404, "not_found"));
    let (s, v) = api
        .req(
            reqwest::Method::PUT,
            "/v1/secrets/manual-api/value",
            Some(&api.writer),
            Some(put),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    // A manual secret cannot be rotated by rotor: a clear conflict.
    let (s, v) = api
        .req(
            reqwest::Method::POST,
            "/v1/secrets/manual-api/rotate",
            Some(&api.rotator),
            None,
        )
        .await;
    assert_eq!((s, code(&v)), (409, "manual_kind"));
    // In grace: another rotation is refused with its own code.
    for want in ["completed", "in-grace"] {
        let (s, v) = api
            .req(
                reqwest::Method::POST,
                "/v1/secrets/jwt-es/rotate",
                Some(&api.rotator),
                None,
            )
            .await;
        assert_eq!((s, v["outcome"].as_str()), (200, Some(want)), "{v}");
    }
    let (s, v) = api
        .req(
            reqwest::Method::POST,
            "/v1/secrets/jwt-es/rotate",
            Some(&api.rotator),
            None,
        )
        .await;
    assert_eq!((s, code(&v)), (409, "grace_not_over"));

    // The audit log: admin only; it never holds the value.
    let (s, v) = api.get("/v1/audit?n=50", Some(&api.rotator)).await;
    assert_eq!((s, code(&v)), (403, "forbidden"));
    let (s, v) = api.get("/v1/audit?n=50", Some(&api.admin)).await;
    assert_eq!(s, 200);
    assert!(v.as_array().unwrap().len() >= 3);
    assert!(!v.to_string().contains(&value));
    assert!(!v.to_string().contains("sg-secret-value"));

    // Rotation records by id.
    let (_, row) = api.get("/v1/secrets/app-key", Some(&api.reader)).await;
    let rid = row["last_rotation"]["id"].as_str().unwrap().to_owned();
    let (s, v) = api
        .get(&format!("/v1/rotations/{rid}"), Some(&api.reader))
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["secret"], "app-key");
    let (s, v) = api
        .get(&format!("/v1/rotations/{rid}"), Some(&api.meta))
        .await;
    assert_eq!((s, code(&v)), (404, "not_found"));
    let (s, v) = api.get("/v1/rotations/not_a_uuid!", Some(&api.meta)).await;
    assert_eq!((s, code(&v)), (400, "bad_request"));

    // The client speaks the same API.
    let client = Client::new(&api.url, &api.reader).unwrap();
    let fetched = client.get_value("app-key", Stage::Current).await.unwrap();
    assert_eq!(fetched.value.expose_str().unwrap(), value);
    assert_eq!(client.status().await.unwrap().len(), 1);
    match client.rotate("app-key", false, Some("x"), false).await {
        Err(ClientError::Api {
            status: 403, code, ..
        }) => assert_eq!(code, "forbidden"),
        other => panic!("{other:?}"),
    }
    let out = Client::new(&api.url, &api.rotator)
        .unwrap()
        .rotate("jwt-hs", false, Some("client"), false)
        .await
        .unwrap();
    assert_eq!(out["outcome"], "completed");
    api.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_limits_and_names() {
    let api = start().await;
    // Bad secret name → 400 with a clear message.
    let (s, v) = api.get("/v1/secrets/bad%20name", Some(&api.meta)).await;
    assert_eq!((s, code(&v)), (400, "bad_name"));
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("letters, digits"),
        "{v}"
    );
    let (s, v) = api.get("/v1/secrets/-dash/value", Some(&api.admin)).await;
    assert_eq!((s, code(&v)), (400, "bad_name"));
    // Unknown secret → 404 with a suggestion, but only of a name the caller may see.
    let (s, v) = api.get("/v1/secrets/app-kye", Some(&api.admin)).await;
    assert_eq!((s, code(&v)), (404, "not_found"));
    assert!(v["error"]["message"].as_str().unwrap().contains("app-key"));
    let (s, v) = api.get("/v1/secrets/app-kye", Some(&api.meta)).await;
    assert_eq!((s, code(&v)), (404, "not_found"));
    assert!(!v.to_string().contains("app-key"), "{v}");
    // Body size limit.
    let big = serde_json::json!({"value": "x".repeat(100 * 1024)});
    let (s, v) = api
        .req(
            reqwest::Method::PUT,
            "/v1/secrets/manual-api/value",
            Some(&api.admin),
            Some(big),
        )
        .await;
    assert_eq!((s, code(&v)), (413, "payload_too_large"));
    // Bad JSON: where, never what.
    let resp = api
        .http
        .put(format!("{}/v1/secrets/manual-api/value", api.url))
        .bearer_auth(&api.admin)
        .body("{\"value\": 12345678}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let text = resp.text().await.unwrap();
    assert!(!text.contains("12345678"), "{text}");
    // Unknown routes are JSON 404s.
    let (s, v) = api.get("/v2/nothing", None).await;
    assert_eq!((s, code(&v)), (404, "not_found"));
    api.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_jwks_page_and_watch() {
    let api = start().await;
    let (s, v) = api.get("/healthz", None).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("ok")));
    let (s, v) = api.get("/readyz", None).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("ready")));

    // Watch: subscribe, rotate, see the stage change within a second.
    let mut watch = api
        .http
        .get(format!("{}/v1/watch", api.url))
        .bearer_auth(&api.rotator)
        .send()
        .await
        .unwrap();
    assert_eq!(watch.status().as_u16(), 200);
    let first = tokio::time::timeout(Duration::from_secs(5), watch.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&first).contains("event: ready"));
    let unauth = api.get("/v1/watch", None).await;
    assert_eq!(unauth.0, 401);

    let (s, v) = api
        .req(
            reqwest::Method::POST,
            "/v1/secrets/jwt-es/rotate",
            Some(&api.rotator),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let version = v["version"].as_str().unwrap().to_owned();
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    while !seen.contains("stage_change\ndata:") || !seen.contains(&version) {
        let chunk = tokio::time::timeout_at(deadline, watch.chunk())
            .await
            .expect("a stage change within a second")
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let data = seen
        .lines()
        .find(|l| l.starts_with("data:") && l.contains("jwt-es"))
        .unwrap();
    let ev: serde_json::Value =
        serde_json::from_str(data.trim_start_matches("data:").trim()).unwrap();
    assert_eq!(ev["secret"], "jwt-es");
    assert_eq!(ev["stage_change"], "finished");
    assert_eq!(ev["version"], version.as_str());

    // JWKS: the ES256 key is public, the HS256 one never appears.
    let resp = api
        .http
        .get(format!("{}/.well-known/jwks.json", api.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let cc = resp.headers()["cache-control"].to_str().unwrap().to_owned();
    // jwks_max_age = "0s" (so the rotation above needs no prepublish): nothing is cached.
    assert_eq!(cc, "no-cache");
    let jwks: serde_json::Value = resp.json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kty"], "EC");
    assert!(keys[0].get("d").is_none());
    let resp = api
        .http
        .get(format!("{}/v1/secrets/jwt-es/jwks.json", api.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["cache-control"], "no-cache");
    let one: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(one["keys"][0]["kid"], keys[0]["kid"]);
    let (s, v) = api.get("/v1/secrets/jwt-hs/jwks.json", None).await;
    assert_eq!((s, code(&v)), (404, "not_found"));

    // The console's overview: names and states, no values.
    let value = api
        .get("/v1/secrets/jwt-es/value", Some(&api.admin))
        .await
        .1["value"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, v) = api.get("/", None).await;
    assert_eq!(
        (s, code(&v)),
        (401, "unauthorized"),
        "the page needs a token by default"
    );
    let page = api
        .http
        .get(format!("{}/", api.url))
        .bearer_auth(&api.admin)
        .send()
        .await
        .unwrap();
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(
        html.contains("<table class=\"secrets\">")
            && html.contains("jwt-es")
            && html.contains("manual-api")
    );
    assert!(!html.contains(&value));
    // Scripts only from rotor itself (no inline code, no CDN).
    assert!(!html.contains("<script>") && !html.contains("https://"));
    api.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_names_and_promtool() {
    let api = start().await;
    let (s, _) = api
        .req(
            reqwest::Method::POST,
            "/v1/secrets/app-key/rotate",
            Some(&api.rotator),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (s, v) = api.get("/metrics", None).await;
    assert_eq!(
        (s, code(&v)),
        (401, "unauthorized"),
        "metrics need a token by default"
    );
    let resp = api
        .http
        .get(format!("{}/metrics", api.url))
        .bearer_auth(&api.admin)
        .send()
        .await
        .unwrap();
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let body = resp.text().await.unwrap();
    for name in [
        "secret_last_rotated_timestamp{secret=\"app-key\",tier=\"high\",kind=\"random\"}",
        "secret_next_due_timestamp{",
        "secret_rotation_deadline_timestamp{",
        "# TYPE secret_overdue gauge",
        "# TYPE secret_rotation_failures_total counter",
        "secret_rotation_duration_seconds_bucket{kind=\"random\",le=\"+Inf\"} 1",
        "secret_rotation_duration_seconds_count{kind=\"random\"} 1",
        "rotor_secrets{state=\"ok\"}",
        "rotor_secrets{state=\"failed\"} 0",
        "rotor_up 1",
        "rotor_audit_head_seq{hash=\"",
    ] {
        assert!(body.contains(name), "missing {name} in\n{body}");
    }
    // Flags are present only while they hold, and no histogram is kept per secret.
    for absent in [
        "secret_rotation_in_progress{secret=\"app-key\"",
        "secret_rotation_failed{secret=\"app-key\"",
        "secret_rotation_duration_seconds_count{secret=",
        " 0\nsecret_overdue",
    ] {
        assert!(!body.contains(absent), "unexpected {absent} in\n{body}");
    }
    let mut child = std::process::Command::new(common::promtool())
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    api.running.stop().await;
}

#[test]
fn alert_rules_pass_promtool() {
    let fx = common::fixture(&format!("[tiers]\nhigh = \"30d\"\n{SECRETS}"));
    let rules = rotor_daemon::alert_rules(&fx.config);
    assert!(rules.contains("alert: SecretRotationOverdue"));
    assert!(
        rules.contains("(time() - secret_last_rotated_timestamp{tier=\"high\"}) > 30 * 24 * 3600")
    );
    assert!(rules.contains("alert: SecretRotationFailed"));
    assert!(rules.contains("severity: critical"));
    let path = fx.path().join("rules.yml");
    std::fs::write(&path, &rules).unwrap();
    let out = std::process::Command::new(common::promtool())
        .args(["check", "rules"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check rules: {}{}\n{rules}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
