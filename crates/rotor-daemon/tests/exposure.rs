//! What is public is a config choice: health and JWKS by default, the page and metrics behind
//! a token (showing only what the token sees), or metrics on a separate listener; the watch
//! stream only carries secrets the token sees.

mod common;

use std::sync::Arc;
use std::time::Duration;

use rotor_daemon::{Daemon, Running, ServeOptions};
use rotor_engine::SystemClock;

const SECRETS: &str = r#"
[secrets.app-key]
kind = "random"
tier = "high"
automation = "manual"

[secrets.billing-key]
kind = "random"
tier = "high"
automation = "manual"
"#;

async fn start(server: &str, tokens: &str) -> (common::Fixture, Running) {
    let fx = common::fixture(&format!("{server}\n{SECRETS}\n{tokens}"));
    let engine = fx.engine(Arc::new(SystemClock), None);
    let running = Daemon::new(engine, Arc::new(SystemClock))
        .start(ServeOptions {
            listen: Some("127.0.0.1:0".parse().expect("loopback listen address")),
            scheduler: None,
            ..ServeOptions::default()
        })
        .await
        .expect("start the daemon");
    (fx, running)
}

async fn get(url: &str, token: Option<&str>) -> (u16, String) {
    let mut r = reqwest::Client::new().get(url);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let resp = r.send().await.expect("send GET to the daemon");
    (
        resp.status().as_u16(),
        resp.text().await.expect("read the daemon's response body"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_and_metrics_need_a_token_or_their_own_listener() {
    let (toks, toml) = common::tokens(&[("app", &["view:app-*"])]);
    let (_fx, running) = start("[server]\nmetrics_listen = \"127.0.0.1:0\"\n", &toml).await;
    let url = running.url();
    for path in ["/", "/metrics"] {
        let (s, body) = get(&format!("{url}{path}"), None).await;
        assert_eq!(s, 401, "{path}");
        assert!(
            !body.contains("app-key") && !body.contains("billing-key"),
            "{body}"
        );
    }
    assert_eq!(get(&format!("{url}/healthz"), None).await.0, 200);
    assert_eq!(
        get(&format!("{url}/.well-known/jwks.json"), None).await.0,
        200
    );
    // No name hints to anyone without a token.
    let (s, body) = get(&format!("{url}/v1/secrets/app-kye/jwks.json"), None).await;
    assert_eq!(s, 404);
    assert!(!body.contains("app-key"), "{body}");
    let (s, body) = get(&format!("{url}/v1/secrets/app-key/jwks.json"), None).await;
    assert_eq!(s, 404);
    let (_, ghost) = get(&format!("{url}/v1/secrets/no-such/jwks.json"), None).await;
    assert_eq!(
        body.replace("app-key", "X"),
        ghost.replace("no-such", "X"),
        "existing and unknown names answer alike"
    );

    // With a token: only the secrets it sees.
    for path in ["/", "/metrics"] {
        let (s, body) = get(&format!("{url}{path}"), Some(&toks[0])).await;
        assert_eq!(s, 200, "{path}");
        assert!(body.contains("app-key"), "{path}: {body}");
        assert!(!body.contains("billing-key"), "{path}: {body}");
    }

    // The scraper's listener: every secret, no token, nothing but metrics and health.
    let m = format!("http://{}", running.metrics_addr().unwrap());
    let (s, body) = get(&format!("{m}/metrics"), None).await;
    assert_eq!(s, 200);
    assert!(body.contains("app-key") && body.contains("billing-key"));
    assert_eq!(get(&format!("{m}/healthz"), None).await.0, 200);
    assert_eq!(get(&format!("{m}/v1/secrets"), Some(&toks[0])).await.0, 404);
    assert_eq!(get(&format!("{m}/"), None).await.0, 404);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_lists_what_answers_without_a_token_and_watch_is_filtered() {
    let (toks, toml) = common::tokens(&[("app", &["view:app-*"]), ("ops", &["rotate:*"])]);
    let (_fx, running) = start(
        "[server]\npublic = [\"health\", \"page\", \"metrics\"]\n",
        &toml,
    )
    .await;
    let url = running.url();
    let (s, body) = get(&format!("{url}/"), None).await;
    assert_eq!(s, 200);
    assert!(body.contains("billing-key"));
    assert_eq!(get(&format!("{url}/metrics"), None).await.0, 200);
    assert_eq!(
        get(&format!("{url}/.well-known/jwks.json"), None).await.0,
        401,
        "jwks not listed"
    );

    // Watch: the app token hears of app-key only.
    let http = reqwest::Client::new();
    let mut watch = http
        .get(format!("{url}/v1/watch"))
        .bearer_auth(&toks[0])
        .send()
        .await
        .unwrap();
    let _ready = watch.chunk().await.unwrap();
    for name in ["billing-key", "app-key"] {
        let r = http
            .post(format!("{url}/v1/secrets/{name}/rotate"))
            .bearer_auth(&toks[1])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while !seen.contains("app-key") {
        let chunk = tokio::time::timeout_at(deadline, watch.chunk())
            .await
            .expect("the app-key change")
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(!seen.contains("billing-key"), "{seen}");
    running.stop().await;
}
