//! rotor's PostgreSQL store: the embedded store's data model in one PostgreSQL database,
//! shared by several `rotor serve` replicas.
//!
//! [`PgStore`] implements [`rotor_core::Store`] with the same tables and semantics as
//! `rotor-store-sqlite` (prefixed `rotor_`): versions whose values are sealed with
//! `rotor-seal` (a fresh data key per value, wrapped by the master key, bound to
//! `(secret name, version id)`), stage labels keyed by `(secret, stage)`, rotation records
//! as indexed columns plus the whole record as JSON, and the hash-chained audit log (every
//! record with a MAC under a key derived from the master key; migration 0002). The
//! schema comes from numbered, append-only migrations embedded in the binary
//! (`migrations/*.sql`), recorded with their SHA-256 in `rotor_schema_migrations` and
//! applied under `pg_advisory_xact_lock(MIGRATION_LOCK)`, so two processes never migrate
//! at once and an edited released migration is detected.
//!
//! Invariants:
//! - **a stage moves only inside a transaction that also appends its audit record**: every
//!   write ([`Store::apply`], [`Store::claim`]) is one transaction that checks the fence,
//!   runs the ops, appends the audit events and commits; any error rolls all of it back;
//! - each stage labels at most one version of a secret (primary key `(secret, stage)`);
//! - at most one `running` rotation per secret: checked under a per-secret advisory lock,
//!   and enforced by a partial unique index as well, so two replicas racing
//!   `BeginRotation` for one secret get exactly one winner (the other gets `Busy`);
//! - a running rotation that names the version it replaces (`previous_version`) can only
//!   begin while that version is still current (else `Busy`): a replica that decided a
//!   secret was due just before another finished rotating it cannot rotate it twice;
//! - a lease token only ever grows, and only through [`Store::claim`]; a change fenced with
//!   an older token is refused with `LeaseLost` (checked with the rotation row locked
//!   `FOR UPDATE` until commit);
//! - the audit log is one total order across replicas: every append locks the single
//!   `rotor_audit_head` row (last seq and hash), so seq and prev_hash never fork;
//! - no plaintext value is ever sent to the server, and no value, password or row content
//!   appears in an error (driver errors are reduced to their message and SQLSTATE);
//! - [`PgStore::connect`] refuses a missing schema (`NotInitialized`), a newer one
//!   (`TooNew`), a damaged one (`Corrupt`) and a wrong master key (`WrongMasterKey`)
//!   before it writes anything.
//!
//! Isolation: READ COMMITTED with explicit locks (see `db/mod.rs` for their order) rather than
//! SERIALIZABLE. WHY: every audited write touches the audit head, so under SERIALIZABLE
//! concurrent replicas would mostly fail at commit and retry; with explicit locks they
//! queue instead, and each transaction reads the rows it decides on only after taking the
//! lock that protects them. Serialization failures and deadlocks (40001, 40P01) are still
//! retried inside the store a bounded number of times, then reported as
//! [`StoreError::Locked`]; so is a lock wait longer than [`Settings::lock_timeout`].
//!
//! Connections: a small pool per handle ([`Settings::pool_size`]), with TLS as the URL's
//! libpq parameters say (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`; `verify-full` by
//! default for a host that is not loopback; see `rotor_tls`). A connection whose work was cut off
//! (its future dropped, e.g. an aborted task) is closed rather than reused, so the server
//! rolls its transaction back at once. Requires a tokio runtime.
//!
//! Master-key rotation: [`PgStore::connect_rotating`] and [`PgStore::rewrap_all`] (see
//! there): committed batches rewrap the rows not yet under the new key, then one final
//! transaction rewraps the stragglers, moves the key check to the new key and records it.
//!
//! Migration (`rotor store migrate`): [`Store::export`] reads everything in one REPEATABLE
//! READ snapshot (values opened in memory); [`Store::import`] loads such a dump into a
//! freshly initialised store in one transaction that first locks every rotor table against
//! writers — refused with `NotEmpty` when the store holds any version, rotation or audit
//! record besides its own `store.init` — re-sealing every value with this store's key
//! under the same `(secret, version id)`, copying stages, rotation records and the audit
//! log verbatim (the `store.init` record gives way to the copied chain, and the audit head
//! moves to its last record), then appending the migrate event. A dump whose audit log
//! does not verify is refused before anything is written.
//!
//! [`Store::apply`]: rotor_core::Store::apply
//! [`Store::claim`]: rotor_core::Store::claim
//! [`Store::export`]: rotor_core::Store::export
//! [`Store::import`]: rotor_core::Store::import

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use rotor_core::{Backoff, StoreError};
use rotor_seal::{AuditKey, MasterKey};
use tokio_postgres::error::SqlState;

mod db;
mod pool;

/// Runs one pooled operation: `$body` sees `$ctx: &Ctx` and `$conn: &mut PgConn`.
macro_rules! pooled {
    ($self:ident, |$ctx:ident, $conn:ident| $body:expr) => {{
        let inner = &$self.inner;
        let mut lease = inner
            .pool
            .get()
            .await
            .map_err(|e| $crate::connect_error(&inner.ctx.target, &e))?;
        let $ctx = &inner.ctx;
        let $conn: &mut $crate::pool::PgConn = lease.conn();
        let r = $body.await;
        lease.done();
        r
    }};
}

mod key_rotation;
mod open;
mod settings;
mod store;

use db::Fail;
use pool::{ConnectError, Pool};

pub use settings::Settings;

