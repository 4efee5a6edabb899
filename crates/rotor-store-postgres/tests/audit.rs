//! The PostgreSQL store authenticates every audit record (a MAC under a key derived from the
//! master key, chained through the audit head row), and a store made before MACs existed
//! migrates: its old records are checked by hash up to the `audit.keyed` record the migration
//! appends, MACs apply from there.

mod common;

use common::*;
use rotor_core::Store;
use rotor_core::audit::{AuditRecord, KEYED};
use rotor_store_postgres::{PgStore, SCHEMA_VERSION};

/// Appends a correctly chained record without the key (and moves the head row), as someone
/// who can write the database but has no master key would.
fn forge_append(db: &Db, mac: Option<&str>) -> u64 {
    let last = db.psql("SELECT seq || ' ' || hash FROM rotor_audit ORDER BY seq DESC LIMIT 1");
    let (seq, hash) = last.trim().split_once(' ').expect("seq hash");
    let seq: u64 = seq.parse::<u64>().expect("seq") + 1;
    let r = AuditRecord::chain(
        seq,
        jiff::Timestamp::now(),
        rotor_core::AuditEvent::new("mallory", "secret.put"),
        hash,
    );
    let mac = mac.map_or("NULL".to_owned(), |m| format!("'{m}'"));
    db.psql(&format!(
        "INSERT INTO rotor_audit (seq, time, actor, action, secret, versions, rotation, reason, outcome, prev_hash, hash, mac)
         VALUES ({seq}, '{}', 'mallory', 'secret.put', NULL, '{{}}', NULL, NULL, 'ok', '{}', '{}', {mac});
         UPDATE rotor_audit_head SET seq = {seq}, hash = '{}', mac = {mac}",
        r.time, r.prev_hash, r.hash, r.hash
    ));
    seq
}

/// The seq `audit_verify` names, asserting the chain alone still verifies: the MACs caught it.
async fn bad_seq(store: &PgStore) -> u64 {
    let v = store.audit_verify().await.expect("read");
    rotor_core::audit::verify_chain(&v.records).expect("the chain alone passes");
    v.outcome.expect_err("tampering detected").seq
}

#[tokio::test]
async fn records_carry_macs_and_an_old_store_migrates() {
    let db = db();
    let mut keys = key_copies(3);
    let store = PgStore::init(&db.url, keys.pop().expect("key"), "alice@host")
        .await
        .expect("init");
    for i in 0..4 {
        let (_, c) = put_change(&name(&format!("s{i}")), b"v");
        store.apply(c).await.expect("put");
    }
    let v = store.audit_verify().await.expect("verify");
    let keyed = v.outcome.expect("intact");
    assert_eq!((keyed.records, keyed.keyed_from), (5, Some(1)));
    let seq = forge_append(&db, v.records[4].mac.as_deref());
    assert_eq!(bad_seq(&store).await, seq, "a forged append is named");
    drop(store);

    // The layout of schema 1 (before MACs): no `mac` columns, one applied migration. Its
    // hashes are the ones written today, so the old chain stays as it was.
    db.psql(&format!(
        "DELETE FROM rotor_audit WHERE seq = {seq};
         UPDATE rotor_audit_head SET seq = {}, hash = (SELECT hash FROM rotor_audit WHERE seq = {});
         ALTER TABLE rotor_audit DROP COLUMN mac; ALTER TABLE rotor_audit_head DROP COLUMN mac;
         DELETE FROM rotor_schema_migrations WHERE version > 1",
        seq - 1,
        seq - 1
    ));
    let store = PgStore::connect(&db.url, keys.pop().expect("key"))
        .await
        .expect("an old store opens");
    assert_eq!(
        db.psql("SELECT max(version) FROM rotor_schema_migrations"),
        SCHEMA_VERSION.to_string()
    );
    let v = store.audit_verify().await.expect("verify");
    let keyed = v.outcome.clone().expect("migrated log verifies");
    assert_eq!((keyed.records, keyed.keyed_from), (6, Some(6)));
    assert_eq!(v.records[5].event.action, KEYED);
    assert!(v.records[..5].iter().all(|r| r.mac.is_none()));

    let (_, c) = put_change(&name("after"), b"v");
    store.apply(c).await.expect("put after migrating");
    assert!(store.audit_verify().await.expect("verify").outcome.is_ok());
    let seq = forge_append(&db, None);
    assert_eq!(bad_seq(&store).await, seq, "forged append after migration");

    // A second handle (another replica) with the same key verifies the same log.
    drop(store);
    let other = PgStore::connect(&db.url, keys.pop().expect("key"))
        .await
        .expect("open");
    assert_eq!(bad_seq(&other).await, seq);
}

#[tokio::test]
async fn macs_start_again_under_the_new_master_key() {
    let db = db();
    let mut olds = key_copies(3);
    let mut news = key_copies(3);
    let store = PgStore::init(&db.url, olds.pop().expect("key"), "alice@host")
        .await
        .expect("init");
    let (_, c) = put_change(&name("a"), b"v");
    store.apply(c).await.expect("put");
    drop(store);
    let both = PgStore::connect_rotating(
        &db.url,
        news.pop().expect("key"),
        olds.pop().expect("key"),
        rotor_store_postgres::Settings::default(),
    )
    .await
    .expect("rotating");
    let (old, new) = (olds.pop().expect("key"), news.pop().expect("key"));
    both.rewrap_all(&old, &new, "alice").await.expect("rewrap");
    drop(both);
    let store = PgStore::connect(&db.url, news.pop().expect("key"))
        .await
        .expect("open with the new key");
    let (_, c) = put_change(&name("b"), b"v");
    store.apply(c).await.expect("put");
    let v = store.audit_verify().await.expect("verify");
    let keyed = v.outcome.expect("verifies under the new key");
    let start = v
        .records
        .iter()
        .find(|r| Some(r.seq) == keyed.keyed_from)
        .expect("start");
    assert_eq!(start.event.action, "store.master_key.rotate");
    let seq = forge_append(&db, None);
    assert_eq!(bad_seq(&store).await, seq);
}
