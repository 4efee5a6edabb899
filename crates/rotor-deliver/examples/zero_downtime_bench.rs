//! Zero-downtime figures and rotation time through the full engine, against real,
//! throwaway PostgreSQL 15 and Redis 7 servers.
//!
//! `cargo run --release -p rotor-deliver --example zero_downtime_bench`
//!
//! 1. Client load: apps that re-read the rendered `.env` every 100 ms and open a fresh
//!    connection per query (~200/s per kind) while rotor rotates a PostgreSQL `alternating`,
//!    a PostgreSQL `single` and a Redis secret 5 times with grace 2 s. Prints failed/total
//!    logins per kind (targets: 0 for alternating and Redis; `single` has a window by nature).
//! 2. Rotation time through `Engine::rotate` (create, set, test, finish: every store write,
//!    the delivery check, the rotator's network round trips): the median of one rotation,
//!    and 100 secrets with 8 at a time. Targets: PostgreSQL ≤ 6 ms and ≤ 0.2 s; Redis
//!    ≤ 10 ms and ≤ 0.3 s. The same operations on the rotator alone (create + set + test,
//!    no store) are measured last, for comparison with the rotator crates' own benchmarks.
//!
//! Grace ends without waiting in part 2: the engine's clock is offset forward between
//! passes (the retires themselves are real).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rotor_core::rotator::StepContext;
use rotor_core::store::Versioned;
use rotor_core::{Rotator, SecretName, Stage, VersionId, VersionMeta};
use rotor_engine::{Outcome, RotateOptions};

const SECRETS: usize = 100;
const CONCURRENCY: usize = 8;
const PASSES: usize = 3;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    println!("starting PostgreSQL and Redis, bootstrapping {SECRETS} + {SECRETS} bench secrets…");
    let t = Instant::now();
    let h = common::Harness::start(SECRETS).await;
    println!("ready in {:.1} s\n", t.elapsed().as_secs_f64());

    println!("== zero downtime: 5 rotations, grace 2 s, fresh connection per query ==");
    let report = common::run_load(&h, 5, 200, 200).await;
    report.print();

    println!("\n== rotation time through the engine (store writes included) ==");
    for (label, names) in [
        ("postgres alternating", &h.bench_pg),
        ("redis", &h.bench_redis),
    ] {
        let mut singles = Vec::new();
        let mut batches = Vec::new();
        let mut retires = Vec::new();
        for _ in 0..PASSES {
            for n in names.iter() {
                let t = Instant::now();
                let out = h
                    .engine
                    .rotate(n, &RotateOptions::default())
                    .await
                    .expect("bench setup failed");
                singles.push(t.elapsed());
                assert!(matches!(out, Outcome::InGrace { .. }), "{n}: {out:?}");
            }
            retires.push(retire_all(&h, names.len()).await);

            let t = Instant::now();
            rotate_bounded(&h, names).await;
            batches.push(t.elapsed());
            retire_all(&h, names.len()).await;
        }
        stats(&format!("{label}: one rotation"), singles);
        println!(
            "  {label}: {SECRETS} rotations, {CONCURRENCY} at a time: median {:.3} s (of {PASSES} runs: {})",
            median(&mut batches).as_secs_f64(),
            batches
                .iter()
                .map(|d| format!("{:.3}", d.as_secs_f64()))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "  {label}: retire of {SECRETS} one after another (test current, retire, prove rejected): median {:.3} s",
            median(&mut retires).as_secs_f64()
        );
    }

    println!("\n== the rotator alone (create + set + test, no store), for comparison ==");
    let pg: Arc<dyn Rotator> = Arc::new(rotor_rotate_postgres::PostgresRotator::new());
    let redis: Arc<dyn Rotator> = Arc::new(rotor_rotate_redis::RedisRotator::new());
    for (label, names, rotator) in [
        ("postgres alternating", &h.bench_pg, &pg),
        ("redis", &h.bench_redis, &redis),
    ] {
        // The first call opens the rotator's admin connection, as a long-lived one has it.
        rotator_only(&h, &names[0], rotator).await;
        let mut samples = Vec::new();
        for n in names.iter() {
            samples.push(rotator_only(&h, n, rotator).await);
        }
        stats(&format!("{label}: rotator create+set+test"), samples);
    }
}