/// The `rotor_meta.format` value of a rotor store.
const FORMAT: &str = "rotor-store";

/// Embedded, numbered, append-only migrations: entry `i` takes the schema from version `i`
/// to `i + 1`. Never edit a released one; append.
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_init", include_str!("../migrations/0001_init.sql")),
    (
        "0002_audit_mac",
        include_str!("../migrations/0002_audit_mac.sql"),
    ),
];

/// The first schema whose audit records carry a MAC: migrating past it appends the
/// `audit.keyed` record from which MACs apply.
const KEYED_SCHEMA: i64 = 2;

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The advisory lock key under which migrations run ("rotormig").
pub const MIGRATION_LOCK: i64 = 0x726f_746f_726d_6967;

/// Rows rewrapped per committed batch by [`PgStore::rewrap_all`].
pub const REWRAP_BATCH: usize = 200;

/// The PostgreSQL store. Cheap to clone (one shared pool per [`PgStore::connect`]).
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    ctx: Ctx,
    pool: Pool,
    /// The waits between tries of a write after a serialization failure or deadlock
    /// ([`Settings::retries`] retries).
    retry: Backoff,
}

/// What the operations need besides a connection.
pub(crate) struct Ctx {
    /// `postgres://user@host:port/db`, without the password: for messages.
    pub(crate) target: String,
    /// Seals new values; opens values.
    pub(crate) master: MasterKey,
    /// During a master-key rotation: the old key, which still opens rows not yet rewrapped.
    pub(crate) old: Option<MasterKey>,
    /// Authenticates every audit record appended (derived from `master`).
    pub(crate) records: AuditKey,
}

impl Ctx {
    /// The keys that open values: the master key, then the old one during a rotation.
    pub(crate) fn keys(&self) -> Vec<&MasterKey> {
        std::iter::once(&self.master)
            .chain(self.old.as_ref())
            .collect()
    }
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.inner.ctx.target)
            .field("key_id", &self.inner.ctx.master.key_id())
            .field(
                "old_key_id",
                &self.inner.ctx.old.as_ref().map(MasterKey::key_id),
            )
            .finish_non_exhaustive()
    }
}

/// Maps a `rotor-seal` error that is not about one row (loading a key, the key check) to a
/// [`StoreError`], as `rotor_store_sqlite::seal_error` does.
pub fn seal_error(e: rotor_seal::Error) -> StoreError {
    use rotor_seal::Error as E;
    match e {
        E::NoMasterKey { .. } => StoreError::MissingMasterKey {
            detail: e.to_string(),
        },
        E::WrongMasterKey { .. } | E::Tampered => StoreError::WrongMasterKey {
            detail: e.to_string(),
        },
        _ => StoreError::Backend(e.to_string()),
    }
}

/// Maps a driver error: lock waits and dropped connections are [`StoreError::Locked`]
/// (worth retrying), anything else [`StoreError::Backend`] with the server's message and
/// SQLSTATE only — never its DETAIL, which can quote row contents.
pub(crate) fn pg_error(target: &str, e: &tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        if *code == SqlState::LOCK_NOT_AVAILABLE
            || *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::T_R_DEADLOCK_DETECTED
        {
            return StoreError::Locked;
        }
        return StoreError::Backend(format!(
            "store {target}: {}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            code.code()
        ));
    }
    if e.is_closed() {
        return StoreError::Locked;
    }
    StoreError::Backend(format!("store {target}: {e}"))
}

/// Maps a failure to connect: a TLS refusal is explained (never retried), the rest as
/// [`pg_error`].
pub(crate) fn connect_error(target: &str, e: &ConnectError) -> StoreError {
    match e {
        ConnectError::Pg(e) => pg_error(target, e),
        ConnectError::Tls(t) => {
            StoreError::Backend(format!("store {target}: {}; {}", t.message, t.fix))
        }
        ConnectError::Stopped => StoreError::Backend(format!(
            "store {target}: cannot connect while rotor is shutting down"
        )),
    }
}

fn fail(e: Fail) -> StoreError {
    match e {
        Fail::Store(e) => e,
        Fail::Retry => StoreError::Locked,
    }
}

/// The serialization-retry backoff: `retries` retries after the first try, waiting from
/// 2 ms doubling up to 40 ms (plus jitter, added by [`PgStore::backoff`]). WHY so short: a
/// retry waits out another replica's transaction, which holds its locks for milliseconds;
/// 40 ms is the last wait of the linear pause (2 ms a try) this replaced, at the default
/// 20 retries.
fn retry_backoff(retries: u32) -> Backoff {
    Backoff::new(
        retries.saturating_add(1),
        Duration::from_millis(2),
        Duration::from_millis(40),
    )
}

impl PgStore {
    /// `postgres://user@host:port/db` (never the password).
    pub fn target(&self) -> &str {
        &self.inner.ctx.target
    }

    /// Runs a write transaction, again after a serialization failure or deadlock (bounded,
    /// with a short growing pause), else [`StoreError::Locked`]. `attempt` is the number of
    /// tries that failed so far.
    async fn backoff(&self, attempt: u32) -> Result<(), StoreError> {
        let retry = &self.inner.retry;
        if !retry.may_retry(attempt) {
            return Err(StoreError::Locked);
        }
        // Jitter from the clock: replicas that collided should not collide again.
        let jitter = u64::from(Timestamp::now().subsec_nanosecond().unsigned_abs() % 5_000);
        tokio::time::sleep(retry.delay(attempt) + Duration::from_micros(jitter)).await;
        Ok(())
    }
}
