//! Behaviour of the SQLite store on real files in temporary directories.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use jiff::{Timestamp, ToSpan};
use rotor_core::audit::{AuditEvent, verify_chain};
use rotor_core::store::{Change, Fence, NewVersion, Op, Takeover};
use rotor_core::{
    Rotation, RotationId, RotationStatus, SecretName, SecretValue, Stage, Step, Store, StoreError,
    VersionId,
    rotation::{Lease, Trigger},
};
use rotor_seal::{KdfParams, MasterKey, MasterKeySource};
use rotor_store_sqlite::{SCHEMA_VERSION, Settings, SqliteStore, seal_error};
use secrecy::{ExposeSecret, SecretString};

fn key_pair() -> (MasterKey, MasterKey) {
    let mut keys = key_copies(2);
    let b = keys.pop().expect("two");
    let a = keys.pop().expect("two");
    (a, b)
}

/// `n` handles on one fresh master key (`MasterKey` is deliberately not `Clone`).
fn key_copies(n: usize) -> Vec<MasterKey> {
    let k = MasterKey::generate().expect("key");
    let encoded = k.encode();
    (0..n)
        .map(|_| MasterKey::from_encoded(encoded.expose_secret()).expect("same key"))
        .collect()
}

fn name(s: &str) -> SecretName {
    SecretName::new(s).expect("valid name")
}

fn new_store() -> (tempfile::TempDir, PathBuf, SqliteStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rotor.db");
    let store = SqliteStore::create(&path, MasterKey::generate().expect("key"), "alice@host")
        .expect("create");
    (dir, path, store)
}

fn new_version(secret: &SecretName, value: &[u8]) -> NewVersion {
    NewVersion {
        secret: secret.clone(),
        id: VersionId::generate(),
        created_by: "alice@host".into(),
        created_at: Timestamp::now(),
        metadata: serde_json::json!({"kid": "k1"}),
        value: SecretValue::from_slice(value),
    }
}

/// `rotor put`: insert and promote in one change.
fn put_change(secret: &SecretName, value: &[u8]) -> (VersionId, Change) {
    let v = new_version(secret, value);
    let id = v.id.clone();
    let change = Change::new()
        .op(Op::InsertVersion {
            version: v,
            stage: None,
        })
        .op(Op::Promote {
            secret: secret.clone(),
            version: id.clone(),
        })
        .audit(
            AuditEvent::new("alice@host", "secret.put")
                .secret(secret)
                .version(&id),
        );
    (id, change)
}

fn rotation(secret: &SecretName) -> Rotation {
    let now = Timestamp::now();
    Rotation {
        id: RotationId::generate(),
        secret: secret.clone(),
        trigger: Trigger::Manual,
        actor: "alice@host".into(),
        reason: None,
        emergency: false,
        evict: true,
        status: RotationStatus::Running,
        step: Step::Create,
        step_done: false,
        attempts: 0,
        error: None,
        pending_version: None,
        previous_version: None,
        started_at: now,
        updated_at: now,
        activate_after: None,
        rollback_owed: false,
        retire_after: None,
        lease: None,
    }
}

async fn stage_of(store: &SqliteStore, secret: &SecretName, stage: Stage) -> Option<VersionId> {
    store
        .read_stage(secret, stage)
        .await
        .expect("read stage")
        .map(|v| v.meta.id)
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
}

fn raw(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).expect("raw sqlite")
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn wal(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push("-wal");
    PathBuf::from(s)
}

#[tokio::test]
async fn create_makes_a_0600_file_and_refuses_to_overwrite() {
    let (_dir, path, store) = new_store();
    assert_eq!(mode(&path), 0o600);
    for side in ["-wal", "-shm"] {
        let mut s = path.as_os_str().to_owned();
        s.push(side);
        let p = PathBuf::from(s);
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{side}");
        }
    }
    let audit = store.audit_all().await.expect("audit");
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].event.action, "store.init");
    assert_eq!(audit[0].event.actor, "alice@host");
    drop(store);
    let before = std::fs::read(&path).expect("read");
    let again = SqliteStore::create(&path, MasterKey::generate().expect("key"), "bob");
    assert!(
        matches!(again, Err(StoreError::AlreadyExists { .. })),
        "{again:?}"
    );
    assert!(
        std::fs::read(&path).expect("read") == before,
        "file changed"
    );
}

