//! Behaviour of the PostgreSQL store on a real PostgreSQL 15 (one throwaway server per
//! test): the shared store contract (`rotor_test_support::store_contract`, module
//! `contract` below), plus what only a PostgreSQL schema has (migrations table, SQL
//! constraints, raw rows, the audit head row, two initialisations at once).

mod common;

use common::*;
use rotor_core::audit::{AuditEvent, verify_chain};
use rotor_core::store::{Change, Op};
use rotor_core::{Stage, Store, StoreError, VersionId};
use rotor_seal::MasterKey;
use rotor_store_postgres::{PgStore, SCHEMA_VERSION};

mod contract {
    use super::common::Pg;
    rotor_test_support::store_contract_tests!(Pg::start());
}

#[tokio::test]
async fn init_writes_the_schema_once_and_refuses_a_second_init() {
    let db = db();
    let store = new_store(&db).await;
    // What a new store holds is the contract's `a_new_store_holds_only_its_init_record`.
    assert_eq!(
        db.psql("SELECT version || ' ' || name FROM rotor_schema_migrations ORDER BY version"),
        "1 0001_init\n2 0002_audit_mac"
    );
    assert!(
        !store.target().contains(db.pg.admin_password()),
        "no password in the target"
    );
    drop(store);
    let before = db.dump();
    let again = PgStore::init(&db.url, MasterKey::generate().expect("key"), "bob").await;
    assert!(
        matches!(again, Err(StoreError::AlreadyExists { .. })),
        "{again:?}"
    );
    assert_eq!(db.dump(), before);
}

#[tokio::test]
async fn two_processes_initialising_at_once_get_one_store() {
    let db = db();
    let (a, b) = (
        PgStore::init(&db.url, MasterKey::generate().expect("key"), "a"),
        PgStore::init(&db.url, MasterKey::generate().expect("key"), "b"),
    );
    let (a, b) = tokio::join!(a, b);
    let oks = [a.is_ok(), b.is_ok()].iter().filter(|x| **x).count();
    assert_eq!(oks, 1, "{a:?} {b:?}");
    let loser = if a.is_ok() { b } else { a };
    assert!(
        matches!(loser, Err(StoreError::AlreadyExists { .. })),
        "{loser:?}"
    );
    assert_eq!(
        db.psql("SELECT count(*) FROM rotor_schema_migrations"),
        SCHEMA_VERSION.to_string()
    );
}

#[tokio::test]
async fn the_schema_allows_one_version_per_stage_and_one_running_rotation() {
    let db = db();
    let store = new_store(&db).await;
    let s = name("db");
    let (v1, c1) = put_change(&s, b"one");
    store.apply(c1).await.expect("put");
    let (v2, c2) = put_change(&s, b"two");
    store.apply(c2).await.expect("put");
    let second_current = db.pg.psql_db(
        "rotor",
        &format!(
            "INSERT INTO rotor_stages (secret, stage, version_id) VALUES ('db', 'current', '{v1}')"
        ),
    );
    assert!(
        second_current.is_err(),
        "a second current must violate the primary key"
    );
    // A rotation is planned against the current version (the store refuses a stale plan).
    let mut planned = rotation(&s);
    planned.previous_version = Some(v2.clone());
    store
        .apply(Change::new().op(Op::BeginRotation(Box::new(planned))))
        .await
        .expect("begin");
    let second_running = db.pg.psql_db(
        "rotor",
        "INSERT INTO rotor_rotations (id, secret, status, step, started_at, record)
         VALUES ('x', 'db', 'running', 'create', 'now', '{}')",
    );
    assert!(
        second_running.is_err(),
        "the partial unique index refuses a second running rotation"
    );
}

/// The contract's `values_are_not_stored_in_plaintext` scans every row as text (bytea as
/// hex); this adds the versions table by name and the server's own escape format.
#[tokio::test]
async fn sealed_values_are_not_plaintext_in_the_versions_table() {
    let db = db();
    let store = new_store(&db).await;
    let plaintext = "correct-horse-battery-staple-4f9a1c";
    for i in 0..20 {
        let (_, c) = put_change(&name(&format!("secret-{i}")), plaintext.as_bytes());
        store.apply(c).await.expect("put");
    }
    assert!(
        db.dump().contains("== rotor_versions"),
        "the contract's scan covers the versions table"
    );
    let escaped = db.psql("SELECT string_agg(encode(sealed, 'escape'), '') FROM rotor_versions");
    assert!(
        escaped.len() > 20 * plaintext.len(),
        "the sealed column is read"
    );
    assert!(!escaped.contains(plaintext));
}

