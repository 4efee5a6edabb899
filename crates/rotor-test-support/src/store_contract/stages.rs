//! Versions and their stages: insert, promote, clear, read back, one snapshot of the stages.

use jiff::Timestamp;
use rotor_core::audit::AuditEvent;
use rotor_core::store::{Change, Op};
use rotor_core::{Stage, StoreError, VersionId};

use super::{ACTOR, StoreFactory, insert_pending, name, new_version, put, put_change, stage_of};

/// A new store's audit log is its `store.init` record by its creator, and nothing else.
pub async fn a_new_store_holds_only_its_init_record(f: &impl StoreFactory) {
    let subject = f.fresh().await;
    let store = &*subject.store;
    let audit = store.audit_all().await.expect("audit");
    assert_eq!(audit.len(), 1, "{}: {audit:?}", f.kind());
    assert_eq!(audit[0].event.action, "store.init");
    assert_eq!(audit[0].event.actor, ACTOR);
    assert!(store.summaries().await.expect("summaries").is_empty());
    assert!(store.open_rotations().await.expect("open").is_empty());
    assert!(
        store
            .versions(&name("db"))
            .await
            .expect("versions")
            .is_empty()
    );
}

/// Three create+finish cycles move pending → current → previous; promote is idempotent,
/// a rollback (promoting previous) swaps current and previous, an unknown version is an
/// error.
pub async fn stages_move_across_three_promotes(f: &impl StoreFactory) {
    let subject = f.fresh().await;
    let store = &*subject.store;
    let s = name("db");
    let mut ids = Vec::new();
    for i in 0..3 {
        let id = insert_pending(store, &s, format!("value-{i}").as_bytes()).await;
        assert_eq!(stage_of(store, &s, Stage::Pending).await, Some(id.clone()));
        store
            .apply(Change::new().op(Op::Promote {
                secret: s.clone(),
                version: id.clone(),
            }))
            .await
            .expect("promote");
        ids.push(id);
        assert_eq!(
            stage_of(store, &s, Stage::Current).await,
            ids.last().cloned()
        );
        assert_eq!(
            stage_of(store, &s, Stage::Previous).await,
            ids.len().checked_sub(2).map(|i| ids[i].clone())
        );
        assert_eq!(stage_of(store, &s, Stage::Pending).await, None);
    }
    store
        .apply(Change::new().op(Op::Promote {
            secret: s.clone(),
            version: ids[2].clone(),
        }))
        .await
        .expect("promote again (idempotent)");
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

    // Rollback: promoting the previous version swaps current and previous.
    store
        .apply(Change::new().op(Op::Promote {
            secret: s.clone(),
            version: ids[1].clone(),
        }))
        .await
        .expect("roll back");
    assert_eq!(
        stage_of(store, &s, Stage::Current).await,
        Some(ids[1].clone())
    );
    assert_eq!(
        stage_of(store, &s, Stage::Previous).await,
        Some(ids[2].clone())
    );

    let err = store
        .apply(Change::new().op(Op::Promote {
            secret: s.clone(),
            version: VersionId::generate(),
        }))
        .await
        .expect_err("unknown");
    assert!(matches!(err, StoreError::VersionNotFound { .. }), "{err:?}");
}