#[tokio::test]
async fn stages_move_across_three_promotes() {
    let (_dir, _path, store) = new_store();
    let s = name("db");
    let mut ids = Vec::new();
    for i in 0..3 {
        let v = new_version(&s, format!("value-{i}").as_bytes());
        let id = v.id.clone();
        store
            .apply(Change::new().op(Op::InsertVersion {
                version: v,
                stage: Some(Stage::Pending),
            }))
            .await
            .expect("insert pending");
        assert_eq!(stage_of(&store, &s, Stage::Pending).await, Some(id.clone()));
        store
            .apply(Change::new().op(Op::Promote {
                secret: s.clone(),
                version: id.clone(),
            }))
            .await
            .expect("promote");
        ids.push(id);
        assert_eq!(
            stage_of(&store, &s, Stage::Current).await,
            ids.last().cloned()
        );
        assert_eq!(
            stage_of(&store, &s, Stage::Previous).await,
            ids.len().checked_sub(2).map(|i| ids[i].clone())
        );
        assert_eq!(stage_of(&store, &s, Stage::Pending).await, None);
    }
    // Idempotent promote.
    store
        .apply(Change::new().op(Op::Promote {
            secret: s.clone(),
            version: ids[2].clone(),
        }))
        .await
        .expect("promote again");
    let versions = store.versions(&s).await.expect("versions");
    assert_eq!(
        versions.iter().map(|v| v.id.clone()).collect::<Vec<_>>(),
        vec![ids[2].clone(), ids[1].clone(), ids[0].clone()],
        "newest first"
    );
    assert_eq!(versions[0].stages, vec![Stage::Current]);
    assert_eq!(versions[1].stages, vec![Stage::Previous]);
    assert!(versions[2].stages.is_empty());
    let cur = store
        .read_stage(&s, Stage::Current)
        .await
        .expect("read")
        .expect("current");
    assert_eq!(cur.value.expose(), b"value-2");
    assert_eq!(cur.meta.metadata, serde_json::json!({"kid": "k1"}));

    // Promoting the previous version back (a rollback) swaps current and previous.
    store
        .apply(Change::new().op(Op::Promote {
            secret: s.clone(),
            version: ids[1].clone(),
        }))
        .await
        .expect("roll back");
    assert_eq!(
        stage_of(&store, &s, Stage::Current).await,
        Some(ids[1].clone())
    );
    assert_eq!(
        stage_of(&store, &s, Stage::Previous).await,
        Some(ids[2].clone())
    );

    // Unknown version.
    let err = store
        .apply(Change::new().op(Op::Promote {
            secret: s.clone(),
            version: VersionId::generate(),
        }))
        .await
        .expect_err("unknown");
    assert!(matches!(err, StoreError::VersionNotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn pending_is_exclusive_and_a_failed_change_writes_nothing() {
    let (_dir, _path, store) = new_store();
    let s = name("api-key");
    let a = new_version(&s, b"a");
    let a_id = a.id.clone();
    store
        .apply(Change::new().op(Op::InsertVersion {
            version: a,
            stage: Some(Stage::Pending),
        }))
        .await
        .expect("first pending");
    let audit_before = store.audit_all().await.expect("audit").len();
    let b = new_version(&s, b"b");
    let err = store
        .apply(
            Change::new()
                .op(Op::InsertVersion {
                    version: b,
                    stage: Some(Stage::Pending),
                })
                .audit(AuditEvent::new("x", "secret.put")),
        )
        .await
        .expect_err("pending taken");
    match err {
        StoreError::StageTaken { stage, version, .. } => {
            assert_eq!(stage, Stage::Pending);
            assert_eq!(version, a_id.to_string());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store.versions(&s).await.expect("versions").len(),
        1,
        "rolled back"
    );
    assert_eq!(store.audit_all().await.expect("audit").len(), audit_before);

    // ClearStage is idempotent.
    for _ in 0..2 {
        store
            .apply(Change::new().op(Op::ClearStage {
                secret: s.clone(),
                stage: Stage::Pending,
                version: a_id.clone(),
            }))
            .await
            .expect("clear");
    }
    assert_eq!(stage_of(&store, &s, Stage::Pending).await, None);
    let meta = store.versions(&s).await.expect("versions");
    assert!(meta[0].stages.is_empty());
}

#[tokio::test]
async fn the_schema_allows_one_version_per_stage() {
    let (_dir, path, store) = new_store();
    let s = name("db");
    let (v1, c1) = put_change(&s, b"one");
    store.apply(c1).await.expect("put");
    let (v2, c2) = put_change(&s, b"two");
    store.apply(c2).await.expect("put");
    drop(store);
    let conn = raw(&path);
    let err = conn.execute(
        "INSERT INTO stages (secret, stage, version_id) VALUES ('db', 'current', ?1)",
        [v1.as_str()],
    );
    assert!(
        err.is_err(),
        "a second current must violate the primary key"
    );
    let n: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM stages WHERE secret = 'db' AND stage = 'current' AND version_id = ?1",
            [v2.as_str()],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(n, 1);
}

#[tokio::test]
async fn put_inserts_and_promotes_in_one_change() {
    let (_dir, _path, store) = new_store();
    let s = name("db");
    let (v1, c1) = put_change(&s, b"first");
    let recs = store.apply(c1).await.expect("put 1");
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].event.action, "secret.put");
    let (v2, c2) = put_change(&s, b"second");
    store.apply(c2).await.expect("put 2");
    assert_eq!(stage_of(&store, &s, Stage::Current).await, Some(v2.clone()));
    assert_eq!(
        stage_of(&store, &s, Stage::Previous).await,
        Some(v1.clone())
    );
    let got = store
        .read_version(&s, &v1)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(got.value.expose(), b"first");
    assert_eq!(got.meta.stages, vec![Stage::Previous]);
    assert!(
        store
            .read_version(&s, &VersionId::generate())
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        store
            .read_stage(&name("other"), Stage::Current)
            .await
            .expect("read")
            .is_none()
    );

    // InsertVersion straight into current uses promote semantics.
    let v3 = new_version(&s, b"third");
    let v3_id = v3.id.clone();
    store
        .apply(Change::new().op(Op::InsertVersion {
            version: v3,
            stage: Some(Stage::Current),
        }))
        .await
        .expect("insert current");
    assert_eq!(stage_of(&store, &s, Stage::Current).await, Some(v3_id));
    assert_eq!(stage_of(&store, &s, Stage::Previous).await, Some(v2));
}

#[tokio::test]
async fn timestamps_and_metadata_round_trip_exactly() {
    let (_dir, _path, store) = new_store();
    let s = name("db");
    let mut v = new_version(&s, b"x");
    v.created_at = Timestamp::new(1_700_000_000, 123_456_789).expect("ts");
    v.metadata = serde_json::json!({"alg": "ES256", "n": [1, 2, 3]});
    let id = v.id.clone();
    store
        .apply(Change::new().op(Op::InsertVersion {
            version: v,
            stage: None,
        }))
        .await
        .expect("insert");
    let meta = &store.versions(&s).await.expect("versions")[0];
    assert_eq!(meta.id, id);
    assert_eq!(
        meta.created_at,
        Timestamp::new(1_700_000_000, 123_456_789).expect("ts")
    );
    assert_eq!(
        meta.metadata,
        serde_json::json!({"alg": "ES256", "n": [1, 2, 3]})
    );
    assert_eq!(meta.created_by, "alice@host");
}

#[tokio::test]
async fn values_never_reach_the_file_or_the_wal_in_plaintext() {
    let (_dir, path, store) = new_store();
    let plaintext = b"correct-horse-battery-staple-4f9a1c";
    for i in 0..20 {
        let s = name(&format!("secret-{i}"));
        let (_, c) = put_change(&s, plaintext);
        store.apply(c).await.expect("put");
    }
    // While open: the WAL holds the recent pages.
    let mut bytes = std::fs::read(&path).expect("db");
    if let Ok(w) = std::fs::read(wal(&path)) {
        assert!(!w.is_empty());
        bytes.extend_from_slice(&w);
    }
    assert!(
        !contains(&bytes, plaintext),
        "plaintext found in the db or wal"
    );
    assert!(contains(&bytes, b"secret-7"), "the scan sees the rows");
    drop(store);
    let bytes = std::fs::read(&path).expect("db");
    assert!(!contains(&bytes, plaintext));
}

#[tokio::test]
async fn a_ciphertext_copied_to_another_row_is_tampered() {
    let (_dir, path, store) = new_store();
    let a = name("alpha");
    let b = name("beta");
    let (a1, c) = put_change(&a, b"alpha-value");
    store.apply(c).await.expect("put");
    let (a2, c) = put_change(&a, b"alpha-value-2");
    store.apply(c).await.expect("put");
    let (b1, c) = put_change(&b, b"beta-value");
    store.apply(c).await.expect("put");

    let conn = raw(&path);
    // Same secret, other version.
    conn.execute(
        "UPDATE versions SET sealed = (SELECT sealed FROM versions WHERE id = ?1) WHERE id = ?2",
        [a2.as_str(), a1.as_str()],
    )
    .expect("copy");
    // Other secret.
    conn.execute(
        "UPDATE versions SET sealed = (SELECT sealed FROM versions WHERE id = ?1) WHERE id = ?2",
        [a2.as_str(), b1.as_str()],
    )
    .expect("copy");
    drop(conn);

    let err = store.read_version(&a, &a1).await.expect_err("copied");
    assert!(matches!(err, StoreError::Tampered { .. }), "{err:?}");
    assert!(!err.to_string().contains("alpha-value"));
    let err = store
        .read_stage(&b, Stage::Current)
        .await
        .expect_err("copied");
    assert!(
        matches!(&err, StoreError::Tampered { secret, version } if secret == "beta" && *version == b1.to_string()),
        "{err:?}"
    );
    // The untouched row still opens.
    let ok = store
        .read_version(&a, &a2)
        .await
        .expect("read")
        .expect("row");
    assert_eq!(ok.value.expose(), b"alpha-value-2");

    // A flipped byte.
    raw(&path)
        .execute(
            "UPDATE versions SET sealed = CAST(substr(sealed, 1, length(sealed) - 1) || x'00' AS BLOB) WHERE id = ?1",
            [a2.as_str()],
        )
        .expect("flip");
    let err = store.read_version(&a, &a2).await.expect_err("flipped");
    assert!(matches!(err, StoreError::Tampered { .. }), "{err:?}");
}

#[tokio::test]
async fn a_wrong_master_key_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rotor.db");
    let (k, k_copy) = key_pair();
    let store = SqliteStore::create(&path, k, "alice").expect("create");
    let (_, c) = put_change(&name("db"), b"v");
    store.apply(c).await.expect("put");
    drop(store);
    let before = std::fs::read(&path).expect("read");
    let err = SqliteStore::open(&path, MasterKey::generate().expect("key")).expect_err("wrong key");
    assert!(matches!(err, StoreError::WrongMasterKey { .. }), "{err:?}");
    assert!(
        std::fs::read(&path).expect("read") == before,
        "byte-for-byte unchanged"
    );
    assert!(!wal(&path).exists() || std::fs::metadata(wal(&path)).expect("wal").len() == 0);

    let store = SqliteStore::open(&path, k_copy).expect("right key");
    assert_eq!(
        store
            .read_stage(&name("db"), Stage::Current)
            .await
            .expect("read")
            .expect("current")
            .value
            .expose(),
        b"v"
    );
}

#[tokio::test]
async fn missing_store_and_missing_key_are_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nope.db");
    let err = SqliteStore::open(&path, MasterKey::generate().expect("key")).expect_err("missing");
    assert!(matches!(err, StoreError::NotInitialized { .. }), "{err:?}");
    assert!(err.to_string().contains("rotor init"));
    assert!(!path.exists(), "open never creates the store");
    assert!(matches!(
        SqliteStore::kdf_params(&path),
        Err(StoreError::NotInitialized { .. })
    ));

    let key_err = MasterKeySource::File(dir.path().join("missing.key"))
        .load()
        .expect_err("no key file");
    let err = seal_error(key_err);
    assert!(
        matches!(err, StoreError::MissingMasterKey { .. }),
        "{err:?}"
    );
}

