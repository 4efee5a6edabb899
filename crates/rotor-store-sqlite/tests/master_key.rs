//! Master-key rotation of the SQLite store: rewrap in batches, crash in the middle, resume,
//! and the old key refused once the rotation has committed.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use rotor_core::audit::{AuditEvent, verify_chain};
use rotor_core::store::{Change, NewVersion, Op};
use rotor_core::{SecretName, SecretValue, Store, StoreError, VersionId};
use rotor_seal::MasterKey;
use rotor_store_sqlite::{Settings, SqliteStore};
use secrecy::ExposeSecret;

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

/// `rotor put`: insert and promote in one change.
fn put_change(secret: &SecretName, value: &[u8]) -> (VersionId, Change) {
    let id = VersionId::generate();
    let change = Change::new()
        .op(Op::InsertVersion {
            version: NewVersion {
                secret: secret.clone(),
                id: id.clone(),
                created_by: "alice@host".into(),
                created_at: Timestamp::now(),
                metadata: serde_json::json!({}),
                value: SecretValue::from_slice(value),
            },
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

type Values = Vec<(SecretName, VersionId, String)>;

/// A store under a fresh key holding 30 secrets × 4 versions.
async fn seeded(old: MasterKey) -> (tempfile::TempDir, PathBuf, Values) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rotor.db");
    let store = SqliteStore::create(&path, old, "alice@host").expect("create");
    let mut values = Vec::new();
    for i in 0..30 {
        let s = name(&format!("k{i}"));
        for j in 0..4 {
            let value = format!("plaintext-value-{i}-{j}");
            let (id, c) = put_change(&s, value.as_bytes());
            store.apply(c).await.expect("put");
            values.push((s.clone(), id, value));
        }
    }
    drop(store);
    (dir, path, values)
}

fn count_under(path: &Path, key: &MasterKey) -> i64 {
    rusqlite::Connection::open(path)
        .expect("raw sqlite")
        .query_row(
            "SELECT count(*) FROM versions WHERE key_id = ?1",
            [key.key_id().to_string()],
            |r| r.get(0),
        )
        .expect("count")
}

async fn assert_all_readable(store: &SqliteStore, values: &Values) {
    for (s, id, value) in values {
        let v = store.read_version(s, id).await.expect("read").expect("row");
        assert_eq!(v.value.expose(), value.as_bytes(), "{s} {id}");
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The database file and its WAL, as bytes.
fn file_bytes(path: &Path) -> Vec<u8> {
    let mut out = std::fs::read(path).expect("read db");
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    if let Ok(w) = std::fs::read(PathBuf::from(wal)) {
        out.extend(w);
    }
    out
}

#[tokio::test]
async fn a_full_rotation_rewraps_everything_and_moves_the_key_check() {
    let mut old = key_copies(4);
    let mut new = key_copies(4);
    let (_dir, path, values) = seeded(old.pop().expect("key")).await;
    let (k_old, k_new) = (old.pop().expect("key"), new.pop().expect("key"));

    let rotating = SqliteStore::open_rotating(
        &path,
        new.pop().expect("key"),
        old.pop().expect("key"),
        Settings::default(),
    )
    .expect("both keys");
    assert_eq!(
        rotating
            .rewrap_all(&k_old, &k_new, "bob@host")
            .await
            .expect("rewrap"),
        120
    );
    assert_eq!(count_under(&path, &k_new), 120);
    assert_eq!(count_under(&path, &k_old), 0);
    assert_all_readable(&rotating, &values).await;
    let audit = rotating.audit_all().await.expect("audit");
    verify_chain(&audit).expect("chain");
    let last = audit.last().expect("records");
    assert_eq!(last.event.action, "store.master_key.rotate");
    assert_eq!(last.event.actor, "bob@host");
    let reason = last.event.reason.as_deref().expect("reason");
    assert!(reason.contains(&k_old.key_id().to_string()), "{reason}");
    assert!(reason.contains(&k_new.key_id().to_string()), "{reason}");
    drop(rotating);

    // Only the new key opens the store now.
    let err = SqliteStore::open(&path, k_old).expect_err("old key refused");
    assert!(matches!(err, StoreError::WrongMasterKey { .. }), "{err:?}");
    let store = SqliteStore::open(&path, k_new).expect("new key opens");
    assert_all_readable(&store, &values).await;
    // New writes are sealed under the new key and read back.
    let (id, c) = put_change(&name("after"), b"after-value");
    store.apply(c).await.expect("put");
    let v = store
        .read_version(&name("after"), &id)
        .await
        .expect("read")
        .expect("row");
    assert_eq!(v.value.expose(), b"after-value");
    drop(store);

    // Rewrapping never wrote a value in plaintext, to the file or its WAL.
    let bytes = file_bytes(&path);
    for (_, _, value) in &values {
        assert!(!contains(&bytes, value.as_bytes()), "{value} in the file");
    }
    assert!(!contains(&bytes, b"after-value"));
}

#[tokio::test]
async fn an_interrupted_rewrap_leaves_every_value_readable_and_completes() {
    let mut old = key_copies(6);
    let mut new = key_copies(5);
    let (_dir, path, values) = seeded(old.pop().expect("key")).await;
    let (k_old, k_new) = (old.pop().expect("key"), new.pop().expect("key"));

    // The rotation starts; two batches commit, a value is written, then the process dies.
    let rotating = SqliteStore::open_rotating(
        &path,
        new.pop().expect("key"),
        old.pop().expect("key"),
        Settings::default(),
    )
    .expect("both keys");
    for _ in 0..2 {
        assert_eq!(
            rotating
                .rewrap_batch(&k_old, &k_new, 25)
                .await
                .expect("batch"),
            25
        );
    }
    let (late_id, c) = put_change(&name("late"), b"late-value");
    rotating.apply(c).await.expect("put during the rewrap");
    drop(rotating);
    assert_eq!(count_under(&path, &k_new), 51);
    assert_eq!(count_under(&path, &k_old), 70);

    // The old key alone still opens the store (the key check is still its own) and reads
    // the rows not yet rewrapped; a rewrapped one is a clear error naming the row.
    let old_only = SqliteStore::open(&path, old.pop().expect("key")).expect("old key opens");
    let (s, id, value) = &values[values.len() - 1];
    let v = old_only
        .read_version(s, id)
        .await
        .expect("read")
        .expect("row");
    assert_eq!(v.value.expose(), value.as_bytes());
    let (s0, id0, _) = &values[0];
    let err = old_only.read_version(s0, id0).await.expect_err("rewrapped");
    assert!(matches!(err, StoreError::WrongMasterKey { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(s0.as_str()) && msg.contains(id0.as_str()),
        "{msg}"
    );
    assert!(!msg.contains("plaintext-value"), "{msg}");
    drop(old_only);

    // The new key alone does not open it yet.
    let err = SqliteStore::open(&path, new.pop().expect("key")).expect_err("not yet");
    assert!(matches!(err, StoreError::WrongMasterKey { .. }), "{err:?}");

    // After the crash, with both keys, every value opens.
    let both = SqliteStore::open_rotating(
        &path,
        new.pop().expect("key"),
        old.pop().expect("key"),
        Settings::default(),
    )
    .expect("both keys");
    assert_all_readable(&both, &values).await;

    // Re-running completes it (70 left), then again rewraps nothing.
    assert_eq!(
        both.rewrap_all(&k_old, &k_new, "alice")
            .await
            .expect("rewrap"),
        70
    );
    assert_eq!(
        both.rewrap_all(&k_old, &k_new, "alice")
            .await
            .expect("idempotent"),
        0
    );
    assert_eq!(count_under(&path, &k_new), 121);
    drop(both);

    let err = SqliteStore::open(&path, old.pop().expect("key")).expect_err("old refused");
    assert!(matches!(err, StoreError::WrongMasterKey { .. }), "{err:?}");
    let store = SqliteStore::open(&path, k_new).expect("new key opens");
    assert_all_readable(&store, &values).await;
    let late = store
        .read_version(&name("late"), &late_id)
        .await
        .expect("read")
        .expect("row");
    assert_eq!(late.value.expose(), b"late-value");
    let audit = store.audit_all().await.expect("audit");
    verify_chain(&audit).expect("chain");
    assert_eq!(
        audit
            .iter()
            .filter(|r| r.event.action == "store.master_key.rotate")
            .count(),
        2
    );
    drop(store);
    // `open_rotating` still works after the rotation (the key check is the new key's).
    SqliteStore::open_rotating(&path, k_old, new.pop().expect("key"), Settings::default())
        .expect("either order of keys");
}

#[tokio::test]
async fn rows_written_by_an_old_key_handle_during_the_rewrap_are_caught_at_the_end() {
    let mut old = key_copies(4);
    let mut new = key_copies(3);
    let (_dir, path, mut values) = seeded(old.pop().expect("key")).await;
    let (k_old, k_new) = (old.pop().expect("key"), new.pop().expect("key"));
    let rotating = SqliteStore::open_rotating(
        &path,
        new.pop().expect("key"),
        old.pop().expect("key"),
        Settings::default(),
    )
    .expect("both keys");
    // A second process still on the old key alone.
    let laggard = SqliteStore::open(&path, old.pop().expect("key")).expect("old key");
    rotating
        .rewrap_batch(&k_old, &k_new, 100)
        .await
        .expect("batch");
    let (id, c) = put_change(&name("k0"), b"laggard-value");
    laggard.apply(c).await.expect("put under the old key");
    values.push((name("k0"), id, "laggard-value".into()));
    assert_eq!(
        rotating
            .rewrap_all(&k_old, &k_new, "alice")
            .await
            .expect("rewrap"),
        21
    );
    assert_eq!(count_under(&path, &k_old), 0);
    drop((rotating, laggard));
    let store = SqliteStore::open(&path, new.pop().expect("key")).expect("new key");
    assert_all_readable(&store, &values).await;
}

#[tokio::test]
async fn a_wrong_old_key_is_refused_and_the_store_is_left_as_it_was() {
    let mut old = key_copies(3);
    let (_dir, path, values) = seeded(old.pop().expect("key")).await;
    let stranger = MasterKey::generate().expect("key");
    let new = MasterKey::generate().expect("key");

    // Neither key matches the key check: refused at open.
    let err = SqliteStore::open_rotating(
        &path,
        MasterKey::generate().expect("key"),
        MasterKey::generate().expect("key"),
        Settings::default(),
    )
    .expect_err("neither key");
    assert!(matches!(err, StoreError::WrongMasterKey { .. }), "{err:?}");

    // A handle on the right keys, asked to rewrap from a key that sealed nothing here.
    let rotating = SqliteStore::open_rotating(
        &path,
        MasterKey::from_encoded(new.encode().expose_secret()).expect("copy"),
        old.pop().expect("key"),
        Settings::default(),
    )
    .expect("both keys");
    let err = rotating
        .rewrap_all(&stranger, &new, "alice")
        .await
        .expect_err("wrong old key");
    assert!(matches!(err, StoreError::WrongMasterKey { .. }), "{err:?}");
    assert!(err.to_string().contains("version"), "{err}");
    drop(rotating);
    assert_eq!(count_under(&path, &new), 0);
    let store = SqliteStore::open(&path, old.pop().expect("key")).expect("old key still opens");
    assert_all_readable(&store, &values).await;
}
