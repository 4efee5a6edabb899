//! `rotor store migrate` between SQLite stores: export everything, import it into a new
//! store under another master key, all or nothing.

use std::path::PathBuf;

use jiff::{Timestamp, ToSpan};
use rotor_core::audit::{AuditEvent, verify_chain};
use rotor_core::store::{Change, Dump, NewVersion, Op, Takeover};
use rotor_core::{
    Rotation, RotationId, RotationStatus, SecretName, SecretValue, Stage, Step, Store, StoreError,
    VersionId, rotation::Trigger,
};
use rotor_seal::MasterKey;
use rotor_store_sqlite::SqliteStore;

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

fn rotation(secret: &SecretName, previous: Option<VersionId>) -> Rotation {
    let now = Timestamp::now();
    Rotation {
        id: RotationId::generate(),
        secret: secret.clone(),
        trigger: Trigger::Manual,
        actor: "alice@host".into(),
        reason: Some("migrate test".into()),
        emergency: false,
        evict: true,
        status: RotationStatus::Running,
        step: Step::Create,
        step_done: false,
        attempts: 0,
        error: None,
        pending_version: None,
        previous_version: previous,
        started_at: now,
        updated_at: now,
        activate_after: None,
        rollback_owed: false,
        retire_after: None,
        lease: None,
    }
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
    // A completed rotation of app-db-0.
    let s = name("app-db-0");
    let current = store
        .read_stage(&s, Stage::Current)
        .await
        .expect("read")
        .expect("current");
    let mut r = rotation(&s, Some(current.meta.id));
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
            now + 60.seconds(),
            Takeover::IfExpired,
        )
        .await
        .expect("claim");
    let pending = version(&s, b"secret-value-rotated");
    let pid = pending.id.clone();
    r.lease = Some(lease);
    r.pending_version = Some(pid.clone());
    r.status = RotationStatus::Completed;
    r.step = Step::Retire;
    r.step_done = true;
    store
        .apply(
            Change::new()
                .op(Op::InsertVersion {
                    version: pending,
                    stage: Some(Stage::Pending),
                })
                .op(Op::Promote {
                    secret: s.clone(),
                    version: pid.clone(),
                })
                .op(Op::SaveRotation(Box::new(r)))
                .audit(AuditEvent::new("rotor", "rotation.finish").secret(&s)),
        )
        .await
        .expect("finish");
    // A running rotation of app-db-1 with a pending version and a lease.
    let s = name("app-db-1");
    let current = store
        .read_stage(&s, Stage::Current)
        .await
        .expect("read")
        .expect("current");
    let mut r = rotation(&s, Some(current.meta.id));
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
    let pending = version(&s, b"secret-value-pending");
    r.pending_version = Some(pending.id.clone());
    r.lease = Some(lease);
    r.step_done = true;
    store
        .apply(
            Change::new()
                .op(Op::InsertVersion {
                    version: pending,
                    stage: Some(Stage::Pending),
                })
                .op(Op::SaveRotation(Box::new(r)))
                .audit(AuditEvent::new("rotor", "rotation.create").secret(&s)),
        )
        .await
        .expect("create");
}