fn assert_corrupt(path: &Path) {
    let before = std::fs::read(path).expect("read");
    let err = SqliteStore::open(path, MasterKey::generate().expect("key")).expect_err("corrupt");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("will not recreate"));
    assert!(
        std::fs::read(path).expect("read") == before,
        "not recreated"
    );
}

#[tokio::test]
async fn truncated_garbage_and_foreign_files_are_corrupt() {
    let (dir, path, store) = new_store();
    for i in 0..50 {
        let (_, c) = put_change(&name(&format!("s{i}")), b"v");
        store.apply(c).await.expect("put");
    }
    drop(store);
    let full = std::fs::read(&path).expect("read");
    assert!(full.len() > 8192, "{}", full.len());

    // Truncated at a page boundary, mid-page, and inside the header.
    for cut in [full.len() / 2 / 4096 * 4096, full.len() - 100, 50, 0] {
        std::fs::write(&path, &full[..cut]).expect("truncate");
        assert_corrupt(&path);
    }

    // Garbage.
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x5a; 16384]).expect("write");
    assert_corrupt(&garbage);

    // A SQLite database that is not a rotor store.
    let foreign = dir.path().join("foreign.db");
    raw(&foreign)
        .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .expect("foreign");
    assert_corrupt(&foreign);

    // A damaged page in an otherwise intact file.
    let mut damaged = full.clone();
    for b in &mut damaged[4096..4 * 4096] {
        *b = 0xff;
    }
    std::fs::write(&path, &damaged).expect("damage");
    assert_corrupt(&path);
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let (dir, path, store) = new_store();
    drop(store);
    let copy = dir.path().join("copy.db");
    std::fs::copy(&path, &copy).expect("copy");
    raw(&copy)
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .expect("bump");
    let before = std::fs::read(&copy).expect("read");
    let err = SqliteStore::open(&copy, MasterKey::generate().expect("key")).expect_err("too new");
    match err {
        StoreError::TooNew {
            found, supported, ..
        } => {
            assert_eq!(found, SCHEMA_VERSION + 1);
            assert_eq!(supported, SCHEMA_VERSION);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        std::fs::read(&copy).expect("read") == before,
        "file changed"
    );
}

