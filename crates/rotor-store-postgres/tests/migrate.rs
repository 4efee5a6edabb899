//! `rotor store migrate` across stores on a real PostgreSQL: SQLite → PostgreSQL,
//! PostgreSQL → SQLite and PostgreSQL → PostgreSQL, plus refusals and all-or-nothing.

mod common;

use std::path::PathBuf;

use common::*;
use jiff::{Timestamp, ToSpan};
use rotor_core::audit::{AuditEvent, verify_chain};
use rotor_core::store::{Change, Dump, NewVersion, Op, Takeover};
use rotor_core::{
    RotationStatus, SecretName, SecretValue, Stage, Step, Store, StoreError, VersionId,
};
use rotor_seal::MasterKey;
use rotor_store_postgres::PgStore;
use rotor_store_sqlite::SqliteStore;

fn sqlite_store() -> (tempfile::TempDir, PathBuf, SqliteStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rotor.db");
    let store = SqliteStore::create(&path, MasterKey::generate().expect("key"), "alice@host")
        .expect("create");
    (dir, path, store)
}

fn version(secret: &SecretName, value: &[u8]) -> NewVersion {
    NewVersion {
        secret: secret.clone(),
        id: VersionId::generate(),
        created_by: "alice@host".into(),
        created_at: Timestamp::now(),
        metadata: serde_json::json!({"kid": "k1", "n": value.len()}),
        value: SecretValue::from_slice(value),
    }
}

fn put(secret: &SecretName, value: &[u8]) -> Change {
    let v = version(secret, value);
    let id = v.id.clone();
    Change::new()
        .op(Op::InsertVersion {
            version: v,
            stage: Some(Stage::Current),
        })
        .audit(
            AuditEvent::new("alice@host", "secret.put")
                .secret(secret)
                .version(&id),
        )
}

/// Secrets with current, previous and pending versions, a finished rotation, a running
/// one holding a lease, and the audit records of all of it.
async fn populate(store: &dyn Store) {
    for i in 0..5 {
        let s = name(&format!("app-db-{i}"));
        for j in 0..3 {
            store
                .apply(put(&s, format!("secret-value-{i}-{j}").as_bytes()))
                .await
                .expect("put");
        }
    }
    for (i, finish) in [(0, true), (1, false)] {
        let s = name(&format!("app-db-{i}"));
        let current = store
            .read_stage(&s, Stage::Current)
            .await
            .expect("read")
            .expect("current");
        let mut r = rotation(&s);
        r.previous_version = Some(current.meta.id);
        store
            .apply(Change::new().op(Op::BeginRotation(Box::new(r.clone()))))
            .await
            .expect("begin");
        let now = Timestamp::now();
        let lease = store
            .claim(
                &r.id,
                "rotor@host",
                now,
                now + 3600.seconds(),
                Takeover::IfExpired,
            )
            .await
            .expect("claim");
        let pending = version(&s, format!("secret-value-rotated-{i}").as_bytes());
        let pid = pending.id.clone();
        r.lease = Some(lease);
        r.pending_version = Some(pid.clone());
        r.step_done = true;
        let mut change = Change::new().op(Op::InsertVersion {
            version: pending,
            stage: Some(Stage::Pending),
        });
        if finish {
            r.status = RotationStatus::Completed;
            r.step = Step::Retire;
            change = change.op(Op::Promote {
                secret: s.clone(),
                version: pid,
            });
        }
        store
            .apply(
                change
                    .op(Op::SaveRotation(Box::new(r)))
                    .audit(AuditEvent::new("rotor", "rotation.step").secret(&s)),
            )
            .await
            .expect("step");
    }
}

fn migrate_event(from: &str) -> AuditEvent {
    AuditEvent::new("alice@host", "store.migrate").reason(Some(&format!("from {from}")))
}

