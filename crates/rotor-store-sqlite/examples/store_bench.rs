//! Benchmarks for the SQLite store (not run by tests):
//!
//! 1. `rotor status` over 10,000 secrets: open the store (including its integrity check)
//!    and read `summaries()`.
//! 2. Rotations per second of one secret with every step its own durable `apply`
//!    (BeginRotation; InsertVersion pending + SaveRotation; SaveRotation(set);
//!    SaveRotation(test); Promote + SaveRotation(grace)), for both `synchronous` settings,
//!    through tokio's blocking pool and inline.
//!
//! `cargo run --release -p rotor-store-sqlite --example store_bench -- [DIR] [SECRETS] [ROTATIONS]`
//! DIR defaults to a temporary directory (mind which filesystem it is on: fsync cost is the
//! whole story for the durable figures).

use std::future::Future;
use std::path::Path;
use std::time::Instant;

use jiff::Timestamp;
use rotor_core::audit::AuditEvent;
use rotor_core::store::{Change, NewVersion, Op};
use rotor_core::{
    Rotation, RotationId, RotationStatus, SecretName, SecretValue, Stage, Step, Store, StoreError,
    VersionId, rotation::Trigger,
};
use rotor_seal::MasterKey;
use rotor_store_sqlite::{Settings, SqliteStore, Synchronous};
use secrecy::ExposeSecret;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn version(secret: &SecretName, value: &[u8]) -> NewVersion {
    NewVersion {
        secret: secret.clone(),
        id: VersionId::generate(),
        created_by: "bench".into(),
        created_at: Timestamp::now(),
        metadata: serde_json::json!({}),
        value: SecretValue::from_slice(value),
    }
}

/// Polls a future that completes without waiting (the store's inline mode).
fn inline<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn status_bench(dir: &Path, secrets: usize) -> Res<()> {
    let path = dir.join("status.db");
    let key = MasterKey::generate()?;
    let encoded = key.encode();
    let store = SqliteStore::create(&path, key, "bench")?;
    let t = Instant::now();
    let mut change = Change::new();
    for i in 0..secrets {
        let s = SecretName::new(&format!("app.secret-{i:05}"))?;
        let v = version(&s, b"a-value-of-about-thirty-two-b");
        let id = v.id.clone();
        change = change
            .op(Op::InsertVersion {
                version: v,
                stage: None,
            })
            .op(Op::Promote {
                secret: s.clone(),
                version: id.clone(),
            })
            .audit(
                AuditEvent::new("bench", "secret.put")
                    .secret(&s)
                    .version(&id),
            );
        if change.ops.len() >= 1000 || i + 1 == secrets {
            inline(store.apply(std::mem::take(&mut change)))?;
        }
    }
    println!(
        "setup: {secrets} secrets with a current version in {:.2?} ({} bytes)",
        t.elapsed(),
        std::fs::metadata(&path)?.len()
    );
    drop(store);
    for round in 0..3 {
        let t = Instant::now();
        let store = SqliteStore::open(&path, MasterKey::from_encoded(encoded.expose_secret())?)?;
        let opened = t.elapsed();
        let sums = inline(store.summaries())?;
        let total = t.elapsed();
        assert_eq!(sums.len(), secrets);
        println!(
            "status round {round}: open (with quick_check) {opened:.2?}, summaries() {:.2?}, total {total:.2?}",
            total - opened
        );
    }
    Ok(())
}

fn rotation(secret: &SecretName) -> Rotation {
    let now = Timestamp::now();
    Rotation {
        id: RotationId::generate(),
        secret: secret.clone(),
        trigger: Trigger::Schedule,
        actor: "rotor".into(),
        reason: None,
        emergency: false,
        evict: true,
        status: RotationStatus::Running,
        step: Step::Create,
        step_done: false,
        attempts: 0,
        error: None,
        pending_version: None,
        previous_version: None,
        started_at: now,
        updated_at: now,
        activate_after: None,
        rollback_owed: false,
        retire_after: None,
        lease: None,
    }
}