#[tokio::test]
async fn leases_fence_stale_writers() {
    let (_dir, _path, store) = new_store();
    let s = name("db");
    let r = rotation(&s);
    let id = r.id.clone();
    store
        .apply(
            Change::new()
                .op(Op::BeginRotation(Box::new(r.clone())))
                .audit(AuditEvent::new("alice", "rotation.create").rotation(&id)),
        )
        .await
        .expect("begin");

    // Only one running rotation per secret.
    let err = store
        .apply(Change::new().op(Op::BeginRotation(Box::new(rotation(&s)))))
        .await
        .expect_err("second running");
    assert!(matches!(err, StoreError::Busy { .. }), "{err:?}");

    let t0 = Timestamp::now();
    let lease_a = store
        .claim(&id, "host:1:a", t0, t0 + 30.seconds(), Takeover::IfExpired)
        .await
        .expect("claim a");
    assert_eq!(lease_a.token, 1);
    assert_eq!(
        store.rotation(&id).await.expect("read").expect("row").lease,
        Some(lease_a.clone())
    );
    // Same owner re-claims (renewal): token moves on.
    let lease_a = store
        .claim(&id, "host:1:a", t0, t0 + 30.seconds(), Takeover::IfExpired)
        .await
        .expect("reclaim a");
    assert_eq!(lease_a.token, 2);

    // Another owner before expiry: busy.
    let err = store
        .claim(
            &id,
            "host:2:b",
            t0 + 10.seconds(),
            t0 + 40.seconds(),
            Takeover::IfExpired,
        )
        .await
        .expect_err("busy");
    match &err {
        StoreError::Busy {
            owner, rotation, ..
        } => {
            assert_eq!(owner, "host:1:a");
            assert_eq!(*rotation, id.to_string());
        }
        other => panic!("{other:?}"),
    }

    // A's fenced write works while it holds the lease.
    let mut saved = r.clone();
    saved.step_done = true;
    saved.lease = Some(lease_a.clone());
    store
        .apply(
            Change::fenced(Fence {
                rotation: id.clone(),
                token: lease_a.token,
            })
            .op(Op::SaveRotation(Box::new(saved.clone()))),
        )
        .await
        .expect("fenced save");

    // After expiry B takes over.
    let lease_b = store
        .claim(
            &id,
            "host:2:b",
            t0 + 31.seconds(),
            t0 + 60.seconds(),
            Takeover::IfExpired,
        )
        .await
        .expect("takeover");
    assert_eq!(lease_b.token, 3);

    // A's stale fenced write is refused, and nothing of it is written.
    let stale = Change::fenced(Fence {
        rotation: id.clone(),
        token: lease_a.token,
    })
    .op(Op::InsertVersion {
        version: new_version(&s, b"stale"),
        stage: Some(Stage::Pending),
    })
    .audit(AuditEvent::new("host:1:a", "rotation.step"));
    let audit_before = store.audit_all().await.expect("audit").len();
    let err = store.apply(stale).await.expect_err("lease lost");
    match err {
        StoreError::LeaseLost { ours, current, .. } => assert_eq!((ours, current), (2, 3)),
        other => panic!("{other:?}"),
    }
    assert!(store.versions(&s).await.expect("versions").is_empty());
    assert_eq!(store.audit_all().await.expect("audit").len(), audit_before);

    // An unfenced save carrying an old lease cannot move the token back.
    store
        .apply(Change::new().op(Op::SaveRotation(Box::new(saved.clone()))))
        .await
        .expect("unfenced save");
    let now = store.rotation(&id).await.expect("read").expect("row");
    assert_eq!(now.lease, Some(lease_b.clone()));
    assert!(now.step_done);

    // The holder may renew its expiry through SaveRotation.
    let mut renewed = now.clone();
    let longer = Lease {
        expires_at: t0 + 90.seconds(),
        ..lease_b.clone()
    };
    renewed.lease = Some(longer.clone());
    store
        .apply(
            Change::fenced(Fence {
                rotation: id.clone(),
                token: 3,
            })
            .op(Op::SaveRotation(Box::new(renewed))),
        )
        .await
        .expect("renew");
    assert_eq!(
        store.rotation(&id).await.expect("read").expect("row").lease,
        Some(longer)
    );
    // A takeover is a compare-and-set on the token judged: a stale judgement (token 2, but
    // the holder renewed to 3) is refused, even though the lease is live either way.
    let err = store
        .claim(
            &id,
            "host:3:c",
            t0 + 32.seconds(),
            t0 + 60.seconds(),
            Takeover::IfStill { token: 2 },
        )
        .await
        .expect_err("stale judgement");
    assert!(matches!(err, StoreError::Busy { .. }), "{err:?}");
    // The judged token still stored: the live lease is taken (its holder was judged gone).
    let lease_c = store
        .claim(
            &id,
            "host:3:c",
            t0 + 32.seconds(),
            t0 + 60.seconds(),
            Takeover::IfStill { token: 3 },
        )
        .await
        .expect("takeover");
    assert_eq!(lease_c.token, 4);

    // Unknown rotation.
    let err = store
        .claim(&RotationId::generate(), "x", t0, t0, Takeover::IfExpired)
        .await
        .expect_err("unknown");
    assert!(
        matches!(err, StoreError::RotationNotFound { .. }),
        "{err:?}"
    );

    let audit = store.audit_all().await.expect("audit");
    let leases: Vec<_> = audit
        .iter()
        .filter(|r| r.event.action == "rotation.lease")
        .collect();
    assert_eq!(
        leases.len(),
        4,
        "a, a renewed, b, c; the refused claim wrote nothing"
    );
    assert_eq!(leases[3].event.actor, "host:3:c");
    assert!(
        leases[3]
            .event
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("holder gone"))
    );
    verify_chain(&audit).expect("chain");

    let open = store.open_rotations().await.expect("open");
    assert_eq!(open.len(), 1);
    // Finishing frees the secret for a new rotation.
    let mut done = store.rotation(&id).await.expect("read").expect("row");
    done.status = RotationStatus::Completed;
    store
        .apply(
            Change::fenced(Fence {
                rotation: id.clone(),
                token: 4,
            })
            .op(Op::SaveRotation(Box::new(done))),
        )
        .await
        .expect("complete");
    assert!(store.open_rotations().await.expect("open").is_empty());
    let r2 = rotation(&s);
    store
        .apply(Change::new().op(Op::BeginRotation(Box::new(r2.clone()))))
        .await
        .expect("new rotation");
    let listed = store.rotations(Some(&s), 10).await.expect("list");
    assert_eq!(
        listed.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        vec![r2.id.clone(), id.clone()]
    );
    assert_eq!(store.rotations(None, 1).await.expect("list").len(), 1);
    assert!(
        store
            .rotations(Some(&name("none")), 10)
            .await
            .expect("list")
            .is_empty()
    );
}

