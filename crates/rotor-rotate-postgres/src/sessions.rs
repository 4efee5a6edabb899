//! Live sessions of login roles: ending them in an emergency, and proving they are gone.
//!
//! Why a snapshot and a second read: `pg_terminate_backend` only signals, and a count of
//! "terminated" is not proof. The sessions seen before are identified by `(pid,
//! backend_start)` (a pid alone may be reused), and `pg_stat_activity` is read again in a
//! new transaction (it is a per-transaction snapshot) to count which of them are still
//! connected.
//!
//! Why signal all, then poll, rather than `pg_terminate_backend(pid, timeout)`: with a
//! timeout PostgreSQL waits for each pid in turn and checks in 100 ms steps, so every
//! eviction took at least 100 ms per session (most of an emergency's time with live
//! sessions, `scripts/bench-emergency`). Signalling every session at once and reading the
//! activity view every few milliseconds ends them in parallel and proves it as soon as
//! they are gone.

use std::time::Duration;

use rotor_core::rotator::Eviction;
use tokio_postgres::Client;

/// How long the signalled sessions get to exit before the survivors are counted.
const TERMINATE_WAIT: Duration = Duration::from_secs(5);
/// How often `pg_stat_activity` is read meanwhile.
const POLL: Duration = Duration::from_millis(5);

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
    // Only the sessions seen above are signalled (a pid reused since is left alone: the
    // backend start must match too).
    c.query_one(
        &format!("SELECT count(*) FILTER (WHERE pg_terminate_backend(a.pid)) {SEEN}"),
        &[&pids, &starts],
    )
    .await?;
    let give_up = tokio::time::Instant::now() + TERMINATE_WAIT;
    let mut left = surviving(c, &pids, &starts).await?;
    while left > 0 && tokio::time::Instant::now() < give_up {
        tokio::time::sleep(POLL).await;
        left = surviving(c, &pids, &starts).await?;
    }
    let seen = u64::try_from(pids.len()).unwrap_or(u64::MAX);
    Ok(Eviction {
        ended: seen.saturating_sub(left),
        surviving: left,
    })
}

/// The sessions `(pids[i], starts[i])` still in `pg_stat_activity` (`$1` pids, `$2` starts).
const SEEN: &str = "FROM pg_stat_activity a \
     JOIN unnest($1::int4[], $2::text[]) AS s(pid, started) \
       ON a.pid = s.pid AND a.backend_start::text IS NOT DISTINCT FROM s.started";

/// How many of the sessions `(pids[i], starts[i])` are still in `pg_stat_activity`.
async fn surviving(
    c: &Client,
    pids: &[i32],
    starts: &[Option<String>],
) -> Result<u64, tokio_postgres::Error> {
    let n: i64 = c
        .query_one(&format!("SELECT count(*) {SEEN}"), &[&pids, &starts])
        .await?
        .get(0);
    Ok(u64::try_from(n).unwrap_or(0))
}
