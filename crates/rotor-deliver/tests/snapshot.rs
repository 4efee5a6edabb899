//! A render that runs while a rotation finishes writes one consistent stage set.
//!
//! Seen in CI (issue 10's JWKS test): `rotor jwt sign` read `pending` just before a finish and
//! `current` just after it, so its keyring held one key twice ("duplicate kid") and no
//! previous. Renders read stages the same way: `current` read before a finish and `previous`
//! after it are the same version, and the app loses the key its live tokens were signed with.
//! The store below lets a real SqliteStore finish a rotation between the render's first read
//! and the next, deterministically.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use jiff::Timestamp;
use rotor_core::rotation::Lease;
use rotor_core::store::{Change, NewVersion, Op, SecretSummary, Takeover, Versioned};
use rotor_core::version::{VersionId, VersionMeta};
use rotor_core::{
    AuditRecord, Config, Rotation, RotationId, SecretName, SecretValue, Stage, Store, StoreError,
};
use rotor_deliver::Renderer;
use rotor_engine::{Engine, EngineOptions, Rotators, SystemClock};
use rotor_seal::MasterKey;
use rotor_store_sqlite::SqliteStore;

/// Delegates to `inner`; right after the first read of a version (or of the version list)
/// returns, it commits `then` on `inner`: a finish landing between two reads.
#[derive(Debug)]
struct FinishBetweenReads {
    inner: Arc<dyn Store>,
    then: Mutex<Option<Change>>,
}

impl FinishBetweenReads {
    async fn after_read(&self) {
        let change = self.then.lock().expect("lock the pending finish").take();
        if let Some(change) = change {
            self.inner
                .apply(change)
                .await
                .expect("apply the finish between reads");
        }
    }
}

#[async_trait]
impl Store for FinishBetweenReads {
    async fn apply(&self, change: Change) -> Result<Vec<AuditRecord>, StoreError> {
        self.inner.apply(change).await
    }
    async fn claim(
        &self,
        id: &RotationId,
        owner: &str,
        now: Timestamp,
        expires_at: Timestamp,
        takeover: Takeover,
    ) -> Result<Lease, StoreError> {
        self.inner.claim(id, owner, now, expires_at, takeover).await
    }
    async fn versions(&self, secret: &SecretName) -> Result<Vec<VersionMeta>, StoreError> {
        let r = self.inner.versions(secret).await;
        self.after_read().await;
        r
    }
    async fn read_stage(
        &self,
        secret: &SecretName,
        stage: Stage,
    ) -> Result<Option<Versioned>, StoreError> {
        let r = self.inner.read_stage(secret, stage).await;
        self.after_read().await;
        r
    }
    async fn read_version(
        &self,
        secret: &SecretName,
        id: &VersionId,
    ) -> Result<Option<Versioned>, StoreError> {
        let r = self.inner.read_version(secret, id).await;
        self.after_read().await;
        r
    }
    async fn rotation(&self, id: &RotationId) -> Result<Option<Rotation>, StoreError> {
        self.inner.rotation(id).await
    }
    async fn rotations(
        &self,
        secret: Option<&SecretName>,
        limit: usize,
    ) -> Result<Vec<Rotation>, StoreError> {
        self.inner.rotations(secret, limit).await
    }
    async fn open_rotations(&self) -> Result<Vec<Rotation>, StoreError> {
        self.inner.open_rotations().await
    }
    async fn owed_rollbacks(&self) -> Result<Vec<Rotation>, StoreError> {
        self.inner.owed_rollbacks().await
    }
    async fn summaries(&self) -> Result<Vec<SecretSummary>, StoreError> {
        self.inner.summaries().await
    }
    async fn audit_tail(&self, n: usize) -> Result<Vec<AuditRecord>, StoreError> {
        self.inner.audit_tail(n).await
    }
    async fn audit_all(&self) -> Result<Vec<AuditRecord>, StoreError> {
        self.inner.audit_all().await
    }
}

const CONFIG: &str = r#"
[secrets.signing]
kind = "manual"
tier = "high"
grace = "1h"

[[render]]
kind = "dotenv"
path = "app.env"
[render.vars]
KEY = "{{ signing.current }}"
KEY_PREVIOUS = "{{ signing.previous }}"
"#;

#[tokio::test]
async fn a_finish_between_two_stage_reads_never_renders_one_version_twice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rotor.toml");
    std::fs::write(&path, CONFIG).unwrap();
    let config: Arc<Config> =
        Arc::new(rotor_core::config::parse(CONFIG, &path, &|_| None).unwrap());
    let inner: Arc<dyn Store> = Arc::new(
        SqliteStore::create(
            &dir.path().join("rotor.db"),
            MasterKey::generate().unwrap(),
            "test",
        )
        .unwrap(),
    );
    // Versions one and two through the engine (no delivery: the render below is the test).
    let engine = Engine::new(
        inner.clone(),
        config.clone(),
        Rotators::new(),
        Arc::new(SystemClock),
        EngineOptions::new("test"),
    );
    for value in ["one", "two"] {
        engine
            .put(
                "signing",
                SecretValue::from_slice(value.as_bytes()),
                serde_json::json!({}),
                None,
            )
            .await
            .unwrap();
    }
    // Version three waits as pending; its finish lands after the render's first read.
    let secret = SecretName::new("signing").unwrap();
    let three = VersionId::generate();
    inner
        .apply(Change::new().op(Op::InsertVersion {
            version: NewVersion {
                secret: secret.clone(),
                id: three.clone(),
                created_by: "test".into(),
                created_at: Timestamp::now(),
                metadata: serde_json::json!({}),
                value: SecretValue::from_slice(b"three"),
            },
            stage: Some(Stage::Pending),
        }))
        .await
        .unwrap();
    let store = Arc::new(FinishBetweenReads {
        inner: inner.clone(),
        then: Mutex::new(Some(Change::new().op(Op::Promote {
            secret: secret.clone(),
            version: three,
        }))),
    });
    let renderer = Renderer::new(config, store.clone());
    let results = renderer.render_for(&secret).await.unwrap();
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    assert!(
        store.then.lock().unwrap().is_none(),
        "the finish landed during the render"
    );

    let text = std::fs::read_to_string(dir.path().join("app.env")).unwrap();
    let var = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name} in {text}"))
            .trim_matches('"')
            .to_owned()
    };
    let pair = (var("KEY"), var("KEY_PREVIOUS"));
    // Before the finish (two, one) or after it (three, two); never a mix of the two.
    assert!(
        pair == ("two".into(), "one".into()) || pair == ("three".into(), "two".into()),
        "the render mixed two stage sets: current {:?}, previous {:?}",
        pair.0,
        pair.1
    );
}