#[tokio::test]
async fn the_audit_chain_verifies_after_many_changes() {
    let (_dir, _path, store) = new_store();
    for i in 0..60 {
        let (_, c) = put_change(&name(&format!("s{}", i % 7)), b"v");
        let c = c.audit(AuditEvent::new("bob", "secret.note").reason(Some("two per change")));
        store.apply(c).await.expect("put");
    }
    let all = store.audit_all().await.expect("audit");
    assert_eq!(all.len(), 1 + 60 * 2);
    assert_eq!(verify_chain(&all), Ok(121));
    let tail = store.audit_tail(3).await.expect("tail");
    assert_eq!(
        tail.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![119, 120, 121]
    );
    assert_eq!(tail[2], all[120]);
}

#[tokio::test]
async fn an_edited_audit_row_breaks_the_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rotor.db");
    let (k, k2) = key_pair();
    let store = SqliteStore::create(&path, k, "alice").expect("create");
    for i in 0..30 {
        let (_, c) = put_change(&name(&format!("s{i}")), b"v");
        store.apply(c).await.expect("put");
    }
    raw(&path)
        .execute(
            "UPDATE audit SET reason = 'nothing to see' WHERE seq = 17",
            [],
        )
        .expect("edit");
    let err = verify_chain(&store.audit_all().await.expect("audit")).expect_err("edited");
    assert_eq!(err.seq, 17);
    drop(store);

    // Deleting a record is caught as well (after re-opening).
    let store = SqliteStore::open(&path, k2).expect("open");
    raw(&path)
        .execute_batch(
            "UPDATE audit SET reason = NULL WHERE seq = 17; DELETE FROM audit WHERE seq = 5;",
        )
        .expect("delete");
    let err = verify_chain(&store.audit_all().await.expect("audit")).expect_err("deleted");
    assert_eq!(err.position, 5);
}

