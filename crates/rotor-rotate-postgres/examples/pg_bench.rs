//! Benchmark of the PostgreSQL rotator against a real, throwaway PostgreSQL 15 server.
//!
//! `cargo run --release -p rotor-rotate-postgres --example pg_bench`
//!
//! Sets up 100 alternating secrets, then measures one rotation (create + set + test, and
//! retire separately) and 100 rotations with 8 at a time. Targets: ≤ 6 ms per rotation
//! including test; ≤ 0.2 s for 100.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use rotor_core::rotator::StepContext;
use rotor_core::store::Versioned;
use rotor_core::{Rotator, SecretName, SecretSpec, SecretValue, Stage, VersionId, VersionMeta};
use rotor_rotate_postgres::PostgresRotator;
use rotor_test_support::Postgres;

const SECRETS: usize = 100;
const CONCURRENCY: usize = 8;
const SAMPLES: usize = 50;

/// An alternating secret as the inventory parser builds it.
fn spec(i: usize, port: u16) -> SecretSpec {
    let url = format!("postgres://127.0.0.1:{port}/postgres");
    let toml = format!(
        "[secrets.bench-{i}]\nkind = \"postgres\"\ntier = \"medium\"\nurl = \"{url}\"\n\
         role = \"bench_{i}\"\nstrategy = \"alternating\"\nadmin = \"pg-admin\"\n\n\
         [secrets.pg-admin]\nkind = \"postgres\"\ntier = \"low\"\nurl = \"{url}\"\nrole = \"postgres\"\n"
    );
    let config =
        rotor_core::config::parse(&toml, std::path::Path::new("/tmp/bench.toml"), &|_| None)
            .unwrap_or_else(|e| panic!("{e}"));
    config
        .secret(&format!("bench-{i}"))
        .expect("bench setup failed")
        .clone()
}

fn versioned(secret: &SecretName, value: SecretValue, metadata: serde_json::Value) -> Versioned {
    Versioned {
        meta: VersionMeta {
            id: VersionId::generate(),
            secret: secret.clone(),
            created_at: jiff::Timestamp::now(),
            created_by: "bench".to_owned(),
            metadata,
            stages: vec![Stage::Current],
        },
        value,
    }
}

fn ctx<'a>(
    spec: &'a SecretSpec,
    current: Option<&'a Versioned>,
    admin: &'a Versioned,
) -> StepContext<'a> {
    StepContext {
        spec,
        current,
        admin: Some(admin),
        emergency: false,
    }
}

/// create + set + test; returns the new value.
async fn rotate(
    r: &PostgresRotator,
    spec: &SecretSpec,
    current: Option<&Versioned>,
    admin: &Versioned,
) -> Versioned {
    let c = ctx(spec, current, admin);
    let g = r.create(&c).await.expect("bench setup failed");
    let pending = versioned(&spec.name, g.value, g.metadata);
    r.set(&c, &pending).await.expect("bench setup failed");
    r.test(&c, &pending).await.expect("bench setup failed");
    pending
}

