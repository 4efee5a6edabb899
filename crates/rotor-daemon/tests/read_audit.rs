//! Every value read through the API is on the audit record: the first at once, repeats as
//! counts, none lost when the daemon stops.

mod common;

use std::sync::Arc;

use rotor_daemon::{Daemon, ServeOptions};
use rotor_engine::SystemClock;

const SECRETS: &str = r#"
[secrets.app-key]
kind = "random"
tier = "high"
automation = "manual"
"#;

/// `(actor, version, reason)` of every `secret.read` record.
async fn reads(store: &Arc<dyn rotor_core::Store>) -> Vec<(String, String, String)> {
    store
        .audit_all()
        .await
        .expect("read the whole audit log")
        .into_iter()
        .filter(|r| r.event.action == "secret.read")
        .map(|r| {
            (
                r.event.actor.clone(),
                r.event
                    .versions
                    .first()
                    .expect("secret.read record names a version")
                    .to_string(),
                r.event.reason.clone().unwrap_or_default(),
            )
        })
        .collect()
}

fn count(reason: &str) -> u64 {
    reason
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("count="))
        .expect("read record's reason has count=")
        .parse()
        .expect("count= is a number")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_reads_are_recorded_first_at_once_then_counted() {
    let (toks, toml) = common::tokens(&[("reader", &["read:*"]), ("ops", &["rotate:*"])]);
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
    let r = http
        .post(format!("{url}/v1/secrets/app-key/rotate"))
        .bearer_auth(&toks[1])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        reads(&fx.store).await.is_empty(),
        "a rotation is not a read"
    );

    let mut version = String::new();
    for i in 0..5 {
        let v: serde_json::Value = http
            .get(format!("{url}/v1/secrets/app-key/value"))
            .bearer_auth(&toks[0])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        version = v["version"].as_str().unwrap().to_owned();
        if i == 0 {
            // The first read is on the record before its answer arrived.
            let now = reads(&fx.store).await;
            assert_eq!(now.len(), 1, "{now:?}");
            assert_eq!(now[0].0, "token reader");
            assert_eq!(now[0].1, version);
            assert_eq!(now[0].2, "stage=current channel=api count=1");
        }
    }
    running.stop().await;
    let all = reads(&fx.store).await;
    let total: u64 = all.iter().map(|r| count(&r.2)).sum();
    assert_eq!(total, 5, "every read is counted: {all:?}");
    assert!(all.iter().all(|r| r.0 == "token reader" && r.1 == version));
    assert!(
        all.iter()
            .all(|r| r.2.starts_with("stage=current channel=api "))
    );
}
