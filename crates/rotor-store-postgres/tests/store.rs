//! Behaviour of the PostgreSQL store on a real PostgreSQL 15 (one throwaway server per
//! test): the same cases as the SQLite store's tests, plus what only a shared server has.

mod common;

use common::*;
use jiff::{Timestamp, ToSpan};
use rotor_core::audit::{AuditEvent, verify_chain};
use rotor_core::store::{Change, Fence, Op, Takeover};
use rotor_core::{
    RotationId, RotationStatus, Stage, Store, StoreError, VersionId, rotation::Lease,
};
use rotor_seal::MasterKey;
use rotor_store_postgres::{PgStore, SCHEMA_VERSION};

async fn stage_of(
    store: &PgStore,
    secret: &rotor_core::SecretName,
    stage: Stage,
) -> Option<VersionId> {
    store
        .read_stage(secret, stage)
        .await
        .expect("read stage")
        .map(|v| v.meta.id)
}

#[tokio::test]
async fn init_writes_the_schema_once_and_refuses_a_second_init() {
    let db = db();
    let store = new_store(&db).await;
    let audit = store.audit_all().await.expect("audit");
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].event.action, "store.init");
    assert_eq!(audit[0].event.actor, "alice@host");
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
async fn stages_move_across_three_promotes() {
    let db = db();
    let store = new_store(&db).await;
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
        stage_of(&store, &s, Stage::Current).await,
        Some(ids[1].clone())
    );
    assert_eq!(
        stage_of(&store, &s, Stage::Previous).await,
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

#[tokio::test]
async fn pending_is_exclusive_and_a_failed_change_writes_nothing() {
    let db = db();
    let store = new_store(&db).await;
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
    let before = db.dump();
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
    assert_eq!(db.dump(), before, "rolled back entirely");

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
    assert_eq!(stage_of(&store, &s, Stage::Pending).await, None);
    assert!(
        store.versions(&s).await.expect("versions")[0]
            .stages
            .is_empty()
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

#[tokio::test]
async fn put_timestamps_and_metadata_round_trip() {
    let db = db();
    let store = new_store(&db).await;
    let s = name("db");
    let (v1, c1) = put_change(&s, b"first");
    let recs = store.apply(c1).await.expect("put 1");
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].event.action, "secret.put");
    let (v2, c2) = put_change(&s, b"second");
    store.apply(c2).await.expect("put 2");
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

    let mut v3 = new_version(&s, b"third");
    v3.created_at = Timestamp::new(1_700_000_000, 123_456_789).expect("ts");
    v3.metadata = serde_json::json!({"alg": "ES256", "n": [1, 2, 3]});
    let v3_id = v3.id.clone();
    store
        .apply(Change::new().op(Op::InsertVersion {
            version: v3,
            stage: Some(Stage::Current),
        }))
        .await
        .expect("insert current (promote semantics)");
    assert_eq!(
        stage_of(&store, &s, Stage::Current).await,
        Some(v3_id.clone())
    );
    assert_eq!(stage_of(&store, &s, Stage::Previous).await, Some(v2));
    let meta = &store.versions(&s).await.expect("versions")[0];
    assert_eq!(meta.id, v3_id);
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
async fn values_never_reach_any_table_in_plaintext() {
    let db = db();
    let store = new_store(&db).await;
    let plaintext = "correct-horse-battery-staple-4f9a1c";
    for i in 0..20 {
        let (_, c) = put_change(&name(&format!("secret-{i}")), plaintext.as_bytes());
        store.apply(c).await.expect("put");
    }
    let dump = db.dump();
    assert!(dump.contains("secret-7"), "the scan sees the rows");
    assert!(
        dump.contains("== rotor_versions"),
        "the scan covers the versions table"
    );
    assert!(!dump.contains(plaintext), "plaintext found in a table");
    assert!(
        !dump.contains(&hex::encode(plaintext)),
        "hex plaintext found in a bytea column"
    );
    // Also in the server's own dump format.
    let escaped = db.psql("SELECT string_agg(encode(sealed, 'escape'), '') FROM rotor_versions");
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

#[tokio::test]
async fn leases_fence_stale_writers() {
    let db = db();
    let store = new_store(&db).await;
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
    let lease_a = store
        .claim(&id, "host:1:a", t0, t0 + 30.seconds(), Takeover::IfExpired)
        .await
        .expect("reclaim a");
    assert_eq!(lease_a.token, 2);
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

    let stale = Change::fenced(Fence {
        rotation: id.clone(),
        token: lease_a.token,
    })
    .op(Op::InsertVersion {
        version: new_version(&s, b"stale"),
        stage: Some(Stage::Pending),
    })
    .audit(AuditEvent::new("host:1:a", "rotation.step"));
    let before = db.dump();
    match store.apply(stale).await.expect_err("lease lost") {
        StoreError::LeaseLost { ours, current, .. } => assert_eq!((ours, current), (2, 3)),
        other => panic!("{other:?}"),
    }
    assert_eq!(db.dump(), before, "nothing of the stale change is written");

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
    let err = store
        .claim(&RotationId::generate(), "x", t0, t0, Takeover::IfExpired)
        .await
        .expect_err("unknown");
    assert!(
        matches!(err, StoreError::RotationNotFound { .. }),
        "{err:?}"
    );
    let err = store
        .apply(Change::fenced(Fence {
            rotation: RotationId::generate(),
            token: 1,
        }))
        .await
        .expect_err("unknown fence");
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
    assert!(
        leases[2]
            .event
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("took over"))
    );
    assert!(
        leases[3]
            .event
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("holder gone"))
    );
    verify_chain(&audit).expect("chain");

    assert_eq!(store.open_rotations().await.expect("open").len(), 1);
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
async fn a_rotation_planned_against_a_replaced_current_is_refused() {
    let db = db();
    let store = new_store(&db).await;
    let s = name("db");
    let (v1, c) = put_change(&s, b"1");
    store.apply(c).await.expect("put");
    let (_v2, c) = put_change(&s, b"2");
    store.apply(c).await.expect("put");
    // Planned when v1 was current: another process has rotated since.
    let mut stale = rotation(&s);
    stale.previous_version = Some(v1);
    let err = store
        .apply(Change::new().op(Op::BeginRotation(Box::new(stale))))
        .await
        .expect_err("stale plan");
    assert!(matches!(err, StoreError::Stale { .. }), "{err:?}");
    assert!(
        store
            .rotations(Some(&s), 10)
            .await
            .expect("list")
            .is_empty()
    );
}

#[tokio::test]
async fn the_audit_chain_verifies_and_detects_edits() {
    let db = db();
    let (k, k2) = key_pair();
    let store = PgStore::init(&db.url, k, "alice").await.expect("init");
    for i in 0..60 {
        let (_, c) = put_change(&name(&format!("s{}", i % 7)), b"v");
        let c = c.audit(AuditEvent::new("bob", "secret.note").reason(Some("two per change")));
        store.apply(c).await.expect("put");
    }
    let all = store.audit_all().await.expect("audit");
    assert_eq!(verify_chain(&all), Ok(121));
    let tail = store.audit_tail(3).await.expect("tail");
    assert_eq!(
        tail.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![119, 120, 121]
    );
    assert_eq!(tail[2], all[120]);
    assert_eq!(db.psql("SELECT seq FROM rotor_audit_head"), "121");

    db.psql("UPDATE rotor_audit SET reason = 'nothing to see' WHERE seq = 17");
    let err = verify_chain(&store.audit_all().await.expect("audit")).expect_err("edited");
    assert_eq!(err.seq, 17);
    drop(store);
    let store = PgStore::connect(&db.url, k2).await.expect("open");
    db.psql("UPDATE rotor_audit SET reason = 'two per change' WHERE seq = 17; DELETE FROM rotor_audit WHERE seq = 5;");
    let err = verify_chain(&store.audit_all().await.expect("audit")).expect_err("deleted");
    assert_eq!(err.position, 5);
}

#[tokio::test]
async fn summaries_cover_every_secret_in_one_pass() {
    let db = db();
    let store = new_store(&db).await;
    let (a, b, c) = (name("a"), name("b"), name("c"));
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
    let mut rc = rotation(&c);
    rc.error = Some("target unreachable".into());
    store
        .apply(Change::new().op(Op::BeginRotation(Box::new(rc.clone()))))
        .await
        .expect("begin");
    let mut ra_old = rotation(&a);
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
    assert_eq!(
        (last.id.clone(), last.status),
        (ra_new.id, RotationStatus::Running)
    );
    let sb = &sums[1];
    assert_eq!(
        (sb.versions, sb.current.as_ref().map(|v| v.id.clone())),
        (1, Some(b1))
    );
    assert!(sb.previous.is_none() && sb.pending.is_none() && sb.last_rotation.is_none());
    let sc = &sums[2];
    assert_eq!(sc.versions, 0);
    assert_eq!(
        sc.last_rotation.as_ref().and_then(|r| r.error.clone()),
        Some("target unreachable".into())
    );
}

/// Issue 15 items 1 and 4: a failed rotation that owes its rollback is listed (and its lease
/// may be taken, a finished one's not), and a lease record's time is read under the lock, not
/// the claimer's earlier clock: audit times never go backwards along `seq`.
#[tokio::test]
async fn owed_rollbacks_are_listed_and_audit_times_follow_seq() {
    let db = db();
    let store = new_store(&db).await;
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