#[tokio::test]
async fn a_ciphertext_copied_to_another_row_is_tampered() {
    let db = db();
    let store = new_store(&db).await;
    let (a, b) = (name("alpha"), name("beta"));
    let (a1, c) = put_change(&a, b"alpha-value");
    store.apply(c).await.expect("put");
    let (a2, c) = put_change(&a, b"alpha-value-2");
    store.apply(c).await.expect("put");
    let (b1, c) = put_change(&b, b"beta-value");
    store.apply(c).await.expect("put");
    let copy = |from: &VersionId, to: &VersionId| {
        db.psql(&format!(
            "UPDATE rotor_versions SET sealed = (SELECT sealed FROM rotor_versions WHERE id = '{from}') WHERE id = '{to}'"
        ));
    };
    copy(&a2, &a1); // same secret, other version
    copy(&a2, &b1); // other secret
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
    let ok = store
        .read_version(&a, &a2)
        .await
        .expect("read")
        .expect("row");
    assert_eq!(ok.value.expose(), b"alpha-value-2");

    db.psql(&format!(
        "UPDATE rotor_versions SET sealed = overlay(sealed placing '\\x00'::bytea from length(sealed)) WHERE id = '{a2}'"
    ));
    let err = store.read_version(&a, &a2).await.expect_err("flipped");
    assert!(matches!(err, StoreError::Tampered { .. }), "{err:?}");
}

#[tokio::test]
async fn a_wrong_master_key_is_refused_and_nothing_is_written() {
    let db = db();
    let (k, k_copy) = key_pair();
    let store = PgStore::init(&db.url, k, "alice").await.expect("init");
    let (_, c) = put_change(&name("db"), b"v");
    store.apply(c).await.expect("put");
    drop(store);
    let before = db.dump();
    let err = PgStore::connect(&db.url, MasterKey::generate().expect("key"))
        .await
        .expect_err("wrong key");
    assert!(matches!(err, StoreError::WrongMasterKey { .. }), "{err:?}");
    assert_eq!(db.dump(), before, "nothing written");

    let store = PgStore::connect(&db.url, k_copy).await.expect("right key");
    let cur = store
        .read_stage(&name("db"), Stage::Current)
        .await
        .expect("read")
        .expect("current");
    assert_eq!(cur.value.expose(), b"v");
}

#[tokio::test]
async fn missing_too_new_and_edited_schemas_are_refused() {
    let db = db();
    // An empty database.
    let err = PgStore::connect(&db.url, MasterKey::generate().expect("key"))
        .await
        .expect_err("empty");
    assert!(matches!(err, StoreError::NotInitialized { .. }), "{err:?}");
    assert!(err.to_string().contains("rotor init"));
    assert!(!err.to_string().contains(db.pg.admin_password()));
    assert_eq!(
        db.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"),
        "0",
        "open never creates"
    );

    let (k, k2) = key_pair();
    drop(PgStore::init(&db.url, k, "alice").await.expect("init"));

    // Newer schema.
    let future = SCHEMA_VERSION + 1;
    db.psql(&format!("INSERT INTO rotor_schema_migrations (version, name, checksum) VALUES ({future}, 'future', 'x')"));
    let before = db.dump();
    let err = PgStore::connect(&db.url, MasterKey::generate().expect("key"))
        .await
        .expect_err("too new");
    match err {
        StoreError::TooNew {
            found, supported, ..
        } => {
            assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(db.dump(), before);
    db.psql(&format!(
        "DELETE FROM rotor_schema_migrations WHERE version = {future}"
    ));

    // An applied migration whose SQL differs from the embedded one.
    db.psql("UPDATE rotor_schema_migrations SET checksum = 'edited' WHERE version = 1");
    let err = PgStore::connect(&db.url, MasterKey::generate().expect("key"))
        .await
        .expect_err("edited");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    let unknown_url = db.url.replace("/rotor", "/nope");
    let err = PgStore::connect(&unknown_url, k2)
        .await
        .expect_err("no database");
    assert!(!err.to_string().contains(db.pg.admin_password()), "{err}");
}

/// The chain itself is the contract's `the_audit_chain_verifies_after_many_changes`; here:
/// the head row follows the log, and an edited or deleted row is caught (also after
/// reconnecting).
#[tokio::test]
async fn an_edited_audit_row_breaks_the_chain() {
    let db = db();
    let (k, k2) = key_pair();
    let store = PgStore::init(&db.url, k, "alice").await.expect("init");
    for i in 0..30 {
        let (_, c) = put_change(&name(&format!("s{i}")), b"v");
        let c = c.audit(AuditEvent::new("bob", "secret.note").reason(Some("two per change")));
        store.apply(c).await.expect("put");
    }
    assert_eq!(
        verify_chain(&store.audit_all().await.expect("audit")),
        Ok(61)
    );
    assert_eq!(db.psql("SELECT seq FROM rotor_audit_head"), "61");

    db.psql("UPDATE rotor_audit SET reason = 'nothing to see' WHERE seq = 17");
    let err = verify_chain(&store.audit_all().await.expect("audit")).expect_err("edited");
    assert_eq!(err.seq, 17);
    drop(store);
    let store = PgStore::connect(&db.url, k2).await.expect("open");
    db.psql("UPDATE rotor_audit SET reason = 'two per change' WHERE seq = 17; DELETE FROM rotor_audit WHERE seq = 5;");
    let err = verify_chain(&store.audit_all().await.expect("audit")).expect_err("deleted");
    assert_eq!(err.position, 5);
}
