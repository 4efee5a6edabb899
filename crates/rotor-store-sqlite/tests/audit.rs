//! The SQLite store authenticates every audit record (a MAC under a key derived from the
//! master key), and a store made before MACs existed migrates: its old records are checked by
//! hash up to the `audit.keyed` record the migration appends, MACs apply from there.

use std::path::Path;

use jiff::Timestamp;
use rotor_core::audit::{AuditRecord, KEYED};
use rotor_core::store::{Change, NewVersion, Op};
use rotor_core::{AuditEvent, SecretName, SecretValue, Store, VersionId};
use rotor_seal::MasterKey;
use rotor_store_sqlite::{SCHEMA_VERSION, SqliteStore};
use secrecy::ExposeSecret;

fn copies(k: &MasterKey, n: usize) -> Vec<MasterKey> {
    let encoded = k.encode();
    (0..n)
        .map(|_| MasterKey::from_encoded(encoded.expose_secret()).expect("same key"))
        .collect()
}

fn put(secret: &str) -> Change {
    let secret = SecretName::new(secret).expect("name");
    let id = VersionId::generate();
    Change::new()
        .op(Op::InsertVersion {
            version: NewVersion {
                secret: secret.clone(),
                id: id.clone(),
                created_by: "alice@host".into(),
                created_at: Timestamp::now(),
                metadata: serde_json::json!({}),
                value: SecretValue::from_slice(b"v"),
            },
            stage: None,
        })
        .op(Op::Promote {
            secret: secret.clone(),
            version: id.clone(),
        })
        .audit(
            AuditEvent::new("alice@host", "secret.put")
                .secret(&secret)
                .version(&id),
        )
}

fn raw(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).expect("raw sqlite")
}

/// Appends a correctly chained record without the key, as someone holding only the file would.
fn forge_append(path: &Path, mac: Option<&str>) -> u64 {
    let conn = raw(path);
    let (seq, hash): (i64, String) = conn
        .query_row(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("last");
    let seq = seq as u64 + 1;
    let r = AuditRecord::chain(
        seq,
        Timestamp::now(),
        AuditEvent::new("mallory", "secret.put"),
        &hash,
    );
    conn.execute(
        "INSERT INTO audit (seq, time, actor, action, secret, versions, rotation, reason, outcome, prev_hash, hash, mac)
         VALUES (?1, ?2, ?3, ?4, NULL, '[]', NULL, NULL, 'ok', ?5, ?6, ?7)",
        rusqlite::params![
            seq as i64,
            r.time.to_string(),
            r.event.actor,
            r.event.action,
            r.prev_hash,
            r.hash,
            mac
        ],
    )
    .expect("insert");
    seq
}

/// The seq `audit_verify` names, asserting the chain alone still verifies: the MACs caught it.
async fn bad_seq(store: &SqliteStore) -> u64 {
    let v = store.audit_verify().await.expect("read");
    rotor_core::audit::verify_chain(&v.records).expect("the chain alone passes");
    v.outcome.expect_err("tampering detected").seq
}

#[tokio::test]
async fn every_record_carries_a_mac_that_verifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rotor.db");
    let key = MasterKey::generate().expect("key");
    let mut keys = copies(&key, 2);
    let store = SqliteStore::create(&path, keys.pop().expect("key"), "alice@host").expect("create");
    for i in 0..5 {
        store.apply(put(&format!("s{i}"))).await.expect("put");
    }
    let v = store.audit_verify().await.expect("verify");
    let keyed = v.outcome.expect("intact");
    assert_eq!((keyed.records, keyed.keyed_from), (6, Some(1)));
    assert!(
        v.records
            .iter()
            .all(|r| r.mac.as_deref().is_some_and(|m| m.len() == 64))
    );

    // A chained append without the key: with no MAC, and with a MAC copied from a record.
    let seq = forge_append(&path, None);
    assert_eq!(bad_seq(&store).await, seq);
    raw(&path)
        .execute("DELETE FROM audit WHERE seq = ?1", [seq as i64])
        .expect("undo");
    let copied = v.records[5].mac.clone();
    let seq = forge_append(&path, copied.as_deref());
    assert_eq!(bad_seq(&store).await, seq);
    raw(&path)
        .execute("DELETE FROM audit WHERE seq = ?1", [seq as i64])
        .expect("undo");
    assert!(store.audit_verify().await.expect("verify").outcome.is_ok());

    // A store opened with another master key refuses to open at all (key check), so the
    // MACs are only ever checked under the key the store was made with.
    drop(store);
    let reopened = SqliteStore::open(&path, keys.pop().expect("key")).expect("open");
    assert!(
        reopened
            .audit_verify()
            .await
            .expect("verify")
            .outcome
            .is_ok()
    );
}

