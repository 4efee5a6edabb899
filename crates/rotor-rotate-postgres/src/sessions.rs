//! Live sessions of login roles: ending them in an emergency, and proving they are gone.
//!
//! Why a snapshot and a second read: `pg_terminate_backend` only signals (or waits up to its
//! timeout), and a count of "terminated" is not proof. The sessions seen before are
//! identified by `(pid, backend_start)` (a pid alone may be reused), and `pg_stat_activity`
//! is read again in a new transaction (it is a per-transaction snapshot) to count which of
//! them are still connected.

use rotor_core::rotator::Eviction;
use tokio_postgres::Client;

/// How long `pg_terminate_backend` waits for each session to exit, in milliseconds.
const TERMINATE_WAIT_MS: i64 = 5000;

/// Ends every session of `users` except this connection's own, and counts the survivors.
pub(crate) async fn evict(c: &Client, users: &[String]) -> Result<Eviction, tokio_postgres::Error> {
    let seen = c
        .query(
            "SELECT pid, backend_start::text FROM pg_stat_activity \
             WHERE usename = ANY($1) AND pid <> pg_backend_pid()",
            &[&users],
        )
        .await?;
    let pids: Vec<i32> = seen.iter().map(|r| r.get(0)).collect();
    let starts: Vec<Option<String>> = seen.iter().map(|r| r.get(1)).collect();
    if pids.is_empty() {
        return Ok(Eviction::default());
    }
    let ended: i64 = c
        .query_one(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, $2)) \
             FROM unnest($1::int4[]) AS t(pid)",
            &[&pids, &TERMINATE_WAIT_MS],
        )
        .await?
        .get(0);
    let surviving = surviving(c, &pids, &starts).await?;
    Ok(Eviction {
        ended: u64::try_from(ended).unwrap_or(0),
        surviving,
    })
}

/// How many of the sessions `(pids[i], starts[i])` are still in `pg_stat_activity`.
async fn surviving(
    c: &Client,
    pids: &[i32],
    starts: &[Option<String>],
) -> Result<u64, tokio_postgres::Error> {
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_stat_activity a \
             JOIN unnest($1::int4[], $2::text[]) AS s(pid, started) \
               ON a.pid = s.pid AND a.backend_start::text IS NOT DISTINCT FROM s.started",
            &[&pids, &starts],
        )
        .await?
        .get(0);
    Ok(u64::try_from(n).unwrap_or(0))
}