/// Asserts `b` holds what `a` held: versions (metadata, stages, values), rotations, and
/// the audit log followed by the migrate event.
fn assert_same(a: &Dump, b: &Dump) {
    assert_eq!(a.versions.len(), b.versions.len());
    for (x, y) in a.versions.iter().zip(&b.versions) {
        assert_eq!(x.meta, y.meta);
        assert!(x.value.ct_eq(&y.value), "{} {}", x.meta.secret, x.meta.id);
    }
    assert_eq!(a.rotations, b.rotations);
    assert_eq!(b.audit.len(), a.audit.len() + 1);
    assert_eq!(a.audit[..], b.audit[..a.audit.len()]);
    verify_chain(&b.audit).expect("chain");
    let last = b.audit.last().expect("records");
    assert_eq!(last.event.action, "store.migrate");
    assert_eq!(last.seq, a.audit.len() as u64 + 1);
}

/// The ordinary reads answer the same on both stores.
async fn assert_same_reads(a: &dyn Store, b: &dyn Store) {
    assert_eq!(
        a.summaries().await.expect("summaries").len(),
        b.summaries().await.expect("summaries").len()
    );
    for i in 0..5 {
        let s = name(&format!("app-db-{i}"));
        assert_eq!(
            a.versions(&s).await.expect("versions"),
            b.versions(&s).await.expect("versions")
        );
        for stage in [Stage::Current, Stage::Previous, Stage::Pending] {
            let x = a.read_stage(&s, stage).await.expect("read");
            let y = b.read_stage(&s, stage).await.expect("read");
            assert_eq!(x.as_ref().map(|v| &v.meta), y.as_ref().map(|v| &v.meta));
            assert_eq!(
                x.map(|v| v.value.expose().to_vec()),
                y.map(|v| v.value.expose().to_vec())
            );
        }
    }
    assert_eq!(
        a.open_rotations().await.expect("open"),
        b.open_rotations().await.expect("open")
    );
}