fn migrate_event() -> AuditEvent {
    AuditEvent::new("alice@host", "store.migrate").reason(Some("from sqlite"))
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

/// What a store holds, as plain comparable data (values included).
async fn snapshot(store: &dyn Store) -> String {
    let d = store.export().await.expect("export");
    let versions: Vec<_> = d
        .versions
        .iter()
        .map(|v| (v.meta.clone(), v.value.expose().to_vec()))
        .collect();
    format!("{versions:?}\n{:?}\n{:?}", d.rotations, d.audit)
}

#[tokio::test]
async fn export_then_import_copies_everything_and_the_chain_verifies() {
    let (_d1, _p1, source) = new_store();
    populate(&source).await;
    let before = source.export().await.expect("export");
    assert_eq!(before.versions.len(), 17);
    assert_eq!(before.rotations.len(), 2);
    // Oldest first, stages as read.
    assert_eq!(before.versions[0].meta.secret.as_str(), "app-db-0");
    assert_eq!(before.audit[0].event.action, "store.init");

    let (_d2, p2, target) = new_store();
    target
        .import(source.export().await.expect("export"), migrate_event())
        .await
        .expect("import");
    let after = target.export().await.expect("export");
    assert_same(&before, &after);

    // The stores answer the same through the ordinary reads too.
    for i in 0..5 {
        let s = name(&format!("app-db-{i}"));
        assert_eq!(
            source.versions(&s).await.expect("versions"),
            target.versions(&s).await.expect("versions")
        );
        for stage in [Stage::Current, Stage::Previous, Stage::Pending] {
            let a = source.read_stage(&s, stage).await.expect("read");
            let b = target.read_stage(&s, stage).await.expect("read");
            assert_eq!(a.as_ref().map(|v| &v.meta), b.as_ref().map(|v| &v.meta));
            assert_eq!(
                a.map(|v| v.value.expose().to_vec()),
                b.map(|v| v.value.expose().to_vec())
            );
        }
    }
    assert_eq!(
        source.open_rotations().await.expect("open"),
        target.open_rotations().await.expect("open")
    );
    // The running rotation's lease still fences: the next claim gets the next token.
    let running = target.open_rotations().await.expect("open");
    let r = &running[0];
    let now = Timestamp::now();
    let lease = target
        .claim(
            &r.id,
            "other@host",
            now,
            now + 60.seconds(),
            Takeover::of(r.lease.as_ref()),
        )
        .await
        .expect("claim");
    assert_eq!(
        lease.token,
        r.lease.as_ref().expect("lease").token + 1,
        "tokens keep growing"
    );
    verify_chain(&target.audit_all().await.expect("audit")).expect("chain");

    // Values are sealed under the target's key, never stored in plaintext.
    let mut bytes = std::fs::read(&p2).expect("read");
    let mut wal = p2.as_os_str().to_owned();
    wal.push("-wal");
    bytes.extend(std::fs::read(PathBuf::from(wal)).unwrap_or_default());
    for v in &before.versions {
        assert!(
            !bytes.windows(v.value.len()).any(|w| w == v.value.expose()),
            "plaintext in the target"
        );
    }
}

#[tokio::test]
async fn importing_into_a_store_that_holds_anything_is_refused_and_writes_nothing() {
    let (_d1, _p1, source) = new_store();
    populate(&source).await;

    // A version.
    let (_d2, _p2, target) = new_store();
    target
        .apply(put(&name("mine"), b"my-value"))
        .await
        .expect("put");
    let before = snapshot(&target).await;
    let err = target
        .import(source.export().await.expect("export"), migrate_event())
        .await
        .expect_err("not empty");
    assert!(matches!(err, StoreError::NotEmpty { .. }), "{err:?}");
    assert_eq!(snapshot(&target).await, before);

    // Only an extra audit record.
    let (_d3, _p3, target) = new_store();
    target
        .apply(Change::new().audit(AuditEvent::new("alice@host", "note")))
        .await
        .expect("audit only");
    let before = snapshot(&target).await;
    let err = target
        .import(source.export().await.expect("export"), migrate_event())
        .await
        .expect_err("not empty");
    assert!(matches!(err, StoreError::NotEmpty { .. }), "{err:?}");
    assert_eq!(snapshot(&target).await, before);

    // Importing twice: the second is refused.
    let (_d4, _p4, target) = new_store();
    target
        .import(source.export().await.expect("export"), migrate_event())
        .await
        .expect("first import");
    let before = snapshot(&target).await;
    let err = target
        .import(source.export().await.expect("export"), migrate_event())
        .await
        .expect_err("second import");
    assert!(matches!(err, StoreError::NotEmpty { .. }), "{err:?}");
    assert_eq!(snapshot(&target).await, before);
}

#[tokio::test]
async fn a_failure_in_the_middle_of_an_import_writes_nothing() {
    let (_d1, _p1, source) = new_store();
    populate(&source).await;
    let (_d2, _p2, target) = new_store();
    let before = snapshot(&target).await;

    // A duplicate version id near the end: fails after most rows were inserted.
    let mut dump = source.export().await.expect("export");
    let dup = dump.versions[3].clone();
    dump.versions.push(dup);
    let err = target
        .import(dump, migrate_event())
        .await
        .expect_err("duplicate version");
    assert!(err.to_string().contains("already exists"), "{err}");
    assert!(!err.to_string().contains("secret-value"), "{err}");
    assert_eq!(snapshot(&target).await, before);

    // A duplicate rotation (after every version was inserted).
    let mut dump = source.export().await.expect("export");
    let dup = dump.rotations[0].clone();
    dump.rotations.push(dup);
    target
        .import(dump, migrate_event())
        .await
        .expect_err("duplicate rotation");
    assert_eq!(snapshot(&target).await, before);

    // An audit log that does not verify.
    let mut dump = source.export().await.expect("export");
    dump.audit[2].event.actor = "mallory".into();
    let err = target
        .import(dump, migrate_event())
        .await
        .expect_err("broken chain");
    assert!(err.to_string().contains("does not verify"), "{err}");
    assert_eq!(snapshot(&target).await, before);

    // The target is still usable: the real import succeeds afterwards.
    target
        .import(source.export().await.expect("export"), migrate_event())
        .await
        .expect("import");
    verify_chain(&target.audit_all().await.expect("audit")).expect("chain");
}
