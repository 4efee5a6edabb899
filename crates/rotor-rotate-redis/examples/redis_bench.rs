//! Times full rotations (create + set + test + retire) against a real redis-server:
//! one rotation at a time, then 100 users with bounded concurrency. Targets: <= 10 ms per
//! rotation, <= 0.3 s for 100 users.
//!
//! `cargo run --release -p rotor-rotate-redis --example redis_bench`
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use rotor_core::config::{KindSettings, RedisSettings};
use rotor_core::rotator::StepContext;
use rotor_core::store::Versioned;
use rotor_core::{
    Automation, Kind, Policy, Rotator, SecretName, SecretSpec, SecretValue, Stage, VersionId,
    VersionMeta,
};
use rotor_rotate_redis::RedisRotator;
use rotor_test_support::{Redis, random_password};

const USERS: usize = 100;
const CONCURRENCY: usize = 16;
const SINGLE_RUNS: usize = 50;

fn spec(port: u16, user: &str) -> SecretSpec {
    SecretSpec {
        name: SecretName::new(&format!("bench-{user}")).expect("bench setup failed"),
        kind: Kind::Redis,
        description: None,
        owner: None,
        policy: Policy::new(
            None,
            rotor_core::Duration::from_days(30),
            rotor_core::Duration::from_hours(1),
            Automation::Automatic,
            false,
        )
        .expect("bench setup failed"),
        settings: KindSettings::Redis(RedisSettings {
            url: format!("redis://127.0.0.1:{port}"),
            user: user.to_owned(),
            admin: Some(SecretName::new("redis-admin").expect("bench setup failed")),
        }),
        window: None,
        jitter: rotor_core::Duration::ZERO,
        on_emergency: None,
        last_rotated: None,
    }
}

fn versioned(secret: &str, username: &str, password: &str, stage: Stage) -> Versioned {
    Versioned {
        meta: VersionMeta {
            id: VersionId::generate(),
            secret: SecretName::new(secret).expect("bench setup failed"),
            created_at: jiff::Timestamp::now(),
            created_by: "bench".to_owned(),
            metadata: serde_json::json!({}),
            stages: vec![stage],
        },
        value: SecretValue::new(
            serde_json::to_vec(&serde_json::json!({"username": username, "password": password}))
                .expect("bench setup failed"),
        ),
    }
}

/// One full rotation; returns the new current value.
async fn rotate(
    rot: &RedisRotator,
    spec: &SecretSpec,
    current: &Versioned,
    admin: &Versioned,
) -> Versioned {
    let ctx = StepContext {
        spec,
        current: Some(current),
        admin: Some(admin),
        emergency: false,
    };
    let generated = rot.create(&ctx).await.expect("bench setup failed");
    let mut pending = Versioned {
        meta: VersionMeta {
            id: VersionId::generate(),
            secret: spec.name.clone(),
            created_at: jiff::Timestamp::now(),
            created_by: "bench".to_owned(),
            metadata: generated.metadata,
            stages: vec![Stage::Pending],
        },
        value: generated.value,
    };
    rot.set(&ctx, &pending).await.expect("bench setup failed");
    rot.test(&ctx, &pending).await.expect("bench setup failed");
    pending.meta.stages = vec![Stage::Current];
    let after = StepContext {
        spec,
        current: Some(&pending),
        admin: Some(admin),
        emergency: false,
    };
    rot.retire(&after, current)
        .await
        .expect("bench setup failed");
    pending
}

async fn bench(redis: &Redis, label: &str) {
    let admin = Arc::new(versioned(
        "redis-admin",
        redis.admin_user(),
        redis.admin_password(),
        Stage::Current,
    ));
    let mut users = Vec::new();
    for i in 0..USERS {
        let user = format!("u{i:03}");
        let pw = random_password().expect("bench setup failed");
        redis
            .cli(&[
                "ACL",
                "SETUSER",
                &user,
                "on",
                &format!(">{pw}"),
                "~*",
                "+@all",
            ])
            .expect("bench setup failed");
        let spec = spec(redis.port(), &user);
        let current = versioned(spec.name.as_str(), &user, &pw, Stage::Current);
        users.push((spec, current));
    }
    let rot = Arc::new(RedisRotator::new());

    // One at a time, on user 0: the first includes opening the admin connection.
    let (spec0, mut current0) = users[0].clone();
    let started = Instant::now();
    current0 = rotate(&rot, &spec0, &current0, &admin).await;
    let cold = started.elapsed();
    let mut times = Vec::with_capacity(SINGLE_RUNS);
    for _ in 0..SINGLE_RUNS {
        let started = Instant::now();
        current0 = rotate(&rot, &spec0, &current0, &admin).await;
        times.push(started.elapsed());
    }
    times.sort();
    let median = times[times.len() / 2];
    let p95 = times[times.len() * 95 / 100];
    users[0].1 = current0;

    // 100 users, at most CONCURRENCY rotations at once.
    let limit = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (spec, current) in users {
        let (rot, admin, limit) = (Arc::clone(&rot), Arc::clone(&admin), Arc::clone(&limit));
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await.expect("bench setup failed");
            rotate(&rot, &spec, &current, &admin).await
        });
    }
    let mut done = 0;
    while let Some(r) = tasks.join_next().await {
        r.expect("bench setup failed");
        done += 1;
    }
    let all = started.elapsed();
    assert_eq!(done, USERS);

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{label}: one rotation (create+set+test+retire): cold {:.2} ms, median {:.2} ms, p95 {:.2} ms over {SINGLE_RUNS} [target <= 10 ms]",
        ms(cold),
        ms(median),
        ms(p95)
    );
    println!(
        "{label}: {USERS} users, concurrency {CONCURRENCY}: {:.1} ms total, {:.2} ms per rotation [target <= 300 ms]",
        ms(all),
        ms(all) / USERS as f64
    );
}

#[tokio::main]
async fn main() {
    let redis = Redis::start().expect("bench setup failed");
    bench(&redis, "no aclfile").await;
    drop(redis);
    let redis = Redis::start_with_aclfile().expect("bench setup failed");
    bench(&redis, "aclfile (ACL SAVE after each change)").await;
}