/// Ends the grace of every open rotation and retires them; returns how long that took.
async fn retire_all(h: &common::Harness, expected: usize) -> Duration {
    h.clock.advance(Duration::from_secs(2 * 3600));
    let t = Instant::now();
    let done = h.engine.retire_due().await.expect("bench setup failed");
    let took = t.elapsed();
    assert_eq!(done.len(), expected);
    for (name, r) in done {
        assert!(matches!(r, Ok(Outcome::Completed { .. })), "{name}: {r:?}");
    }
    took
}

/// Rotates every secret in `names`, at most `CONCURRENCY` at a time.
async fn rotate_bounded(h: &common::Harness, names: &[String]) {
    let sem = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let mut set = tokio::task::JoinSet::new();
    for n in names {
        let (engine, sem, n) = (h.engine.clone(), sem.clone(), n.clone());
        set.spawn(async move {
            let _permit = sem.acquire_owned().await.expect("bench setup failed");
            let out = engine.rotate(&n, &RotateOptions::default()).await;
            assert!(matches!(out, Ok(Outcome::InGrace { .. })), "{n}: {out:?}");
        });
    }
    while let Some(r) = set.join_next().await {
        r.expect("bench setup failed");
    }
}

/// create + set + test on the rotator directly, with the stored admin and current values.
/// (Leaves an extra valid password on the target that the store does not know: run last.)
async fn rotator_only(h: &common::Harness, name: &str, rotator: &Arc<dyn Rotator>) -> Duration {
    let engine = &h.engine;
    let spec = engine
        .config()
        .secret(name)
        .expect("bench setup failed")
        .clone();
    let store = engine.store();
    let secret = SecretName::new(name).expect("bench setup failed");
    let current = store
        .read_stage(&secret, Stage::Current)
        .await
        .expect("bench setup failed");
    let admin_name = if name.starts_with("bench-pg") {
        common::PG_ADMIN
    } else {
        common::REDIS_ADMIN
    };
    let admin = store
        .read_stage(
            &SecretName::new(admin_name).expect("bench setup failed"),
            Stage::Current,
        )
        .await
        .expect("bench setup failed");
    let ctx = StepContext {
        spec: &spec,
        current: current.as_ref(),
        admin: admin.as_ref(),
        emergency: false,
    };
    let t = Instant::now();
    let g = rotator.create(&ctx).await.expect("bench setup failed");
    let pending = Versioned {
        meta: VersionMeta {
            id: VersionId::generate(),
            secret: secret.clone(),
            created_at: jiff::Timestamp::now(),
            created_by: "bench".into(),
            metadata: g.metadata,
            stages: vec![Stage::Pending],
        },
        value: g.value,
    };
    rotator
        .set(&ctx, &pending)
        .await
        .expect("bench setup failed");
    rotator
        .test(&ctx, &pending)
        .await
        .expect("bench setup failed");
    let took = t.elapsed();
    // Undo on the target, so the store's current value stays the truth.
    rotator
        .rollback(&ctx, &pending)
        .await
        .expect("bench setup failed");
    took
}

fn median(d: &mut [Duration]) -> Duration {
    d.sort();
    d[d.len() / 2]
}

fn stats(label: &str, mut d: Vec<Duration>) {
    d.sort();
    let ms = |x: Duration| x.as_secs_f64() * 1000.0;
    println!(
        "  {label}: median {:.2} ms, p90 {:.2} ms, min {:.2} ms, max {:.2} ms (n = {})",
        ms(d[d.len() / 2]),
        ms(d[d.len() * 9 / 10]),
        ms(d[0]),
        ms(d[d.len() - 1]),
        d.len()
    );
}
