//! KeyringHandle: reload on unknown kid, coalescing, cooldown, failure handling.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rotor_keyring::{
    Algorithm, FileSource, HandleOptions, KeyMaterial, Keyring, KeyringDocument, KeyringHandle,
    RefreshOutcome, Source, SourceError, Stage, VerifyError,
};
use serde_json::json;
use tokio::sync::Notify;

/// A source serving whatever document is currently set, counting fetches. Optionally
/// blocks each fetch until released, so tests can pile up concurrent callers.
struct CountingSource {
    doc: Mutex<Option<KeyringDocument>>,
    fetches: AtomicUsize,
    gate: Option<Arc<Notify>>,
}

impl CountingSource {
    fn new(doc: KeyringDocument, gate: Option<Arc<Notify>>) -> Arc<Self> {
        Arc::new(Self {
            doc: Mutex::new(Some(doc)),
            fetches: AtomicUsize::new(0),
            gate,
        })
    }
    fn set(&self, doc: Option<KeyringDocument>) {
        *self.doc.lock().expect("lock") = doc;
    }
    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

/// Newtype so the shared Arc can be handed to the handle while the test keeps one.
struct Shared(Arc<CountingSource>);

#[async_trait::async_trait]
impl Source for Shared {
    async fn fetch(&self) -> Result<Keyring, SourceError> {
        self.0.fetches.fetch_add(1, Ordering::SeqCst);
        if let Some(g) = &self.0.gate {
            g.notified().await;
        }
        let doc = self.0.doc.lock().expect("lock").clone();
        match doc {
            Some(d) => Ok(Keyring::from_document(&d)?),
            None => Err(SourceError::Other("source down".into())),
        }
    }
    fn describe(&self) -> String {
        "counting test source".into()
    }
}

fn key() -> KeyMaterial {
    KeyMaterial::generate(Algorithm::HS256, None).expect("gen")
}

fn doc(current: &KeyMaterial, others: &[&KeyMaterial]) -> KeyringDocument {
    let mut d = KeyringDocument::new().with(current.clone(), Stage::Current, None);
    for o in others {
        d = d.with((*o).clone(), Stage::Previous, None);
    }
    d
}

fn token(m: &KeyMaterial) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    Keyring::from_document(&doc(m, &[]))
        .expect("ring")
        .sign(&json!({"sub": "s", "exp": now + 600}))
        .expect("sign")
}

