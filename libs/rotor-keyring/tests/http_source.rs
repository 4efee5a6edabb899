//! HttpSource against a tiny loopback HTTP server (feature `http`).
//! Runs under plain `cargo test -p rotor-keyring`: the self dev-dependency in
//! Cargo.toml turns the `http` feature on for tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rotor_keyring::{
    Algorithm, HandleOptions, HttpSource, KeyMaterial, KeyringDocument, KeyringHandle, Source,
    Stage,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves `body` with `status` to every request on 127.0.0.1; counts requests.
async fn serve(status: &'static str, body: String) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            h.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf).await;
            let resp = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
            let _ = sock.shutdown().await;
        }
    });
    (format!("http://{addr}/jwks.json?token=secret"), hits)
}

#[tokio::test]
async fn http_source_loads_jwks() {
    let k = KeyMaterial::generate(Algorithm::EdDSA, None).expect("gen");
    let doc = KeyringDocument::new().with(k.clone(), Stage::Current, None);
    let (url, hits) = serve("200 OK", doc.jwks().to_json()).await;
    let src = HttpSource::new(url).expect("client");
    assert!(
        !src.describe().contains("secret"),
        "query string must not be logged"
    );
    let handle = KeyringHandle::load(src, HandleOptions::default())
        .await
        .expect("load over http");
    let token = rotor_keyring::Keyring::from_document(&doc)
        .expect("ring")
        .sign(&serde_json::json!({"exp": 4_000_000_000u64}))
        .expect("sign");
    handle.verify(&token).await.expect("verify");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn http_source_errors() {
    let (url, _) = serve("500 Internal Server Error", "{}".into()).await;
    let err = HttpSource::new(url)
        .expect("client")
        .fetch()
        .await
        .expect_err("500");
    assert!(err.to_string().contains("500"));
    let (url, _) = serve("200 OK", "not json".into()).await;
    assert!(HttpSource::new(url).expect("client").fetch().await.is_err());
}
