//! `rotor store migrate`: everything exported from one store imported into a new one (of
//! the same kind or another), all or nothing, the copied chain still verifying.

use jiff::{Timestamp, ToSpan};
use rotor_core::audit::{AuditEvent, verify_chain};
use rotor_core::store::{Change, Dump, Op, Takeover};
use rotor_core::{RotationStatus, Stage, Step, Store, StoreError};

use super::{ACTOR, StoreFactory, Subject, name, new_version, put, rotation};

/// Secrets with current, previous and pending versions, a finished rotation, a running
/// one holding a lease, and the audit records of all of it: 17 versions, 2 rotations.
pub async fn populate(store: &dyn Store) {
    for i in 0..5 {
        let s = name(&format!("app-db-{i}"));
        for j in 0..3 {
            put(store, &s, format!("secret-value-{i}-{j}").as_bytes()).await;
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
        r.reason = Some("migrate test".into());
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
        let mut pending = new_version(&s, format!("secret-value-rotated-{i}").as_bytes());
        pending.metadata = serde_json::json!({"kid": "k1", "n": i});
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
    AuditEvent::new(ACTOR, "store.migrate").reason(Some(&format!("from {from}")))
}

/// A source store of `from`'s kind, populated.
async fn source(from: &impl StoreFactory) -> Subject {
    let source = from.fresh().await;
    populate(&*source.store).await;
    source
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

/// After an import the store keeps working: the running rotation's lease still fences
/// (the next claim gets the next token), a put takes its place after the migrate record,
/// and the chain still verifies.
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
    assert_eq!(
        lease.token,
        r.lease.as_ref().expect("lease").token + 1,
        "tokens keep growing"
    );
    put(store, &name("after-migrate"), b"after-value").await;
    let audit = store.audit_all().await.expect("audit");
    verify_chain(&audit).expect("chain");
    let n = audit.len();
    assert_eq!(audit[n - 3].event.action, "store.migrate");
    assert_eq!(audit[n - 1].event.action, "secret.put");
}

/// Everything is copied (oldest first, stages as read), the stores answer the same, the
/// values are sealed again under the target's key (no plaintext in its rows), and the
/// target keeps working.
pub async fn export_then_import_copies_everything_and_the_chain_verifies(
    from: &impl StoreFactory,
    to: &impl StoreFactory,
) {
    let source = source(from).await;
    let before = source.store.export().await.expect("export");
    assert_eq!(before.versions.len(), 17);
    assert_eq!(before.rotations.len(), 2);
    assert_eq!(before.versions[0].meta.secret.as_str(), "app-db-0");
    assert_eq!(before.audit[0].event.action, "store.init");

    let target = to.fresh().await;
    target
        .store
        .import(
            source.store.export().await.expect("export"),
            migrate_event(from.kind()),
        )
        .await
        .expect("import");
    assert_same(&before, &target.store.export().await.expect("export"));
    assert_same_reads(&*source.store, &*target.store).await;
    for v in &before.versions {
        target.assert_not_at_rest(v.value.expose());
    }
    assert_usable(&*target.store).await;
}

/// A target holding a version, only an extra audit record, or an earlier import refuses
/// the import with `NotEmpty` and is left exactly as it was.
pub async fn importing_into_a_store_that_holds_anything_is_refused_and_writes_nothing(
    from: &impl StoreFactory,
    to: &impl StoreFactory,
) {
    let source = source(from).await;
    let export = || async { source.store.export().await.expect("export") };

    let with_version = to.fresh().await;
    put(&*with_version.store, &name("mine"), b"my-value").await;
    let with_audit = to.fresh().await;
    with_audit
        .store
        .apply(Change::new().audit(AuditEvent::new(ACTOR, "note")))
        .await
        .expect("audit only");
    let imported = to.fresh().await;
    imported
        .store
        .import(export().await, migrate_event(from.kind()))
        .await
        .expect("first import");

    for (what, target) in [
        ("a version", &with_version),
        ("an audit record", &with_audit),
        ("an import", &imported),
    ] {
        let before = target.fingerprint().await;
        let err = target
            .store
            .import(export().await, migrate_event(from.kind()))
            .await
            .expect_err(what);
        assert!(
            matches!(err, StoreError::NotEmpty { .. }),
            "{what}: {err:?}"
        );
        assert_eq!(
            target.fingerprint().await,
            before,
            "{what}: nothing written"
        );
    }
}

/// A duplicate version (after most rows went in), two pending labels on one secret, a
/// duplicate rotation, or an audit log that does not verify: the import fails without
/// echoing a value and writes nothing; the real import works afterwards.
pub async fn a_failure_in_the_middle_of_an_import_writes_nothing(
    from: &impl StoreFactory,
    to: &impl StoreFactory,
) {
    let source = source(from).await;
    let target = to.fresh().await;
    let before = target.fingerprint().await;
    let export = || async { source.store.export().await.expect("export") };

    let mut dump = export().await;
    let dup = dump.versions[3].clone();
    dump.versions.push(dup);
    let err = target
        .store
        .import(dump, migrate_event(from.kind()))
        .await
        .expect_err("duplicate version");
    assert!(err.to_string().contains("already exists"), "{err}");
    assert!(!err.to_string().contains("secret-value"), "{err}");
    assert_eq!(target.fingerprint().await, before, "nothing written");

    let mut dump = export().await;
    let secret = dump.versions[0].meta.secret.clone();
    for v in dump.versions.iter_mut().filter(|v| v.meta.secret == secret) {
        v.meta.stages = vec![Stage::Pending];
    }
    let err = target
        .store
        .import(dump, migrate_event(from.kind()))
        .await
        .expect_err("two pending");
    assert!(!err.to_string().contains("secret-value"), "{err}");
    assert_eq!(target.fingerprint().await, before, "nothing written");

    let mut dump = export().await;
    let mut dup = dump.rotations[0].clone();
    dup.status = RotationStatus::Failed;
    dump.rotations.push(dup);
    target
        .store
        .import(dump, migrate_event(from.kind()))
        .await
        .expect_err("duplicate rotation");
    assert_eq!(target.fingerprint().await, before, "nothing written");

    let mut dump = export().await;
    dump.audit[2].event.actor = "mallory".into();
    let err = target
        .store
        .import(dump, migrate_event(from.kind()))
        .await
        .expect_err("broken chain");
    assert!(err.to_string().contains("does not verify"), "{err}");
    assert_eq!(target.fingerprint().await, before, "nothing written");

    target
        .store
        .import(export().await, migrate_event(from.kind()))
        .await
        .expect("import");
    verify_chain(&target.store.audit_all().await.expect("audit")).expect("chain");
}