#[tokio::test]
async fn summaries_cover_every_secret_in_one_pass() {
    let (_dir, _path, store) = new_store();
    let a = name("a");
    let b = name("b");
    let c = name("c");
    let (a1, ch) = put_change(&a, b"1");
    store.apply(ch).await.expect("put");
    let (a2, ch) = put_change(&a, b"2");
    store.apply(ch).await.expect("put");
    let pending = new_version(&a, b"3");
    let a3 = pending.id.clone();
    store
        .apply(Change::new().op(Op::InsertVersion {
            version: pending,
            stage: Some(Stage::Pending),
        }))
        .await
        .expect("pending");
    let (b1, ch) = put_change(&b, b"1");
    store.apply(ch).await.expect("put");
    // c has a rotation but no version yet.
    let mut rc = rotation(&c);
    rc.error = Some("target unreachable".into());
    store
        .apply(Change::new().op(Op::BeginRotation(Box::new(rc.clone()))))
        .await
        .expect("begin");
    let mut ra_old = rotation(&a);
    // A rotation is planned against the current version (the store refuses a stale plan).
    ra_old.previous_version = Some(a2.clone());
    let mut ra_old_done = ra_old.clone();
    ra_old_done.status = RotationStatus::Completed;
    store
        .apply(Change::new().op(Op::BeginRotation(Box::new(ra_old))))
        .await
        .expect("begin");
    store
        .apply(Change::new().op(Op::SaveRotation(Box::new(ra_old_done))))
        .await
        .expect("save");
    let mut ra_new = rotation(&a);
    ra_new.previous_version = Some(a2.clone());
    store
        .apply(Change::new().op(Op::BeginRotation(Box::new(ra_new.clone()))))
        .await
        .expect("begin");

    let sums = store.summaries().await.expect("summaries");
    assert_eq!(
        sums.iter()
            .map(|s| s.secret.clone().expect("name"))
            .collect::<Vec<_>>(),
        vec![a.clone(), b.clone(), c.clone()]
    );
    let sa = &sums[0];
    assert_eq!(sa.versions, 3);
    assert_eq!(sa.current.as_ref().map(|v| v.id.clone()), Some(a2));
    assert_eq!(sa.previous.as_ref().map(|v| v.id.clone()), Some(a1));
    assert_eq!(sa.pending.as_ref().map(|v| v.id.clone()), Some(a3));
    let last = sa.last_rotation.as_ref().expect("rotation");
    assert_eq!(last.id, ra_new.id);
    assert_eq!(last.status, RotationStatus::Running);
    let sb = &sums[1];
    assert_eq!(
        (sb.versions, sb.current.as_ref().map(|v| v.id.clone())),
        (1, Some(b1))
    );
    assert!(sb.previous.is_none() && sb.pending.is_none() && sb.last_rotation.is_none());
    let sc = &sums[2];
    assert_eq!(sc.versions, 0);
    assert!(sc.current.is_none());
    assert_eq!(
        sc.last_rotation.as_ref().and_then(|r| r.error.clone()),
        Some("target unreachable".into())
    );
}

#[tokio::test]
async fn passphrase_stores_record_their_kdf_parameters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rotor.db");
    // Small parameters: the test is about storage, not Argon2 cost.
    let params = KdfParams {
        m_cost_kib: 64,
        t_cost: 1,
        ..KdfParams::generate().expect("params")
    };
    let pass = SecretString::from("correct horse".to_owned());
    let store =
        SqliteStore::create_with_passphrase(&path, &pass, &params, "alice", Settings::default())
            .expect("create");
    let (_, c) = put_change(&name("db"), b"v");
    store.apply(c).await.expect("put");
    drop(store);
    assert_eq!(
        SqliteStore::kdf_params(&path).expect("params"),
        Some(params)
    );
    let store = SqliteStore::open_with_passphrase(&path, &pass, Settings::default()).expect("open");
    assert!(
        store
            .read_stage(&name("db"), Stage::Current)
            .await
            .expect("read")
            .is_some()
    );
    drop(store);
    let wrong = SecretString::from("wrong horse".to_owned());
    let err = SqliteStore::open_with_passphrase(&path, &wrong, Settings::default())
        .expect_err("wrong passphrase");
    assert!(matches!(err, StoreError::WrongMasterKey { .. }), "{err:?}");

    // A key-file store has no KDF record.
    let (_d, other, s) = new_store();
    drop(s);
    assert_eq!(SqliteStore::kdf_params(&other).expect("params"), None);
    let err = SqliteStore::open_with_passphrase(&other, &pass, Settings::default())
        .expect_err("no passphrase store");
    assert!(matches!(err, StoreError::WrongMasterKey { .. }), "{err:?}");
}