#[tokio::test]
async fn a_store_made_before_macs_migrates_and_verifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rotor.db");
    let key = MasterKey::generate().expect("key");
    let mut keys = copies(&key, 2);
    let store = SqliteStore::create(&path, keys.pop().expect("key"), "alice@host").expect("create");
    for i in 0..4 {
        store.apply(put(&format!("s{i}"))).await.expect("put");
    }
    drop(store);
    // The layout of schema 1 (before MACs): no `mac` column, `user_version` 1. The hashes
    // of schema 1 are the ones written today, so the old chain stays as it was.
    raw(&path)
        .execute_batch("ALTER TABLE audit DROP COLUMN mac; PRAGMA user_version = 1;")
        .expect("old layout");

    let store = SqliteStore::open(&path, keys.pop().expect("key")).expect("an old store opens");
    let version: i64 = raw(&path)
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, SCHEMA_VERSION);
    let v = store.audit_verify().await.expect("verify");
    let keyed = v.outcome.clone().expect("migrated log verifies");
    assert_eq!((keyed.records, keyed.keyed_from), (6, Some(6)));
    let marker = &v.records[5];
    assert_eq!(marker.event.action, KEYED);
    assert!(
        v.records[..5].iter().all(|r| r.mac.is_none()),
        "old records keep no MAC"
    );

    // New records carry MACs; a forged append after the migration is detected.
    store.apply(put("after")).await.expect("put");
    assert!(store.audit_verify().await.expect("verify").outcome.is_ok());
    let seq = forge_append(&path, None);
    assert_eq!(bad_seq(&store).await, seq);
    raw(&path)
        .execute("DELETE FROM audit WHERE seq = ?1", [seq as i64])
        .expect("undo");

    // Stripping the MACs of the new records so they pass as old ones is detected too.
    raw(&path)
        .execute("UPDATE audit SET mac = NULL WHERE seq = 7", [])
        .expect("strip");
    assert_eq!(bad_seq(&store).await, 7);
    raw(&path)
        .execute("UPDATE audit SET mac = NULL", [])
        .expect("strip all");
    assert!(store.audit_verify().await.expect("verify").outcome.is_err());
}

#[tokio::test]
async fn rewriting_an_old_record_with_the_chain_recomputed_is_detected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rotor.db");
    let key = MasterKey::generate().expect("key");
    let store = SqliteStore::create(&path, key, "alice@host").expect("create");
    for i in 0..4 {
        store.apply(put(&format!("s{i}"))).await.expect("put");
    }
    let mut recs = store.audit_all().await.expect("all");
    recs[2].event.actor = "nobody".into();
    let conn = raw(&path);
    for i in 2..recs.len() {
        let prev = recs[i - 1].hash.clone();
        let mac = recs[i].mac.clone();
        recs[i] = AuditRecord::chain(recs[i].seq, recs[i].time, recs[i].event.clone(), &prev);
        recs[i].mac = mac;
        conn.execute(
            "UPDATE audit SET actor = ?1, prev_hash = ?2, hash = ?3 WHERE seq = ?4",
            rusqlite::params![
                recs[i].event.actor,
                recs[i].prev_hash,
                recs[i].hash,
                recs[i].seq as i64
            ],
        )
        .expect("rewrite");
    }
    assert!(rotor_core::audit::verify_chain(&store.audit_all().await.expect("all")).is_ok());
    assert_eq!(bad_seq(&store).await, 3);
}

#[tokio::test]
async fn macs_apply_again_after_a_master_key_rotation_and_an_import() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rotor.db");
    let old = MasterKey::generate().expect("key");
    let new = MasterKey::generate().expect("key");
    let mut olds = copies(&old, 3);
    let mut news = copies(&new, 3);
    let store = SqliteStore::create(&path, olds.pop().expect("key"), "alice@host").expect("create");
    store.apply(put("a")).await.expect("put");
    drop(store);
    let rotating = SqliteStore::open_rotating(
        &path,
        news.pop().expect("key"),
        olds.pop().expect("key"),
        rotor_store_sqlite::Settings::default(),
    )
    .expect("open rotating");
    rotating
        .rewrap_all(&old, &new, "bob@host")
        .await
        .expect("rotate");
    drop(rotating);
    let store = SqliteStore::open(&path, news.pop().expect("key")).expect("open with new");
    store.apply(put("b")).await.expect("put");
    let v = store.audit_verify().await.expect("verify");
    let keyed = v.outcome.expect("verifies under the new key");
    let marker = v
        .records
        .iter()
        .find(|r| Some(r.seq) == keyed.keyed_from)
        .expect("marker");
    assert_eq!(marker.event.action, "store.master_key.rotate");
    assert!(keyed.keyed_from > Some(1));

    // A log copied into a store under another key verifies there from the migrate record.
    let dump = store.export().await.expect("export");
    let n = dump.audit.len() as u64;
    let target_path = dir.path().join("target.db");
    let target = SqliteStore::create(&target_path, olds.pop().expect("key"), "alice@host")
        .expect("create target");
    target
        .import(dump, AuditEvent::new("alice@host", "store.migrate"))
        .await
        .expect("import");
    let keyed = target
        .audit_verify()
        .await
        .expect("verify")
        .outcome
        .expect("imported log verifies");
    assert_eq!(keyed.keyed_from, Some(n + 1));
    let seq = forge_append(&target_path, None);
    assert_eq!(bad_seq(&target).await, seq);
}