fn stats(label: &str, mut d: Vec<Duration>) {
    d.sort();
    let ms = |x: Duration| x.as_secs_f64() * 1000.0;
    let mean = d.iter().map(|x| ms(*x)).sum::<f64>() / d.len() as f64;
    println!(
        "{label:<40} median {:6.2} ms  mean {:6.2} ms  p90 {:6.2} ms  max {:6.2} ms  (n={})",
        ms(d[d.len() / 2]),
        mean,
        ms(d[d.len() * 9 / 10]),
        ms(d[d.len() - 1]),
        d.len()
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let t = Instant::now();
    let pg = Postgres::start().expect("starting PostgreSQL 15");
    println!("server started in {:?} on port {}", t.elapsed(), pg.port());
    let admin = versioned(
        &SecretName::new("pg-admin").expect("bench setup failed"),
        SecretValue::new(
            serde_json::to_vec(&serde_json::json!({
                "username": pg.admin_user(), "password": pg.admin_password()
            }))
            .expect("bench setup failed"),
        ),
        serde_json::json!({"username": pg.admin_user()}),
    );
    let admin = Arc::new(admin);
    let r = Arc::new(PostgresRotator::new());
    let specs: Vec<Arc<SecretSpec>> = (0..SECRETS).map(|i| Arc::new(spec(i, pg.port()))).collect();

    let t = Instant::now();
    for s in &specs {
        r.setup(&ctx(s, None, &admin))
            .await
            .expect("bench setup failed");
    }
    println!("setup of {SECRETS} alternating secrets: {:?}", t.elapsed());

    // First rotation of every secret (also warms the admin connection).
    let mut currents = Vec::new();
    for s in &specs {
        currents.push(rotate(&r, s, None, &admin).await);
    }

    // Baseline: what one fresh login costs on this machine, whatever the rotator does
    // (`test` needs one; retire's rejection proof needs another).
    let mut base = Vec::new();
    let mut cfg = tokio_postgres::Config::new();
    cfg.host("127.0.0.1")
        .port(pg.port())
        .dbname("postgres")
        .user(pg.admin_user())
        .password(pg.admin_password());
    for _ in 0..SAMPLES {
        let t = Instant::now();
        let (c, conn) = cfg
            .connect(tokio_postgres::NoTls)
            .await
            .expect("bench setup failed");
        let task = tokio::spawn(conn);
        c.simple_query("SELECT 1")
            .await
            .expect("bench setup failed");
        base.push(t.elapsed());
        drop(c);
        let _ = task.await;
    }
    let t = Instant::now();
    for _ in 0..SAMPLES {
        std::hint::black_box(rotor_rotate_postgres::sql::scram_verifier(
            b"bench-password",
        ));
    }
    let scram = t.elapsed() / SAMPLES as u32;

    // One rotation at a time, on secret 0.
    let (mut rot, mut ret, mut full) = (Vec::new(), Vec::new(), Vec::new());
    let s0 = &specs[0];
    let mut cur0 = currents[0].clone();
    for _ in 0..SAMPLES {
        let t = Instant::now();
        let next = rotate(&r, s0, Some(&cur0), &admin).await;
        let t_rot = t.elapsed();
        let t2 = Instant::now();
        r.retire(&ctx(s0, Some(&next), &admin), &cur0)
            .await
            .expect("bench setup failed");
        let t_ret = t2.elapsed();
        rot.push(t_rot);
        ret.push(t_ret);
        full.push(t_rot + t_ret);
        cur0 = next;
    }
    // Per step, on secret 1.
    let (mut tc, mut ts, mut tt) = (Vec::new(), Vec::new(), Vec::new());
    let s1 = &specs[1];
    let mut cur = currents[1].clone();
    for _ in 0..SAMPLES {
        let c = ctx(s1, Some(&cur), &admin);
        let t = Instant::now();
        let g = r.create(&c).await.expect("bench setup failed");
        tc.push(t.elapsed());
        let pending = versioned(&s1.name, g.value, g.metadata);
        let t = Instant::now();
        r.set(&c, &pending).await.expect("bench setup failed");
        ts.push(t.elapsed());
        let t = Instant::now();
        r.test(&c, &pending).await.expect("bench setup failed");
        tt.push(t.elapsed());
        cur = pending;
    }
    currents[1] = cur;
    currents[0] = cur0;
    println!();
    stats("baseline: fresh login + SELECT 1", base);
    println!(
        "{:<40} {:6.2} ms",
        "SCRAM verifier (4096 rounds)",
        scram.as_secs_f64() * 1000.0
    );
    stats("one rotation (create+set+test)", rot);
    stats("retire (NOLOGIN + rejection proof)", ret);
    stats("create+set+test+retire", full);
    stats("  create", tc);
    stats("  set (ALTER ROLE on the cached admin conn)", ts);
    stats("  test (fresh login + pg_has_role)", tt);

    // 100 secrets, 8 at a time.
    for with_retire in [false, true] {
        let sem = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
        let mut set = tokio::task::JoinSet::new();
        let t = Instant::now();
        for (i, s) in specs.iter().enumerate() {
            let (r, s, admin, cur, sem) = (
                Arc::clone(&r),
                Arc::clone(s),
                Arc::clone(&admin),
                currents[i].clone(),
                Arc::clone(&sem),
            );
            set.spawn(async move {
                let _permit = sem.acquire_owned().await.expect("bench setup failed");
                let next = rotate(&r, &s, Some(&cur), &admin).await;
                if with_retire {
                    r.retire(&ctx(&s, Some(&next), &admin), &cur)
                        .await
                        .expect("bench setup failed");
                }
                (i, next)
            });
        }
        while let Some(done) = set.join_next().await {
            let (i, next) = done.expect("bench setup failed");
            currents[i] = next;
        }
        println!(
            "{SECRETS} rotations, {CONCURRENCY} at a time{}: {:?}",
            if with_retire {
                " (create+set+test+retire)"
            } else {
                " (create+set+test)"
            },
            t.elapsed()
        );
    }
}