#[test]
fn two_handles_putting_concurrently_never_corrupt_stages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rotor.db");
    let mut keys = key_copies(4);
    drop(SqliteStore::create(&path, keys.pop().expect("key"), "init").expect("create"));
    let s = name("shared");
    let mut threads = Vec::new();
    for t in 0..2 {
        let key = keys.pop().expect("key");
        let path = path.clone();
        let s = s.clone();
        threads.push(std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let store = SqliteStore::open(&path, key).expect("open");
            let mut locked = 0u32;
            for i in 0..200 {
                loop {
                    let (_, c) = put_change(&s, format!("t{t}-{i}").as_bytes());
                    match rt.block_on(store.apply(c)) {
                        Ok(_) => break,
                        Err(StoreError::Locked) => locked += 1,
                        Err(other) => panic!("thread {t}: {other}"),
                    }
                }
            }
            locked
        }));
    }
    for t in threads {
        t.join().expect("thread");
    }
    let conn = raw(&path);
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).expect("count") };
    assert_eq!(
        count("SELECT COUNT(*) FROM stages WHERE secret = 'shared' AND stage = 'current'"),
        1
    );
    assert_eq!(count("SELECT COUNT(*) FROM versions"), 400);
    // The previous label is on the version committed just before the current one.
    let vid_of = |stage: &str| {
        count(&format!(
            "SELECT v.vid FROM stages s JOIN versions v ON v.secret = s.secret AND v.id = s.version_id
             WHERE s.stage = '{stage}'"
        ))
    };
    assert_eq!((vid_of("current"), vid_of("previous")), (400, 399));
    drop(conn);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let store = SqliteStore::open(&path, keys.pop().expect("key")).expect("open");
    let audit = rt.block_on(store.audit_all()).expect("audit");
    assert_eq!(verify_chain(&audit), Ok(401));
    let sums = rt.block_on(store.summaries()).expect("summaries");
    assert_eq!(sums.len(), 1);
    assert_eq!(sums[0].versions, 400);
}

/// Without a tokio runtime the store runs its work inline: any executor works.
#[test]
fn works_without_a_tokio_runtime() {
    let (_dir, _path, store) = new_store();
    let s = name("db");
    let (id, c) = put_change(&s, b"inline");
    let mut fut = std::pin::pin!(store.apply(c));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(fut.as_mut().poll(&mut cx).is_ready(), "completes inline");
    let mut read = std::pin::pin!(store.read_version(&s, &id));
    match read.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(Ok(Some(v))) => assert_eq!(v.value.expose(), b"inline"),
        other => panic!("{:?}", other.map(|r| r.map(|v| v.map(|v| v.meta)))),
    }
}

/// The child half of `two_processes_putting_concurrently`: does nothing unless the parent
/// set `ROTOR_STORE_TEST_CHILD` (path) and `ROTOR_STORE_TEST_KEY` (encoded master key).
#[test]
fn child_putter() {
    let (Ok(path), Ok(key)) = (
        std::env::var("ROTOR_STORE_TEST_CHILD"),
        std::env::var("ROTOR_STORE_TEST_KEY"),
    ) else {
        return;
    };
    let tag = std::env::var("ROTOR_STORE_TEST_TAG").unwrap_or_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let store = SqliteStore::open(
        Path::new(&path),
        MasterKey::from_encoded(&key).expect("key"),
    )
    .expect("open");
    let s = name("shared");
    for i in 0..200 {
        loop {
            let (_, c) = put_change(&s, format!("{tag}-{i}").as_bytes());
            match rt.block_on(store.apply(c)) {
                Ok(_) => break,
                Err(StoreError::Locked) => {}
                Err(other) => panic!("child {tag}: {other}"),
            }
        }
    }
}

#[tokio::test]
async fn two_processes_putting_concurrently() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rotor.db");
    let key = MasterKey::generate().expect("key");
    let encoded = key.encode();
    drop(SqliteStore::create(&path, key, "init").expect("create"));
    let exe = std::env::current_exe().expect("test binary");
    let children: Vec<_> = ["p1", "p2"]
        .into_iter()
        .map(|tag| {
            std::process::Command::new(&exe)
                .args(["--exact", "child_putter", "--test-threads", "1"])
                .env("ROTOR_STORE_TEST_CHILD", &path)
                .env("ROTOR_STORE_TEST_KEY", encoded.expose_secret())
                .env("ROTOR_STORE_TEST_TAG", tag)
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("spawn child")
        })
        .collect();
    for mut c in children {
        assert!(c.wait().expect("wait").success(), "a child failed");
    }
    let store = SqliteStore::open(
        &path,
        MasterKey::from_encoded(encoded.expose_secret()).expect("key"),
    )
    .expect("open");
    let s = name("shared");
    let versions = store.versions(&s).await.expect("versions");
    assert_eq!(versions.len(), 400);
    assert_eq!(versions.iter().filter(|v| v.has(Stage::Current)).count(), 1);
    assert_eq!(
        versions.iter().filter(|v| v.has(Stage::Previous)).count(),
        1
    );
    assert!(
        versions[0].has(Stage::Current),
        "the last committed put is current"
    );
    assert!(versions[1].has(Stage::Previous));
    assert_eq!(
        verify_chain(&store.audit_all().await.expect("audit")),
        Ok(401)
    );
}

