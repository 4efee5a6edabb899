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

use rotor_core::config::{KindSettings, PgStrategy, PostgresSettings};
use rotor_core::rotator::StepContext;
use rotor_core::store::Versioned;
use rotor_core::{
    Automation, Kind, Policy, Rotator, SecretName, SecretSpec, SecretValue, Stage, VersionId,
    VersionMeta,
};
use rotor_rotate_postgres::PostgresRotator;
use rotor_test_support::Postgres;

const SECRETS: usize = 100;
const CONCURRENCY: usize = 8;
const SAMPLES: usize = 50;

fn spec(i: usize, port: u16) -> SecretSpec {
    SecretSpec {
        name: SecretName::new(&format!("bench-{i}")).unwrap(),
        kind: Kind::Postgres,
        description: None,
        owner: None,
        policy: Policy::new(
            None,
            rotor_core::Duration::from_days(30),
            rotor_core::Duration::from_days(1),
            Automation::Automatic,
            false,
        )
        .unwrap(),
        settings: KindSettings::Postgres(PostgresSettings {
            url: format!("postgres://127.0.0.1:{port}/postgres"),
            role: format!("bench_{i}"),
            strategy: PgStrategy::Alternating,
            admin: Some(SecretName::new("pg-admin").unwrap()),
        }),
    }
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
    let g = r.create(&c).await.unwrap();
    let pending = versioned(&spec.name, g.value, g.metadata);
    r.set(&c, &pending).await.unwrap();
    r.test(&c, &pending).await.unwrap();
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
        &SecretName::new("pg-admin").unwrap(),
        SecretValue::new(
            serde_json::to_vec(&serde_json::json!({
                "username": pg.admin_user(), "password": pg.admin_password()
            }))
            .unwrap(),
        ),
        serde_json::json!({"username": pg.admin_user()}),
    );
    let admin = Arc::new(admin);
    let r = Arc::new(PostgresRotator::new());
    let specs: Vec<Arc<SecretSpec>> = (0..SECRETS).map(|i| Arc::new(spec(i, pg.port()))).collect();

    let t = Instant::now();
    for s in &specs {
        r.setup(&ctx(s, None, &admin)).await.unwrap();
    }
    println!("setup of {SECRETS} alternating secrets: {:?}", t.elapsed());

    // First rotation of every secret (also warms the admin connection).
    let mut currents = Vec::new();
    for s in &specs {
        currents.push(rotate(&r, s, None, &admin).await);
    }

    // One rotation at a time, on secret 0.
    let (mut rot, mut ret, mut full) = (Vec::new(), Vec::new(), Vec::new());
    let s0 = &specs[0];
    let mut cur = currents[0].clone();
    for _ in 0..SAMPLES {
        let t = Instant::now();
        let next = rotate(&r, s0, Some(&cur), &admin).await;
        let t_rot = t.elapsed();
        let t2 = Instant::now();
        r.retire(&ctx(s0, Some(&next), &admin), &cur).await.unwrap();
        let t_ret = t2.elapsed();
        rot.push(t_rot);
        ret.push(t_ret);
        full.push(t_rot + t_ret);
        cur = next;
    }
    currents[0] = cur;
    println!();
    stats("one rotation (create+set+test)", rot);
    stats("retire (NOLOGIN + rejection proof)", ret);
    stats("create+set+test+retire", full);

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
                let _permit = sem.acquire_owned().await.unwrap();
                let next = rotate(&r, &s, Some(&cur), &admin).await;
                if with_retire {
                    r.retire(&ctx(&s, Some(&next), &admin), &cur).await.unwrap();
                }
                (i, next)
            });
        }
        while let Some(done) = set.join_next().await {
            let (i, next) = done.unwrap();
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