async fn loaded(src: &Arc<CountingSource>, cooldown: Duration) -> KeyringHandle {
    KeyringHandle::load(
        Shared(src.clone()),
        HandleOptions::default().with_cooldown(cooldown),
    )
    .await
    .expect("initial load")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_unknown_kid_fetches_once() {
    let k1 = key();
    let k2 = key();
    let gate = Arc::new(Notify::new());
    // The handle starts with k1; the source already serves the rotated keyring, but
    // every fetch blocks until the test opens the gate.
    let src = CountingSource::new(doc(&k2, &[&k1]), Some(gate.clone()));
    let handle = KeyringHandle::new(
        Keyring::from_document(&doc(&k1, &[])).expect("ring"),
        Shared(src.clone()),
        HandleOptions::default().with_cooldown(Duration::from_secs(0)),
    );
    let t2 = token(&k2);
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let h = handle.clone();
        let t = t2.clone();
        tasks.push(tokio::spawn(async move { h.verify(&t).await }));
    }
    // Wait until the first fetch is in flight, give the others time to queue, release.
    while src.fetches() == 0 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    gate.notify_one();
    for t in tasks {
        let c = t.await.expect("join").expect("verifies after reload");
        assert_eq!(c.kid.as_deref(), Some(k2.kid()));
    }
    assert_eq!(
        src.fetches(),
        1,
        "64 concurrent unknown-kid verifies must cause one fetch"
    );
    assert_eq!(handle.fetch_counts(), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn cooldown_limits_fetches() {
    let k1 = key();
    let src = CountingSource::new(doc(&k1, &[]), None);
    let handle = loaded(&src, Duration::from_secs(30)).await;
    assert_eq!(src.fetches(), 1);
    let stranger = token(&key());

    // Within the cooldown of the initial load: no fetch at all.
    for _ in 0..10 {
        assert!(matches!(
            handle.verify(&stranger).await,
            Err(VerifyError::UnknownKid(_))
        ));
    }
    assert_eq!(src.fetches(), 1);

    // After the cooldown: exactly one fetch, then quiet again.
    tokio::time::advance(Duration::from_secs(31)).await;
    for _ in 0..10 {
        assert!(matches!(
            handle.verify(&stranger).await,
            Err(VerifyError::UnknownKid(_))
        ));
    }
    assert_eq!(src.fetches(), 2);
    assert_eq!(
        handle.refresh().await.expect("ok"),
        RefreshOutcome::CoolingDown
    );
    assert_eq!(src.fetches(), 2);

    // A rotation published during the cooldown is picked up once it has elapsed.
    let k2 = key();
    src.set(Some(doc(&k2, &[&k1])));
    let t2 = token(&k2);
    assert!(handle.verify(&t2).await.is_err());
    tokio::time::advance(Duration::from_secs(31)).await;
    handle.verify(&t2).await.expect("reloaded");
    assert_eq!(src.fetches(), 3);
    // Known kids never fetch.
    for _ in 0..10 {
        handle
            .verify(&token(&k1))
            .await
            .expect("k1 still verifies as previous");
    }
    assert_eq!(src.fetches(), 3);
}

#[tokio::test(start_paused = true)]
async fn failed_refresh_keeps_old_keys() {
    let k1 = key();
    let src = CountingSource::new(doc(&k1, &[]), None);
    let handle = loaded(&src, Duration::from_secs(5)).await;
    let t1 = token(&k1);

    src.set(None); // source goes down
    tokio::time::advance(Duration::from_secs(6)).await;
    assert!(matches!(
        handle.verify(&token(&key())).await,
        Err(VerifyError::UnknownKid(_))
    ));
    assert_eq!(src.fetches(), 2);
    assert_eq!(handle.fetch_counts(), (1, 1));
    handle.verify(&t1).await.expect("old keys still served");
    assert_eq!(
        handle
            .sign(&json!({"exp": 4_000_000_000u64}))
            .map(|_| ())
            .ok(),
        Some(())
    );

    tokio::time::advance(Duration::from_secs(6)).await;
    assert!(handle.refresh().await.is_err());
    handle
        .verify(&t1)
        .await
        .expect("still served after explicit failed refresh");

    // Source returns with garbage: also rejected, old keys stay.
    src.set(Some(KeyringDocument::new()));
    tokio::time::advance(Duration::from_secs(6)).await;
    assert!(handle.refresh().await.is_err());
    handle.verify(&t1).await.expect("still served");
}

#[tokio::test]
async fn other_errors_do_not_fetch() {
    let k1 = key();
    let src = CountingSource::new(doc(&k1, &[]), None);
    let handle = loaded(&src, Duration::from_secs(0)).await;
    let good = token(&k1);
    let mut bad_sig = good.clone();
    bad_sig.pop();
    bad_sig.push('A');
    let _ = handle.verify(&bad_sig).await;
    let _ = handle.verify("garbage").await;
    let _ = handle.verify(&format!("{good}.x")).await;
    assert_eq!(src.fetches(), 1);
}

#[tokio::test]
async fn file_source_reload() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("keyring.json");
    let k1 = KeyMaterial::generate(Algorithm::ES256, None).expect("gen");
    std::fs::write(&path, doc(&k1, &[]).to_json().as_bytes()).expect("write");
    let handle = KeyringHandle::load(
        FileSource::new(&path),
        HandleOptions::default().with_cooldown(Duration::from_secs(0)),
    )
    .await
    .expect("load");
    let t1 = handle
        .sign(&json!({"exp": 4_000_000_000u64}))
        .expect("sign");
    handle.verify(&t1).await.expect("v");

    // Rotate on disk; a token from the new key triggers the reload.
    let k2 = KeyMaterial::generate(Algorithm::ES256, None).expect("gen");
    std::fs::write(&path, doc(&k2, &[&k1]).to_json().as_bytes()).expect("write");
    let t2 = token(&k2);
    let c = handle.verify(&t2).await.expect("reloaded from file");
    assert_eq!(c.kid.as_deref(), Some(k2.kid()));
    handle.verify(&t1).await.expect("k1 now previous");

    // A JWKS file works too (verify-only).
    let jwks_path = dir.path().join("jwks.json");
    std::fs::write(&jwks_path, doc(&k2, &[&k1]).jwks().to_json()).expect("write");
    let v = KeyringHandle::load(FileSource::new(&jwks_path), HandleOptions::default())
        .await
        .expect("load jwks");
    v.verify(&t2).await.expect("verify via JWKS file");
    assert!(v.sign(&json!({})).is_err());

    // Missing file: load fails clearly.
    let err = KeyringHandle::load(
        FileSource::new(dir.path().join("nope")),
        HandleOptions::default(),
    )
    .await
    .expect_err("missing");
    assert!(err.to_string().contains("nope"));
}