/// The child half of `a_crashed_writer_leaves_a_wal_that_a_refused_open_does_not_touch`:
/// puts five values and dies without closing the store (like SIGKILL).
#[test]
fn child_crasher() {
    let (Ok(path), Ok(key)) = (
        std::env::var("ROTOR_STORE_TEST_CRASH"),
        std::env::var("ROTOR_STORE_TEST_KEY"),
    ) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let settings = Settings {
        synchronous: rotor_store_sqlite::Synchronous::Normal,
        ..Settings::default()
    };
    let store = SqliteStore::open_with(
        Path::new(&path),
        MasterKey::from_encoded(&key).expect("key"),
        settings,
    )
    .expect("open");
    for i in 0..5 {
        let (_, c) = put_change(&name("crashy"), format!("v{i}").as_bytes());
        rt.block_on(store.apply(c)).expect("put");
    }
    std::process::abort();
}

#[tokio::test]
async fn a_crashed_writer_leaves_a_wal_that_a_refused_open_does_not_touch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rotor.db");
    let key = MasterKey::generate().expect("key");
    let encoded = key.encode();
    drop(SqliteStore::create(&path, key, "init").expect("create"));
    let status = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "child_crasher", "--test-threads", "1"])
        .env("ROTOR_STORE_TEST_CRASH", &path)
        .env("ROTOR_STORE_TEST_KEY", encoded.expose_secret())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run child");
    assert!(!status.success(), "the child aborts");
    assert!(
        std::fs::metadata(wal(&path)).is_ok_and(|m| m.len() > 0),
        "the crash left a WAL"
    );
    let before = std::fs::read(&path).expect("read");
    let err = SqliteStore::open(&path, MasterKey::generate().expect("key")).expect_err("wrong key");
    assert!(matches!(err, StoreError::WrongMasterKey { .. }), "{err:?}");
    assert!(
        std::fs::read(&path).expect("read") == before,
        "no checkpoint on a refused open"
    );
    // Everything the crashed process committed is there (synchronous=NORMAL survives a crash).
    let store = SqliteStore::open(
        &path,
        MasterKey::from_encoded(encoded.expose_secret()).expect("key"),
    )
    .expect("open");
    let current = store
        .read_stage(&name("crashy"), Stage::Current)
        .await
        .expect("read")
        .expect("current");
    assert_eq!(current.value.expose(), b"v4");
    assert_eq!(
        verify_chain(&store.audit_all().await.expect("audit")),
        Ok(6)
    );
}

/// Issue 15 items 1 and 4: a failed rotation that owes its rollback is listed (and its lease
/// may be taken, a finished one's not), and a lease record's time is read under the lock, not
/// the claimer's earlier clock: audit times never go backwards along `seq`.
#[tokio::test]
async fn owed_rollbacks_are_listed_and_audit_times_follow_seq() {
    let (_dir, _path, store) = new_store();
    let s = name("owes");
    let mut r = rotation(&s);
    let id = r.id.clone();
    store
        .apply(Change::new().op(Op::BeginRotation(Box::new(r.clone()))))
        .await
        .expect("begin");
    assert!(store.owed_rollbacks().await.expect("owed").is_empty());
    r.status = RotationStatus::Failed;
    r.rollback_owed = true;
    store
        .apply(
            Change::new()
                .op(Op::SaveRotation(Box::new(r.clone())))
                .audit(AuditEvent::new("rotor", "rotation.failed").rotation(&id)),
        )
        .await
        .expect("fail");
    let owed = store.owed_rollbacks().await.expect("owed");
    assert_eq!(owed.len(), 1);
    assert_eq!(owed[0].id, id);
    // A claimer whose clock reading is an hour old (it waited, or its clock is behind).
    let stale_now = Timestamp::now() - 1.hour();
    store
        .claim(
            &id,
            "host:9:z",
            stale_now,
            stale_now + 30.seconds(),
            Takeover::of(None),
        )
        .await
        .expect("an owed rollback's lease");
    r.rollback_owed = false;
    store
        .apply(
            Change::new()
                .op(Op::SaveRotation(Box::new(r)))
                .audit(AuditEvent::new("rotor", "rotation.rollback").rotation(&id)),
        )
        .await
        .expect("settled");
    assert!(store.owed_rollbacks().await.expect("owed").is_empty());
    let err = store
        .claim(
            &id,
            "host:9:z",
            stale_now,
            stale_now + 30.seconds(),
            Takeover::IfExpired,
        )
        .await
        .expect_err("an ended rotation has no lease to take");
    assert!(matches!(err, StoreError::Ended { .. }), "{err:?}");
    let audit = store.audit_all().await.expect("audit");
    for w in audit.windows(2) {
        assert!(
            w[1].time >= w[0].time,
            "seq {} at {} is before seq {} at {}",
            w[1].seq,
            w[1].time,
            w[0].seq,
            w[0].time
        );
    }
}
