//! Rotation records: one running per secret, leases with fencing tokens, stale plans,
//! owed rollbacks, and the per-secret summaries `rotor status` reads.

use jiff::{Timestamp, ToSpan};
use rotor_core::audit::{AuditEvent, verify_chain};
use rotor_core::rotation::Lease;
use rotor_core::store::{Change, Fence, Op, Takeover};
use rotor_core::{RotationId, RotationStatus, Stage, StoreError};

use super::{StoreFactory, insert_pending, name, new_version, put, rotation};

/// One running rotation per secret; claims hand out growing tokens; a live lease is busy
/// for others until it expires or the judged holder is taken over (a compare-and-set on
/// the token); a stale fenced write is refused whole; an unfenced save cannot move the
/// token back; every lease taken is audited once.
pub async fn leases_fence_stale_writers(f: &impl StoreFactory) {
    let subject = f.fresh().await;
    let store = &*subject.store;
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
    assert_eq!(
        store.rotation(&id).await.expect("read").expect("row").lease,
        Some(lease_a.clone())
    );
    // The same owner claiming again (a renewal): the token moves on.
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
    let before = subject.fingerprint().await;
    match store.apply(stale).await.expect_err("lease lost") {
        StoreError::LeaseLost { ours, current, .. } => assert_eq!((ours, current), (2, 3)),
        other => panic!("{other:?}"),
    }
    assert!(store.versions(&s).await.expect("versions").is_empty());
    assert_eq!(
        subject.fingerprint().await,
        before,
        "nothing of the stale change"
    );

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
        "a, a renewed, b, c; the refused claims wrote nothing"
    );
    assert!(
        leases[2]
            .event
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("took over"))
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

    // Finishing frees the secret for a new rotation; lists are newest first.
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

/// A rotation planned when another version was current (another process rotated since)
/// is refused as stale, and nothing of it is recorded.
pub async fn a_rotation_planned_against_a_replaced_current_is_refused(f: &impl StoreFactory) {
    let subject = f.fresh().await;
    let store = &*subject.store;
    let s = name("db");
    let v1 = put(store, &s, b"1").await;
    let v2 = put(store, &s, b"2").await;
    let mut stale = rotation(&s);
    stale.previous_version = Some(v1);
    let before = subject.fingerprint().await;
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
    assert_eq!(subject.fingerprint().await, before);
    // Planned against the current one: begins.
    let mut fresh = rotation(&s);
    fresh.previous_version = Some(v2);
    store
        .apply(Change::new().op(Op::BeginRotation(Box::new(fresh))))
        .await
        .expect("a plan on the current version begins");
}

/// One summary per secret with anything stored (a rotation without a version counts),
/// in name order, with its stages and newest rotation.
pub async fn summaries_cover_every_secret_in_one_pass(f: &impl StoreFactory) {
    let subject = f.fresh().await;
    let store = &*subject.store;
    let (a, b, c) = (name("a"), name("b"), name("c"));
    let a1 = put(store, &a, b"1").await;
    let a2 = put(store, &a, b"2").await;
    let a3 = insert_pending(store, &a, b"3").await;
    let b1 = put(store, &b, b"1").await;
    // c has a rotation but no version yet.
    let mut rc = rotation(&c);
    rc.error = Some("target unreachable".into());
    store
        .apply(Change::new().op(Op::BeginRotation(Box::new(rc.clone()))))
        .await
        .expect("begin");
    // A rotation is planned against the current version (the store refuses a stale plan).
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
    assert_eq!(sa.current.as_ref().map(|v| v.id.clone()), Some(a2));
    assert_eq!(sa.previous.as_ref().map(|v| v.id.clone()), Some(a1));
    assert_eq!(sa.pending.as_ref().map(|v| v.id.clone()), Some(a3));
    let last = sa.last_rotation.as_ref().expect("rotation");
    assert_eq!(
        (last.id.clone(), last.status),
        (ra_new.id, RotationStatus::Running)
    );
    let sb = &sums[1];
    assert_eq!(sb.current.as_ref().map(|v| v.id.clone()), Some(b1));
    assert!(sb.previous.is_none() && sb.pending.is_none() && sb.last_rotation.is_none());
    let sc = &sums[2];
    assert!(sc.current.is_none());
    assert_eq!(
        sc.last_rotation.as_ref().and_then(|r| r.error.clone()),
        Some("target unreachable".into())
    );
}

/// Issue 15 items 1 and 4: a failed rotation that owes its rollback is listed (and its lease
/// may be taken, a finished one's not), and a lease record's time is read under the lock, not
/// the claimer's earlier clock: audit times never go backwards along `seq`.
pub async fn owed_rollbacks_are_listed_and_audit_times_follow_seq(f: &impl StoreFactory) {
    let subject = f.fresh().await;
    let store = &*subject.store;
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
