//! Values written through the API are checked like `rotor put` checks them, and a bad stored
//! key never takes the JWKS down (real listener, real SQLite store).

mod common;

use std::sync::Arc;

use rotor_core::{SecretName, SecretValue};
use rotor_daemon::{Daemon, ServeOptions};
use rotor_engine::SystemClock;

const SECRETS: &str = r#"
[secrets.victim-es256]
kind = "jwt"
algorithm = "ES256"
tier = "high"
automation = "manual"

[secrets.good-es256]
kind = "jwt"
algorithm = "ES256"
tier = "high"
automation = "manual"

[secrets.pg]
kind = "postgres"
url = "postgres://127.0.0.1:5432/app"
role = "app"
tier = "high"
automation = "manual"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_values_are_refused_and_a_bad_stored_key_is_skipped() {
    let (toks, toml) = common::tokens(&[("writer", &["write:*"]), ("rotator", &["rotate:*"])]);
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
    let url = running.url();
    let http = reqwest::Client::new();
    let put = |name: &str, value: &str| {
        http.put(format!("{url}/v1/secrets/{name}/value"))
            .bearer_auth(&toks[0])
            .json(&serde_json::json!({ "value": value }))
            .send()
    };

    // A good key so the JWKS has something to serve.
    let r = http
        .post(format!("{url}/v1/secrets/good-es256/rotate"))
        .bearer_auth(&toks[1])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    for (name, bad) in [
        ("victim-es256", "garbage-key-material-xyz"),
        ("pg", "not json at all"),
        ("pg", r#"{"username": "app"}"#),
    ] {
        let r = put(name, bad).await.unwrap();
        assert_eq!(r.status().as_u16(), 400, "{name}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "invalid_value", "{v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(name), "{msg}");
        assert!(
            !msg.contains(bad),
            "the reason never echoes the value: {msg}"
        );
        let stored = fx
            .store
            .versions(&SecretName::new(name).unwrap())
            .await
            .unwrap();
        assert!(stored.is_empty(), "nothing stored for {name}");
    }
    let r = put("pg", r#"{"username": "app", "password": "pw-0123456789"}"#)
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    // A bad key that reached the store another way (an older rotor, a restored backup).
    running
        .engine()
        .put(
            "victim-es256",
            SecretValue::from_slice(b"not a key"),
            serde_json::json!({}),
            Some("test: a key stored before values were checked"),
        )
        .await
        .unwrap();
    let r = http
        .get(format!("{url}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "one bad key never fails the JWKS");
    let jwks: serde_json::Value = r.json().await.unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1, "{jwks}");
    let r = http
        .get(format!("{url}/v1/secrets/victim-es256/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let metrics = http
        .get(format!("{url}/metrics"))
        .bearer_auth(&toks[0])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("rotor_jwks_skipped_keys_total{secret=\"victim-es256\""))
        .unwrap_or_else(|| panic!("no skip counter in\n{metrics}"));
    assert!(line.ends_with(" 2"), "{line}");
    running.stop().await;
}