/// A second pending is refused with the holder named, and the whole change (its audit
/// record too) is rolled back; `ClearStage` is idempotent.
pub async fn pending_is_exclusive_and_a_failed_change_writes_nothing(f: &impl StoreFactory) {
    let subject = f.fresh().await;
    let store = &*subject.store;
    let s = name("api-key");
    let a_id = insert_pending(store, &s, b"a").await;
    let before = subject.fingerprint().await;
    let err = store
        .apply(
            Change::new()
                .op(Op::InsertVersion {
                    version: new_version(&s, b"b"),
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
    assert_eq!(store.versions(&s).await.expect("versions").len(), 1);
    assert_eq!(subject.fingerprint().await, before, "rolled back entirely");

    for _ in 0..2 {
        store
            .apply(Change::new().op(Op::ClearStage {
                secret: s.clone(),
                stage: Stage::Pending,
                version: a_id.clone(),
            }))
            .await
            .expect("clear (idempotent)");
    }
    assert_eq!(stage_of(store, &s, Stage::Pending).await, None);
    assert!(
        store.versions(&s).await.expect("versions")[0]
            .stages
            .is_empty()
    );
}

/// `rotor put` (insert + promote in one change) returns its audit record; reads by id and
/// by stage find what was put and nothing else; inserting straight into `current` has
/// promote semantics.
pub async fn put_inserts_and_promotes_in_one_change(f: &impl StoreFactory) {
    let subject = f.fresh().await;
    let store = &*subject.store;
    let s = name("db");
    let (v1, c1) = put_change(&s, b"first");
    let recs = store.apply(c1).await.expect("put 1");
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].event.action, "secret.put");
    let v2 = put(store, &s, b"second").await;
    assert_eq!(stage_of(store, &s, Stage::Current).await, Some(v2.clone()));
    assert_eq!(stage_of(store, &s, Stage::Previous).await, Some(v1.clone()));
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

    let v3 = new_version(&s, b"third");
    let v3_id = v3.id.clone();
    store
        .apply(Change::new().op(Op::InsertVersion {
            version: v3,
            stage: Some(Stage::Current),
        }))
        .await
        .expect("insert current (promote semantics)");
    assert_eq!(stage_of(store, &s, Stage::Current).await, Some(v3_id));
    assert_eq!(stage_of(store, &s, Stage::Previous).await, Some(v2));
}

/// Creation times (to the nanosecond), metadata and the creator read back as written.
pub async fn timestamps_and_metadata_round_trip_exactly(f: &impl StoreFactory) {
    let subject = f.fresh().await;
    let store = &*subject.store;
    let s = name("db");
    let at = Timestamp::new(1_700_000_000, 123_456_789).expect("ts");
    let mut v = new_version(&s, b"x");
    v.created_at = at;
    v.metadata = serde_json::json!({"alg": "ES256", "n": [1, 2, 3]});
    let id = v.id.clone();
    store
        .apply(Change::new().op(Op::InsertVersion {
            version: v,
            stage: Some(Stage::Current),
        }))
        .await
        .expect("insert");
    for meta in [
        store.versions(&s).await.expect("versions")[0].clone(),
        store
            .read_version(&s, &id)
            .await
            .expect("read")
            .expect("exists")
            .meta,
    ] {
        assert_eq!(meta.id, id);
        assert_eq!(meta.created_at, at);
        assert_eq!(
            meta.metadata,
            serde_json::json!({"alg": "ES256", "n": [1, 2, 3]})
        );
        assert_eq!(meta.created_by, ACTOR);
        assert_eq!(meta.secret, s);
    }
}

/// `read_staged` is one snapshot of the stages: pending, current, previous in that order,
/// each with its own value; unlabelled versions and other secrets are not in it; a stage
/// nobody holds is left out.
pub async fn read_staged_is_pending_current_previous_in_order(f: &impl StoreFactory) {
    let subject = f.fresh().await;
    let store = &*subject.store;
    let s = name("jwt");
    assert!(store.read_staged(&s).await.expect("staged").is_empty());

    let retired = put(store, &s, b"v0").await;
    let previous = put(store, &s, b"v1").await;
    let current = put(store, &s, b"v2").await;
    put(store, &name("other"), b"other-value").await;
    let staged = store.read_staged(&s).await.expect("staged");
    let seen: Vec<_> = staged
        .iter()
        .map(|(st, v)| (*st, v.meta.id.clone(), v.value.expose().to_vec()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (Stage::Current, current.clone(), b"v2".to_vec()),
            (Stage::Previous, previous.clone(), b"v1".to_vec()),
        ],
        "no pending yet; {retired} holds no stage"
    );

    let pending = insert_pending(store, &s, b"v3").await;
    let staged = store.read_staged(&s).await.expect("staged");
    let seen: Vec<_> = staged
        .iter()
        .map(|(st, v)| (*st, v.meta.id.clone(), v.value.expose().to_vec()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (Stage::Pending, pending.clone(), b"v3".to_vec()),
            (Stage::Current, current.clone(), b"v2".to_vec()),
            (Stage::Previous, previous.clone(), b"v1".to_vec()),
        ]
    );
    // Each version's metadata carries the stage it is listed under (one snapshot).
    for (stage, v) in &staged {
        assert_eq!(v.meta.stages, vec![*stage], "{}", v.meta.id);
    }

    // Finish then retire: the snapshot follows, never listing one version twice.
    store
        .apply(Change::new().op(Op::Promote {
            secret: s.clone(),
            version: pending.clone(),
        }))
        .await
        .expect("finish");
    store
        .apply(Change::new().op(Op::ClearStage {
            secret: s.clone(),
            stage: Stage::Previous,
            version: current.clone(),
        }))
        .await
        .expect("retire");
    let staged = store.read_staged(&s).await.expect("staged");
    let seen: Vec<_> = staged
        .iter()
        .map(|(st, v)| (*st, v.meta.id.clone()))
        .collect();
    assert_eq!(seen, vec![(Stage::Current, pending)]);
}

/// No value reaches the backend's rows in plaintext (text or hex), while the rows are
/// there to be scanned.
pub async fn values_are_not_stored_in_plaintext(f: &impl StoreFactory) {
    let subject = f.fresh().await;
    let store = &*subject.store;
    let plaintext = b"correct-horse-battery-staple-4f9a1c";
    for i in 0..20 {
        put(store, &name(&format!("secret-{i}")), plaintext).await;
    }
    let rows = subject
        .rows()
        .unwrap_or_else(|| panic!("{}: this case needs the backend's rows", f.kind()));
    assert!(rows.contains("secret-7"), "the scan sees the rows");
    subject.assert_not_at_rest(plaintext);
}
