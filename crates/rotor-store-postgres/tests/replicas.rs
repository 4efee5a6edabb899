//! Several store handles ("replicas": separate connection pools) on one real PostgreSQL:
//! racing rotations, concurrent audit appends, a replica killed mid-rotation, and an
//! interrupted master-key rewrap.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::rotate::{self, Outcome};
use common::*;
use jiff::{SignedDuration, Timestamp};
use rotor_core::audit::{AuditEvent, verify_chain};
use rotor_core::rotation::Lease;
use rotor_core::store::{Change, Op};
use rotor_core::{RotationStatus, SecretName, Stage, Store, StoreError};
use rotor_store_postgres::{PgStore, Settings};

async fn replicas(db: &Db, n: usize) -> Vec<Arc<PgStore>> {
    let mut keys = key_copies(n + 1);
    let first = PgStore::init(&db.url, keys.pop().expect("key"), "init")
        .await
        .expect("init");
    drop(first);
    let mut out = Vec::new();
    for _ in 0..n {
        let s = PgStore::connect_with(&db.url, keys.pop().expect("key"), Settings::default())
            .await
            .expect("connect");
        out.push(Arc::new(s));
    }
    out
}

/// Puts a first version of each secret, 100 per change.
async fn seed(store: &PgStore, names: &[SecretName]) {
    for chunk in names.chunks(100) {
        let mut change = Change::new().audit(AuditEvent::new("seed", "secret.seed"));
        for s in chunk {
            let (_, c) = put_change(s, VersionId::generate().as_str().as_bytes());
            change.ops.extend(c.ops);
        }
        store.apply(change).await.expect("seed");
    }
}