async fn one_rotation(store: &SqliteStore, s: &SecretName) -> Result<(), StoreError> {
    let ev = |action: &str| AuditEvent::new("rotor", action).secret(s);
    let mut r = rotation(s);
    store
        .apply(
            Change::new()
                .op(Op::BeginRotation(Box::new(r.clone())))
                .audit(ev("rotation.create").rotation(&r.id)),
        )
        .await?;
    let v = version(s, b"0123456789abcdef0123456789abcdef");
    let vid = v.id.clone();
    r.pending_version = Some(vid.clone());
    r.step_done = true;
    store
        .apply(
            Change::new()
                .op(Op::InsertVersion {
                    version: v,
                    stage: Some(Stage::Pending),
                })
                .op(Op::SaveRotation(Box::new(r.clone())))
                .audit(ev("rotation.step").rotation(&r.id).version(&vid)),
        )
        .await?;
    for step in [Step::Set, Step::Test] {
        r.step = step;
        store
            .apply(
                Change::new()
                    .op(Op::SaveRotation(Box::new(r.clone())))
                    .audit(ev("rotation.step").rotation(&r.id)),
            )
            .await?;
    }
    r.step = Step::Finish;
    r.status = RotationStatus::Grace;
    store
        .apply(
            Change::new()
                .op(Op::Promote {
                    secret: s.clone(),
                    version: vid.clone(),
                })
                .op(Op::SaveRotation(Box::new(r.clone())))
                .audit(ev("rotation.finish").rotation(&r.id).version(&vid)),
        )
        .await?;
    Ok(())
}

fn rotation_bench(dir: &Path, n: usize, sync: Synchronous) -> Res<()> {
    let s = SecretName::new("random")?;
    let settings = Settings {
        synchronous: sync,
        ..Settings::default()
    };
    for mode in bench_order() {
        let path = dir.join(format!("rot-{sync:?}-{mode}.db"));
        let store =
            SqliteStore::create_with(&path, MasterKey::generate()?, "bench", None, settings)?;
        let t = Instant::now();
        if mode == "inline" {
            for _ in 0..n {
                inline(one_rotation(&store, &s))?;
            }
        } else {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .build()?;
            rt.block_on(async {
                for _ in 0..n {
                    one_rotation(&store, &s).await?;
                }
                Ok::<_, StoreError>(())
            })?;
        }
        let el = t.elapsed();
        println!(
            "rotations, synchronous={sync:?}, {mode}: {n} in {el:.2?} = {:.0} rotations/s ({:.0} commits/s)",
            n as f64 / el.as_secs_f64(),
            5.0 * n as f64 / el.as_secs_f64()
        );
    }
    Ok(())
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let tmp = tempfile::tempdir()?;
    let dir = args
        .first()
        .map_or_else(|| tmp.path().to_owned(), std::path::PathBuf::from);
    let secrets = args.get(1).map_or(Ok(10_000), |s| s.parse())?;
    let rotations = args.get(2).map_or(Ok(2_000), |s| s.parse())?;
    let work = tempfile::tempdir_in(&dir)?;
    println!("directory: {}", work.path().display());
    status_bench(work.path(), secrets)?;
    for sync in [Synchronous::Normal, Synchronous::Hybrid, Synchronous::Full] {
        rotation_bench(work.path(), rotations, sync)?;
    }
    Ok(())
}

/// `BENCH_INLINE_FIRST=1` swaps the order, to separate the mode from the run order (the
/// first run's dirty pages are still being written back while the second runs).
fn bench_order() -> [&'static str; 2] {
    if std::env::var_os("BENCH_INLINE_FIRST").is_some() {
        ["inline", "spawn_blocking"]
    } else {
        ["spawn_blocking", "inline"]
    }
}
