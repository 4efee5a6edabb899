//! Rotations per second on the PostgreSQL store, with 1 and with 3 replicas.
//!
//! Starts a throwaway PostgreSQL 15 (rotor-test-support; fsync off), seeds N secrets, then
//! rotates all of them with the same five-transaction sequence the replica tests use
//! (begin; create pending; set+test; promote; complete — each fenced with the lease):
//! first with one store handle, then with three handles (separate pools = replicas), each
//! running T concurrent tasks that walk every secret from their own offset (a secret
//! already rotated or held by another replica is skipped, as a daemon would).
//!
//! `cargo run --release -p rotor-store-postgres --example pg_store_bench [N] [T]`

#[path = "../tests/common/rotate.rs"]
mod rotate;

use std::sync::Arc;
use std::time::Instant;

use jiff::{SignedDuration, Timestamp};
use rotor_core::audit::AuditEvent;
use rotor_core::store::{Change, NewVersion, Op};
use rotor_core::{SecretName, SecretValue, Store, VersionId};
use rotor_seal::MasterKey;
use rotor_store_postgres::{PgStore, Settings};
use rotor_test_support::Postgres;

type Error = Box<dyn std::error::Error + Send + Sync>;

fn key(encoded: &str) -> Result<MasterKey, Error> {
    Ok(MasterKey::from_encoded(encoded)?)
}

async fn run(
    stores: &[Arc<PgStore>],
    names: &Arc<Vec<SecretName>>,
    tasks: usize,
) -> Result<(usize, f64), Error> {
    let since = Timestamp::now();
    let started = Instant::now();
    let total = stores.len() * tasks;
    let mut handles = Vec::new();
    for (r, store) in stores.iter().enumerate() {
        for t in 0..tasks {
            let store = Arc::clone(store);
            let names = Arc::clone(names);
            handles.push(tokio::spawn(async move {
                let owner = format!("bench-{r}:{t}");
                let n = names.len();
                let start = (r * tasks + t) * n / total;
                let mut rotated = 0usize;
                for i in 0..n {
                    let s = &names[(start + i) % n];
                    let o = rotate::rotate_if_due(
                        &*store,
                        s,
                        &owner,
                        since,
                        SignedDuration::from_secs(30),
                        &mut None,
                    )
                    .await?;
                    if o == rotate::Outcome::Rotated {
                        rotated += 1;
                    }
                }
                Ok::<_, rotor_core::StoreError>(rotated)
            }));
        }
    }
    let mut rotated = 0;
    for h in handles {
        rotated += h.await??;
    }
    Ok((rotated, started.elapsed().as_secs_f64()))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(Ok(1000), |a| a.parse())?;
    let tasks: usize = args.next().map_or(Ok(4), |a| a.parse())?;
    let pg = Postgres::start()?;
    pg.create_db("rotor")?;
    let url = pg.url("rotor");
    let master = MasterKey::generate()?;
    let encoded = master.encode();
    use secrecy::ExposeSecret;
    let first = PgStore::init(&url, master, "bench").await?;
    let names: Arc<Vec<SecretName>> = Arc::new(
        (0..n)
            .map(|i| SecretName::new(&format!("bench-{i:05}")))
            .collect::<Result<_, _>>()?,
    );
    for chunk in names.chunks(100) {
        let mut change = Change::new().audit(AuditEvent::new("bench", "secret.seed"));
        for s in chunk {
            let id = VersionId::generate();
            change = change
                .op(Op::InsertVersion {
                    version: NewVersion {
                        secret: s.clone(),
                        id: id.clone(),
                        created_by: "bench".into(),
                        created_at: Timestamp::now(),
                        metadata: serde_json::json!({}),
                        value: SecretValue::new(VersionId::generate().to_string().into_bytes()),
                    },
                    stage: None,
                })
                .op(Op::Promote {
                    secret: s.clone(),
                    version: id,
                });
        }
        first.apply(change).await?;
    }
    drop(first);
    let settings = Settings {
        pool_size: tasks,
        ..Settings::default()
    };
    println!(
        "PostgreSQL store bench: {n} secrets, 5 transactions per rotation, {tasks} tasks per replica"
    );
    for replicas in [1usize, 3] {
        let mut stores = Vec::new();
        for _ in 0..replicas {
            let k = key(encoded.expose_secret())?;
            stores.push(Arc::new(
                PgStore::connect_with(&url, k, settings.clone()).await?,
            ));
        }
        let (rotated, secs) = run(&stores, &names, tasks).await?;
        println!(
            "{replicas} replica(s) x {tasks} tasks: {rotated} rotations in {secs:.2} s = {:.0} rotations/s ({:.0} transactions/s)",
            rotated as f64 / secs,
            rotated as f64 * 5.0 / secs
        );
        if rotated != n {
            return Err(format!("expected {n} rotations, got {rotated}").into());
        }
    }
    Ok(())
}