use rotor_core::VersionId;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_begin_rotation_has_exactly_one_winner_per_secret() {
    let db = db();
    let stores = replicas(&db, 3).await;
    let names: Vec<SecretName> = (0..50).map(|i| name(&format!("race-{i}"))).collect();
    seed(&stores[0], &names).await;
    let since = Timestamp::now();
    let mut tasks = Vec::new();
    for (r, store) in stores.iter().enumerate() {
        for t in 0..6 {
            let store = Arc::clone(store);
            let names = names.clone();
            tasks.push(tokio::spawn(async move {
                let owner = format!("replica-{r}:task-{t}");
                let mut wins = Vec::new();
                for i in 0..names.len() {
                    let s = &names[(i + t * 7 + r * 3) % names.len()];
                    let current = store.read_stage(s, Stage::Current).await.expect("read");
                    if current.as_ref().is_some_and(|c| c.meta.created_at >= since) {
                        continue;
                    }
                    let mut rot = rotation(s);
                    rot.previous_version = current.map(|c| c.meta.id);
                    rot.lease = Some(Lease {
                        owner: owner.clone(),
                        token: 1,
                        expires_at: Timestamp::now() + SignedDuration::from_secs(60),
                    });
                    let change = Change::new()
                        .op(Op::BeginRotation(Box::new(rot)))
                        .audit(AuditEvent::new(&owner, "test.begin").secret(s));
                    match store.apply(change).await {
                        Ok(_) => wins.push(s.clone()),
                        Err(StoreError::Busy { .. } | StoreError::Stale { .. }) => {}
                        Err(e) => panic!("{owner}: {e}"),
                    }
                }
                wins
            }));
        }
    }
    let mut per_secret: BTreeMap<SecretName, usize> = BTreeMap::new();
    for t in tasks {
        for s in t.await.expect("task") {
            *per_secret.entry(s).or_default() += 1;
        }
    }
    assert_eq!(per_secret.len(), 50, "every secret has a winner");
    assert!(per_secret.values().all(|n| *n == 1), "{per_secret:?}");
    assert_eq!(
        db.psql("SELECT count(*) FROM rotor_rotations WHERE status = 'running'"),
        "50"
    );
    let audit = stores[1].audit_all().await.expect("audit");
    assert_eq!(
        audit
            .iter()
            .filter(|r| r.event.action == "test.begin")
            .count(),
        50
    );
    verify_chain(&audit).expect("chain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_from_three_replicas_form_one_chain() {
    let db = db();
    let stores = replicas(&db, 3).await;
    let mut tasks = Vec::new();
    for (r, store) in stores.iter().enumerate() {
        for t in 0..6 {
            let store = Arc::clone(store);
            tasks.push(tokio::spawn(async move {
                let s = name(&format!("chain-{r}-{t}"));
                for i in 0..20 {
                    let change = if i % 2 == 0 {
                        put_change(&s, b"v").1
                    } else {
                        Change::new()
                            .audit(AuditEvent::new(format!("r{r}"), "test.note").secret(&s))
                            .audit(AuditEvent::new(format!("r{r}"), "test.note2").secret(&s))
                    };
                    store.apply(change).await.expect("apply");
                }
            }));
        }
    }
    for t in tasks {
        t.await.expect("task");
    }
    let audit = stores[2].audit_all().await.expect("audit");
    // store.init + 18 tasks x (10 puts x 1 + 10 notes x 2)
    let n = 1 + 18 * 30;
    assert_eq!(verify_chain(&audit), Ok(n));
    assert!(
        audit.iter().zip(1u64..).all(|(r, seq)| r.seq == seq),
        "no gaps"
    );
    assert_eq!(db.psql("SELECT seq FROM rotor_audit_head"), n.to_string());
    let sums = stores[0].summaries().await.expect("summaries");
    assert_eq!(sums.len(), 18);
    assert!(
        sums.iter()
            .all(|s| s.current.is_some() && s.previous.is_some())
    );
    let with_ten = "SELECT COUNT(*) FROM (SELECT secret FROM rotor_versions GROUP BY secret HAVING COUNT(*) = 10) t";
    assert_eq!(db.psql(with_ten), "18", "each secret holds its 10 puts");
}

/// Three replicas rotate 1,000 due secrets; one is killed (all its tasks aborted, its pool
/// dropped) halfway, one of its rotations parked right after the create step. The others
/// take the dead replica's rotations over once their leases expire and finish them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_rotate_a_thousand_secrets_once_with_one_killed() {
    const N: usize = 1000;
    const TASKS: usize = 4;
    let lease = SignedDuration::from_secs(2);
    let db = db();
    let stores = replicas(&db, 3).await;
    let names: Arc<Vec<SecretName>> =
        Arc::new((0..N).map(|i| name(&format!("app-{i:04}"))).collect());
    seed(&stores[0], &names).await;
    let since = Timestamp::now();
    let seeded: BTreeMap<String, VersionId> = {
        let mut m = BTreeMap::new();
        for s in names.iter() {
            let v = stores[0]
                .read_stage(s, Stage::Current)
                .await
                .expect("read")
                .expect("seeded");
            m.insert(s.to_string(), v.meta.id);
        }
        m
    };

    let (park_tx, park_rx) = tokio::sync::oneshot::channel();
    let mut park_tx = Some(park_tx);
    let mut handles: Vec<Vec<tokio::task::JoinHandle<Vec<Outcome>>>> = Vec::new();
    for (r, store) in stores.iter().enumerate() {
        let mut mine = Vec::new();
        for t in 0..TASKS {
            let store = Arc::clone(store);
            let names = Arc::clone(&names);
            // Replica 0's first task parks in its 41st rotation, after the create step
            // (each task's own share is about 83 secrets: halfway).
            let mut park = if r == 0 && t == 0 {
                park_tx.take()
            } else {
                None
            };
            mine.push(tokio::spawn(async move {
                let owner = format!("replica-{r}:{t}");
                let mut outcomes = Vec::new();
                let start = (r * TASKS + t) * N / (3 * TASKS);
                for i in 0..N {
                    let s = &names[(start + i * 7) % N];
                    let halfway = outcomes.iter().filter(|o| **o == Outcome::Rotated).count() >= 40;
                    let mut none = None;
                    let p = if halfway { &mut park } else { &mut none };
                    let o = rotate::rotate_if_due(&*store, s, &owner, since, lease, p)
                        .await
                        .unwrap_or_else(|e| panic!("{owner}: {e}"));
                    outcomes.push(o);
                }
                outcomes
            }));
        }
        handles.push(mine);
    }
    // Halfway: replica 0 is in the middle of a rotation; kill it.
    let parked = park_rx.await.expect("replica 0 parked mid-rotation");
    for h in &handles[0] {
        h.abort();
    }
    let dead = handles.remove(0);
    for h in dead {
        assert!(h.await.expect_err("aborted").is_cancelled());
    }
    let dead_store = stores[0].clone();
    drop(dead_store);

    let mut rotated_in_race = 0;
    for h in handles.into_iter().flatten() {
        let outcomes = h.await.expect("survivor task");
        assert!(!outcomes.contains(&Outcome::LostLease));
        rotated_in_race += outcomes.iter().filter(|o| **o == Outcome::Rotated).count();
    }
    // The dead replica's leftovers: the parked rotation at least.
    let left = stores[1].open_rotations().await.expect("open");
    assert!(
        left.iter().any(|r| r.id == parked),
        "the parked rotation is still running"
    );
    let (a, b) = tokio::join!(
        rotate::take_over_expired(&*stores[1], "replica-1:resume", lease),
        rotate::take_over_expired(&*stores[2], "replica-2:resume", lease),
    );
    let taken_over = a.expect("takeover 1") + b.expect("takeover 2");
    eprintln!("rotated in the race: {rotated_in_race}, taken over: {taken_over}");
    assert!(
        taken_over >= 1,
        "the parked rotation was finished by a survivor"
    );
    assert!(
        rotated_in_race > N / 2,
        "survivors did most of the work: {rotated_in_race}"
    );

    // Every secret rotated exactly once, none lost, the chain intact.
    let audit = stores[2].audit_all().await.expect("audit");
    verify_chain(&audit).expect("chain verifies");
    let count = |action: &str| {
        let mut m: BTreeMap<String, usize> = BTreeMap::new();
        for r in audit.iter().filter(|r| r.event.action == action) {
            *m.entry(r.event.secret.as_ref().expect("secret").to_string())
                .or_default() += 1;
        }
        m
    };
    let finished = count(rotate::FINISH);
    assert_eq!(finished.len(), N, "every secret finished");
    assert!(
        finished.values().all(|n| *n == 1),
        "exactly one finish each"
    );
    let begun = count(rotate::BEGIN);
    assert!(
        begun.values().all(|n| *n == 1),
        "exactly one rotation begun each"
    );
    let takeovers = audit
        .iter()
        .filter(|r| r.event.action == "rotation.lease")
        .filter(|r| {
            r.event
                .reason
                .as_deref()
                .is_some_and(|x| x.contains("took over"))
        })
        .count();
    assert_eq!(takeovers, taken_over);
    assert!(stores[1].open_rotations().await.expect("open").is_empty());
    let sums = stores[1].summaries().await.expect("summaries");
    assert_eq!(sums.len(), N);
    let not_two = "SELECT COUNT(*) FROM (SELECT secret FROM rotor_versions GROUP BY secret HAVING COUNT(*) <> 2) t";
    assert_eq!(db.psql(not_two), "0", "every secret: seed + one rotation");
    for s in &sums {
        let secret = s.secret.as_ref().expect("name").to_string();
        assert!(s.pending.is_none(), "{secret}");
        assert_eq!(
            s.previous.as_ref().map(|v| &v.id),
            seeded.get(&secret),
            "{secret}"
        );
        let last = s.last_rotation.as_ref().expect("rotated");
        assert_eq!(last.status, RotationStatus::Completed, "{secret}");
    }
    assert_eq!(
        db.psql("SELECT count(*) FROM rotor_stages WHERE stage = 'current'"),
        N.to_string(),
        "exactly one current each"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_rewrap_leaves_every_value_readable_and_completes() {
    let db = db();
    let mut old = key_copies(5);
    let mut new = key_copies(4);
    let store = PgStore::init(&db.url, old.pop().expect("key"), "alice")
        .await
        .expect("init");
    let mut values = Vec::new();
    for i in 0..30 {
        let s = name(&format!("k{i}"));
        for j in 0..4 {
            let value = format!("value-{i}-{j}");
            let (id, c) = put_change(&s, value.as_bytes());
            store.apply(c).await.expect("put");
            values.push((s.clone(), id, value));
        }
    }
    drop(store);

    // The rotation starts; two batches commit, then the process dies.
    let rotating = PgStore::connect_rotating(
        &db.url,
        new.pop().expect("key"),
        old.pop().expect("key"),
        Settings::default(),
    )
    .await
    .expect("both keys");
    let (k_old, k_new) = (old.pop().expect("key"), new.pop().expect("key"));
    assert_eq!(
        rotating
            .rewrap_batch(&k_old, &k_new, 50)
            .await
            .expect("batch"),
        50
    );
    assert_eq!(
        rotating
            .rewrap_batch(&k_old, &k_new, 50)
            .await
            .expect("batch"),
        50
    );
    // Meanwhile a write seals under the new key.
    let (late_id, c) = put_change(&name("late"), b"late-value");
    rotating.apply(c).await.expect("put during the rewrap");
    drop(rotating);
    assert_eq!(
        db.psql(&format!(
            "SELECT count(*) FROM rotor_versions WHERE key_id = '{}'",
            k_new.key_id()
        )),
        "101"
    );

    // After the crash: with both keys every value opens.
    let both = PgStore::connect_rotating(
        &db.url,
        new.pop().expect("key"),
        old.pop().expect("key"),
        Settings::default(),
    )
    .await
    .expect("both keys");
    for (s, id, value) in &values {
        let v = both.read_version(s, id).await.expect("read").expect("row");
        assert_eq!(v.value.expose(), value.as_bytes());
    }
    // The old key alone still opens the store (the key check is still its own), and the
    // rows not yet rewrapped; a rewrapped one says which key it needs.
    let old_only = PgStore::connect(&db.url, old.pop().expect("key"))
        .await
        .expect("old key still opens");
    let (s, id, value) = &values[values.len() - 1];
    assert_eq!(
        old_only
            .read_version(s, id)
            .await
            .expect("read")
            .expect("row")
            .value
            .expose(),
        value.as_bytes()
    );
    let err = old_only
        .read_version(&values[0].0, &values[0].1)
        .await
        .expect_err("rewrapped");
    assert!(matches!(err, StoreError::WrongMasterKey { .. }), "{err:?}");
    drop(old_only);

    // Re-running completes it: 20 left, then the key check moves to the new key.
    assert_eq!(
        both.rewrap_all(&k_old, &k_new, "alice")
            .await
            .expect("rewrap"),
        20
    );
    assert_eq!(
        both.rewrap_all(&k_old, &k_new, "alice")
            .await
            .expect("idempotent"),
        0
    );
    let err = PgStore::connect(&db.url, k_old)
        .await
        .expect_err("old key refused now");
    assert!(matches!(err, StoreError::WrongMasterKey { .. }), "{err:?}");
    let new_only = PgStore::connect(&db.url, k_new)
        .await
        .expect("new key opens");
    for (s, id, value) in &values {
        let v = new_only
            .read_version(s, id)
            .await
            .expect("read")
            .expect("row");
        assert_eq!(v.value.expose(), value.as_bytes());
    }
    let late = new_only
        .read_version(&name("late"), &late_id)
        .await
        .expect("read")
        .expect("row");
    assert_eq!(late.value.expose(), b"late-value");
    let audit = new_only.audit_all().await.expect("audit");
    assert_eq!(
        audit
            .iter()
            .filter(|r| r.event.action == "store.master_key.rotate")
            .count(),
        2
    );
    verify_chain(&audit).expect("chain");
}
