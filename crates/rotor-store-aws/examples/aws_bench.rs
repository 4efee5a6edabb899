//! Time to rotate through AWS Secrets Manager (a real moto server on loopback) per secret.
//!
//! For each of N secrets (default 50): one rotation as the engine commits it (begin, create
//! pending, finish = promote, retire = clear previous), through `AwsStore` over a SQLite
//! ledger; then the same through the bare SQLite ledger, to show what the AWS mirror adds.
//!
//! `cargo run --release -p rotor-store-aws --example aws_bench [-- N]`

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use common::*;
use rotor_core::{Store, VersionId};

async fn rotate_all(store: &dyn Store, names: &[rotor_core::SecretName]) -> f64 {
    let started = Instant::now();
    for s in names {
        let old = store
            .read_stage(s, rotor_core::Stage::Current)
            .await
            .expect("read")
            .expect("current")
            .meta
            .id;
        let mut rot = Rot::begin(store, s).await;
        let new = VersionId::generate();
        store
            .apply(rot.create_change(&new, b"bench-new-value"))
            .await
            .expect("create");
        store.apply(rot.finish_change(&new)).await.expect("finish");
        store.apply(rot.retire_change(&old)).await.expect("retire");
    }
    started.elapsed().as_secs_f64() * 1000.0 / names.len() as f64
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(50);
    let moto = start_moto();
    let rig = rig(&moto.endpoint_url(), moto.region(), settings("divan/prod/"));
    let names: Vec<_> = (0..n).map(|i| name(&format!("bench-{i:03}"))).collect();
    for s in &names {
        put(&rig.store, s, b"bench-initial-value").await;
    }
    let aws_ms = rotate_all(&rig.store, &names).await;
    // Second pass: AWS secrets now carry history (more versions to list).
    let aws_ms2 = rotate_all(&rig.store, &names).await;

    let bare = rig.ledger.clone();
    let ledger_names: Vec<_> = (0..n).map(|i| name(&format!("ledger-{i:03}"))).collect();
    for s in &ledger_names {
        put(bare.as_ref(), s, b"bench-initial-value").await;
    }
    let ledger_ms = rotate_all(bare.as_ref(), &ledger_names).await;

    let read_started = Instant::now();
    for s in &names {
        rig.store
            .read_stage(s, rotor_core::Stage::Current)
            .await
            .expect("read")
            .expect("current");
    }
    let read_ms = read_started.elapsed().as_secs_f64() * 1000.0 / n as f64;

    println!("secrets: {n} (moto on loopback, SQLite ledger with synchronous=FULL)");
    println!(
        "rotation through AwsStore (begin+create+finish+retire): {aws_ms:.1} ms/secret (first pass), {aws_ms2:.1} ms/secret (second pass)"
    );
    println!("same rotation on the bare SQLite ledger:               {ledger_ms:.1} ms/secret");
    println!("verified read of current (ledger + GetSecretValue):    {read_ms:.1} ms/secret");
}