/// After an import the store keeps working: a put and a lease take their place after the
/// migrate record, lease tokens keep growing, and the chain still verifies.
async fn assert_usable(store: &dyn Store) {
    let running = store.open_rotations().await.expect("open");
    let r = running
        .iter()
        .find(|r| r.status == RotationStatus::Running)
        .expect("a running rotation");
    let now = Timestamp::now();
    let lease = store
        .claim(
            &r.id,
            "other@host",
            now,
            now + 60.seconds(),
            Takeover::of(r.lease.as_ref()),
        )
        .await
        .expect("claim");
    assert_eq!(lease.token, r.lease.as_ref().expect("lease").token + 1);
    store
        .apply(put(&name("after-migrate"), b"after-value"))
        .await
        .expect("put");
    let audit = store.audit_all().await.expect("audit");
    verify_chain(&audit).expect("chain");
    let n = audit.len();
    assert_eq!(audit[n - 3].event.action, "store.migrate");
    assert_eq!(audit[n - 1].event.action, "secret.put");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_to_postgres_copies_everything() {
    let (_dir, _path, source) = sqlite_store();
    populate(&source).await;
    let before = source.export().await.expect("export");
    assert_eq!(before.versions.len(), 17);
    assert_eq!(before.rotations.len(), 2);

    let db = db();
    let target = new_store(&db).await;
    target
        .import(
            source.export().await.expect("export"),
            migrate_event("sqlite"),
        )
        .await
        .expect("import");
    let after = target.export().await.expect("export");
    assert_same(&before, &after);
    assert_same_reads(&source, &target).await;
    // Sealed under the target's key: no value in any table.
    let dump = db.dump();
    for v in &before.versions {
        let text = std::str::from_utf8(v.value.expose()).expect("utf-8 test values");
        assert!(!dump.contains(text), "{text} in the database");
        let hex: String = v
            .value
            .expose()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(!dump.contains(&hex), "{text} in the database (hex)");
    }
    assert_usable(&target).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_to_sqlite_copies_everything() {
    let db = db();
    let source = new_store(&db).await;
    populate(&source).await;
    let before = source.export().await.expect("export");
    assert_eq!(before.versions.len(), 17);
    assert_eq!(before.audit[0].event.action, "store.init");

    let (_dir, _path, target) = sqlite_store();
    target
        .import(
            source.export().await.expect("export"),
            migrate_event("postgres"),
        )
        .await
        .expect("import");
    let after = target.export().await.expect("export");
    assert_same(&before, &after);
    assert_same_reads(&source, &target).await;
    assert_usable(&target).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_to_postgres_copies_everything() {
    let db = db();
    let source = new_store(&db).await;
    populate(&source).await;
    db.pg.create_db("rotor2").expect("second database");
    let target = PgStore::init(
        &db.pg.url("rotor2"),
        MasterKey::generate().expect("key"),
        "alice@host",
    )
    .await
    .expect("init");
    let before = source.export().await.expect("export");
    target
        .import(
            source.export().await.expect("export"),
            migrate_event("postgres"),
        )
        .await
        .expect("import");
    assert_same(&before, &target.export().await.expect("export"));
    assert_same_reads(&source, &target).await;
    assert_usable(&target).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn importing_into_a_postgres_store_that_holds_anything_is_refused() {
    let (_dir, _path, source) = sqlite_store();
    populate(&source).await;
    let db = db();
    let target = new_store(&db).await;
    target
        .apply(put(&name("mine"), b"my-value"))
        .await
        .expect("put");
    let before = db.dump();
    let err = target
        .import(
            source.export().await.expect("export"),
            migrate_event("sqlite"),
        )
        .await
        .expect_err("not empty");
    assert!(matches!(err, StoreError::NotEmpty { .. }), "{err:?}");
    assert_eq!(db.dump(), before, "nothing written");

    // An extra audit record alone is enough to refuse.
    db.pg.create_db("rotor2").expect("second database");
    let url2 = db.pg.url("rotor2");
    let target2 = PgStore::init(&url2, MasterKey::generate().expect("key"), "alice@host")
        .await
        .expect("init");
    target2
        .apply(Change::new().audit(AuditEvent::new("alice@host", "note")))
        .await
        .expect("audit only");
    let err = target2
        .import(
            source.export().await.expect("export"),
            migrate_event("sqlite"),
        )
        .await
        .expect_err("not empty");
    assert!(matches!(err, StoreError::NotEmpty { .. }), "{err:?}");
    assert_eq!(target2.audit_all().await.expect("audit").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_in_the_middle_of_a_postgres_import_writes_nothing() {
    let (_dir, _path, source) = sqlite_store();
    populate(&source).await;
    let db = db();
    let target = new_store(&db).await;
    let before = db.dump();

    // A duplicate version id at the end: fails after every other row was inserted.
    let mut dump = source.export().await.expect("export");
    let dup = dump.versions[3].clone();
    dump.versions.push(dup);
    let err = target
        .import(dump, migrate_event("sqlite"))
        .await
        .expect_err("duplicate version");
    assert!(err.to_string().contains("already exists"), "{err}");
    assert!(!err.to_string().contains("secret-value"), "{err}");
    assert_eq!(db.dump(), before, "nothing written");

    // Two pending labels for one secret.
    let mut dump = source.export().await.expect("export");
    let secret = dump.versions[0].meta.secret.clone();
    for v in dump.versions.iter_mut().filter(|v| v.meta.secret == secret) {
        v.meta.stages = vec![Stage::Pending];
    }
    target
        .import(dump, migrate_event("sqlite"))
        .await
        .expect_err("two pending");
    assert_eq!(db.dump(), before, "nothing written");

    // A duplicate rotation id.
    let mut dump = source.export().await.expect("export");
    let mut dup = dump.rotations[0].clone();
    dup.status = RotationStatus::Failed;
    dump.rotations.push(dup);
    target
        .import(dump, migrate_event("sqlite"))
        .await
        .expect_err("duplicate rotation");
    assert_eq!(db.dump(), before, "nothing written");

    // An audit log that does not verify.
    let mut dump = source.export().await.expect("export");
    dump.audit[2].event.actor = "mallory".into();
    let err = target
        .import(dump, migrate_event("sqlite"))
        .await
        .expect_err("broken chain");
    assert!(err.to_string().contains("does not verify"), "{err}");
    assert_eq!(db.dump(), before, "nothing written");

    // The target is still usable: the real import succeeds afterwards.
    target
        .import(
            source.export().await.expect("export"),
            migrate_event("sqlite"),
        )
        .await
        .expect("import");
    verify_chain(&target.audit_all().await.expect("audit")).expect("chain");
}
