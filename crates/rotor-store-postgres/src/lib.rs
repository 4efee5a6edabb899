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
//! Isolation: READ COMMITTED with explicit locks (see `db.rs` for their order) rather than
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

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use rotor_core::audit::{AuditEvent, Verified, verify_chain};
use rotor_core::rotation::Lease;
use rotor_core::store::{Change, Dump, SecretSummary, Takeover, Versioned};
use rotor_core::{
    AuditRecord, Backoff, Rotation, RotationId, SecretName, Stage, Store, StoreError, VersionId,
    VersionMeta,
};
use rotor_seal::{AuditKey, KeyCheck, MasterKey};
use rotor_tls::postgres::PgTls;
use sha2::{Digest, Sha256};
use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config};

mod db;
mod pool;

use db::Fail;
use pool::{ConnectError, PgConn, Pool};

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

/// Connection settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Connections per handle (at most).
    pub pool_size: usize,
    /// How long a statement waits for a lock before the change fails with
    /// [`StoreError::Locked`] (PostgreSQL's `lock_timeout`).
    pub lock_timeout: Duration,
    /// How many times a transaction that hit a serialization failure or deadlock is run
    /// again before [`StoreError::Locked`].
    pub retries: u32,
    /// How long one of rotor's sessions may sit idle inside a transaction before the server
    /// ends it (PostgreSQL's `idle_in_transaction_session_timeout`). rotor's transactions
    /// never wait on anything but their own statements (no target call, no sleep), so only
    /// a stalled process (SIGSTOP, a frozen VM) is ever idle in one; ending its session
    /// releases its locks (the audit head) so the other replicas keep rotating.
    pub idle_in_transaction_timeout: Duration,
    /// The longest one statement may run (`statement_timeout`).
    pub statement_timeout: Duration,
    /// `application_name`, shown in `pg_stat_activity`.
    pub application_name: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            pool_size: 4,
            lock_timeout: Duration::from_secs(5),
            // Enough for a head-lock wait (250 ms a try) to outlast a stalled holder's
            // idle-in-transaction timeout.
            retries: 20,
            idle_in_transaction_timeout: Duration::from_secs(2),
            statement_timeout: Duration::from_secs(30),
            application_name: "rotor".to_owned(),
        }
    }
}

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
    }
}

fn fail(e: Fail) -> StoreError {
    match e {
        Fail::Store(e) => e,
        Fail::Retry => StoreError::Locked,
    }
}

/// Parses `url` (libpq's TLS parameters included) and names it without its password.
fn parse_url(url: &str) -> Result<(Config, PgTls, String), StoreError> {
    let (config, tls) = rotor_tls::postgres::parse_url(url).map_err(|e| match e {
        rotor_tls::TlsError::Url(_) => StoreError::Backend(
            "the PostgreSQL store URL does not parse (expected postgres://USER:PASSWORD@HOST:PORT/DB)"
                .to_owned(),
        ),
        other => StoreError::Backend(format!("the PostgreSQL store URL's TLS settings: {other}")),
    })?;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let target = format!(
        "postgres://{}@{host}:{port}/{}",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or("")
    );
    Ok((config, tls, target))
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

fn checksum(sql: &str) -> String {
    hex::encode(Sha256::digest(sql.as_bytes()))
}

/// Session settings for every connection.
fn setup_sql(settings: &Settings) -> String {
    format!(
        "SET lock_timeout = {}; SET default_transaction_isolation = 'read committed'; \
         SET idle_in_transaction_session_timeout = {}; SET statement_timeout = {}",
        settings.lock_timeout.as_millis().max(1),
        settings.idle_in_transaction_timeout.as_millis().max(1),
        settings.statement_timeout.as_millis().max(1)
    )
}

/// Reads and validates everything `connect` needs before it may write. Writes nothing.
/// Returns the schema version found.
async fn validate(
    client: &Client,
    target: &str,
    master: &MasterKey,
    old: Option<&MasterKey>,
) -> Result<i64, StoreError> {
    let pg = |e: tokio_postgres::Error| pg_error(target, &e);
    let corrupt = |detail: String| StoreError::Corrupt {
        path: target.to_owned(),
        detail,
    };
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('rotor_schema_migrations') IS NOT NULL",
            &[],
        )
        .await
        .map_err(pg)?
        .get(0);
    if !exists {
        return Err(StoreError::NotInitialized {
            path: target.to_owned(),
        });
    }
    let applied = client
        .query(
            "SELECT version::bigint, checksum FROM rotor_schema_migrations ORDER BY version",
            &[],
        )
        .await
        .map_err(pg)?;
    let mut found = 0i64;
    let mut sums = Vec::new();
    for row in &applied {
        let v: i64 = row.try_get(0).map_err(pg)?;
        let sum: String = row.try_get(1).map_err(pg)?;
        found = found.max(v);
        sums.push((v, sum));
    }
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: target.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found < 1 {
        return Err(corrupt(
            "it has no applied rotor migration (not a rotor store)".into(),
        ));
    }
    for (v, sum) in &sums {
        let known = usize::try_from(*v - 1).ok().and_then(|i| MIGRATIONS.get(i));
        match known {
            Some((name, sql)) if checksum(sql) == *sum => {}
            Some((name, _)) => {
                return Err(corrupt(format!(
                    "migration {name} was applied from different SQL than this rotor embeds (edited migration)"
                )));
            }
            None => return Err(corrupt(format!("unknown migration number {v}"))),
        }
    }
    let meta = |rows: &[tokio_postgres::Row], key: &str| -> Option<Vec<u8>> {
        rows.iter()
            .find(|r| r.get::<_, String>(0) == key)
            .map(|r| r.get::<_, Vec<u8>>(1))
    };
    let rows = client
        .query(
            "SELECT key, value FROM rotor_meta WHERE key IN ('format', 'key_check')",
            &[],
        )
        .await
        .map_err(|e| corrupt(format!("cannot read its meta table: {}", pg(e))))?;
    if meta(&rows, "format").as_deref() != Some(FORMAT.as_bytes()) {
        return Err(corrupt(
            "its meta table does not mark it as a rotor store".into(),
        ));
    }
    let check = meta(&rows, "key_check")
        .ok_or_else(|| corrupt("it has no master-key check record".into()))?;
    let check = KeyCheck::from_bytes(&check)
        .map_err(|err| corrupt(format!("its master-key check record is damaged: {err}")))?;
    match (check.verify(master), old) {
        (Ok(()), _) => {}
        (Err(_), Some(old)) if check.verify(old).is_ok() => {}
        (Err(e), _) => return Err(seal_error(e)),
    }
    Ok(found)
}

/// Applies the migrations this build has and the database lacks, under the migration
/// advisory lock, and returns the still-open transaction (the caller commits, after adding
/// its own rows when it creates the store) and the schema version it migrated from. With
/// `fresh`, refuses a database that has any.
async fn migrate<'c>(
    client: &'c mut Client,
    target: &str,
    fresh: bool,
) -> Result<(tokio_postgres::Transaction<'c>, i64), StoreError> {
    let pg = |e: tokio_postgres::Error| pg_error(target, &e);
    let tx = client.transaction().await.map_err(pg)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS rotor_schema_migrations (
             version    INTEGER PRIMARY KEY,
             name       TEXT NOT NULL,
             checksum   TEXT NOT NULL,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(pg)?;
    // Re-read under the lock: another process may have migrated meanwhile.
    let now: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::bigint FROM rotor_schema_migrations",
            &[],
        )
        .await
        .map_err(pg)?
        .get(0);
    if fresh && now > 0 {
        return Err(StoreError::AlreadyExists {
            path: target.to_owned(),
        });
    }
    if now > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: target.to_owned(),
            found: now,
            supported: SCHEMA_VERSION,
        });
    }
    for (i, (name, sql)) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(now).unwrap_or(0))
    {
        tx.batch_execute(sql).await.map_err(pg)?;
        let version = i32::try_from(i + 1).unwrap_or(i32::MAX);
        tx.execute(
            "INSERT INTO rotor_schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            &[&version, name, &checksum(sql)],
        )
        .await
        .map_err(pg)?;
    }
    Ok((tx, now))
}

/// Runs one pooled operation: `$body` sees `$ctx: &Ctx` and `$conn: &mut PgConn`.
macro_rules! pooled {
    ($self:ident, |$ctx:ident, $conn:ident| $body:expr) => {{
        let inner = &$self.inner;
        let mut lease = inner
            .pool
            .get()
            .await
            .map_err(|e| connect_error(&inner.ctx.target, &e))?;
        let $ctx = &inner.ctx;
        let $conn: &mut PgConn = lease.conn();
        let r = $body.await;
        lease.done();
        r
    }};
}

impl PgStore {
    /// Creates the schema in the (empty) database at `url` with default [`Settings`],
    /// records the master-key check and appends `store.init` to the audit log, all in one
    /// transaction. Refuses a database that already holds a rotor store
    /// ([`StoreError::AlreadyExists`]).
    pub async fn init(url: &str, master: MasterKey, actor: &str) -> Result<Self, StoreError> {
        Self::init_with(url, master, actor, Settings::default()).await
    }

    /// [`PgStore::init`] with explicit settings.
    pub async fn init_with(
        url: &str,
        master: MasterKey,
        actor: &str,
        settings: Settings,
    ) -> Result<Self, StoreError> {
        let store = Self::build(url, master, None, &settings)?;
        let inner = &store.inner;
        let ctx = &inner.ctx;
        let pg = |e: tokio_postgres::Error| pg_error(&ctx.target, &e);
        let check = KeyCheck::new(&ctx.master).map_err(seal_error)?;
        let PgConn {
            mut client,
            mut stmts,
        } = inner
            .pool
            .connect()
            .await
            .map_err(|e| connect_error(&ctx.target, &e))?;
        let (tx, _) = migrate(&mut client, &ctx.target, true).await?;
        let created_at = Timestamp::now();
        for (key, value) in [
            ("format", FORMAT.as_bytes().to_vec()),
            ("key_check", check.to_bytes()),
            ("created_at", created_at.to_string().into_bytes()),
        ] {
            tx.execute(
                "INSERT INTO rotor_meta (key, value) VALUES ($1, $2)",
                &[&key, &value],
            )
            .await
            .map_err(pg)?;
        }
        db::append_audit(
            ctx,
            &ctx.records,
            &tx,
            &mut stmts,
            Some(created_at),
            &[AuditEvent::new(actor, "store.init")],
        )
        .await
        .map_err(fail)?;
        tx.commit().await.map_err(pg)?;
        Ok(store)
    }

    /// Opens the store at `url` with default [`Settings`]. Refuses, without writing
    /// anything: no rotor schema (`NotInitialized`), a newer schema (`TooNew`), a damaged
    /// one or an edited migration (`Corrupt`), and a master key other than the store's
    /// (`WrongMasterKey`). Then applies pending migrations (under the migration lock).
    pub async fn connect(url: &str, master: MasterKey) -> Result<Self, StoreError> {
        Self::connect_with(url, master, Settings::default()).await
    }

    /// [`PgStore::connect`] with explicit settings.
    pub async fn connect_with(
        url: &str,
        master: MasterKey,
        settings: Settings,
    ) -> Result<Self, StoreError> {
        Self::open(url, master, None, &settings).await
    }

    /// Opens the store during a master-key rotation: `new` seals every new value, and
    /// values open with whichever of `new` and `old` wrapped them (`rotor_seal::open_any`).
    /// The store's key check may be under either key (before, during or after
    /// [`PgStore::rewrap_all`]). Every replica should run with both keys until the rewrap
    /// finished; a replica still on `old` alone keeps sealing under `old`, and its rows
    /// are rewrapped only by a later `rewrap_all`.
    pub async fn connect_rotating(
        url: &str,
        new: MasterKey,
        old: MasterKey,
        settings: Settings,
    ) -> Result<Self, StoreError> {
        Self::open(url, new, Some(old), &settings).await
    }

    fn build(
        url: &str,
        master: MasterKey,
        old: Option<MasterKey>,
        settings: &Settings,
    ) -> Result<Self, StoreError> {
        let (mut config, tls, target) = parse_url(url)?;
        config.application_name(&settings.application_name);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                ctx: Ctx {
                    target,
                    records: AuditKey::for_records(&master),
                    master,
                    old,
                },
                pool: Pool::new(config, tls, setup_sql(settings), settings.pool_size),
                retry: retry_backoff(settings.retries),
            }),
        })
    }

    async fn open(
        url: &str,
        master: MasterKey,
        old: Option<MasterKey>,
        settings: &Settings,
    ) -> Result<Self, StoreError> {
        let store = Self::build(url, master, old, settings)?;
        let inner = &store.inner;
        let ctx = &inner.ctx;
        let PgConn {
            mut client,
            mut stmts,
        } = inner
            .pool
            .connect()
            .await
            .map_err(|e| connect_error(&ctx.target, &e))?;
        let found = validate(&client, &ctx.target, &ctx.master, ctx.old.as_ref()).await?;
        // Validated: from here on writing is allowed.
        if found < SCHEMA_VERSION {
            let (tx, from) = migrate(&mut client, &ctx.target, false).await?;
            if from < KEYED_SCHEMA {
                let keyed = db::keyed_event(
                    "records before this one were written without a MAC (store schema 1)",
                );
                db::append_audit(ctx, &ctx.records, &tx, &mut stmts, None, &[keyed])
                    .await
                    .map_err(fail)?;
            }
            tx.commit().await.map_err(|e| pg_error(&ctx.target, &e))?;
        }
        drop((client, stmts));
        Ok(store)
    }

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

    /// Rewraps up to `limit` values not yet under `new` from `old` to `new`, in one
    /// committed transaction (rows another process is rewrapping are skipped:
    /// `FOR UPDATE SKIP LOCKED`). Returns how many it rewrapped; 0 when none is left.
    /// Only the wrapped data key and `key_id` change, never the value ciphertext.
    pub async fn rewrap_batch(
        &self,
        old: &MasterKey,
        new: &MasterKey,
        limit: usize,
    ) -> Result<u64, StoreError> {
        let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
        pooled!(self, |ctx, conn| async {
            let tx = conn
                .client
                .transaction()
                .await
                .map_err(|e| pg_error(&ctx.target, &e))?;
            let n = rewrap_rows(ctx, &tx, old, new, Some(limit)).await?;
            tx.commit().await.map_err(|e| pg_error(&ctx.target, &e))?;
            Ok::<_, StoreError>(n)
        })
    }

    /// Master-key rotation: rewraps every version's data key from `old` to `new` in
    /// committed batches of [`REWRAP_BATCH`], then, in one transaction that locks
    /// `rotor_versions` against writers, rewraps any row written meanwhile, replaces the
    /// key check with one for `new` and appends `store.master_key.rotate` (actor `actor`)
    /// to the audit log. Returns the number of rows rewrapped.
    ///
    /// Crash-safe and resumable: each batch commits on its own, every row is always under
    /// exactly one of the two keys (readable by a handle from
    /// [`PgStore::connect_rotating`]), and re-running skips rows already under `new`.
    /// Until the final commit the key check is still `old`'s, so a handle with `old` alone
    /// still opens the store (and can read the rows not yet rewrapped); afterwards only
    /// `new` opens it.
    pub async fn rewrap_all(
        &self,
        old: &MasterKey,
        new: &MasterKey,
        actor: &str,
    ) -> Result<u64, StoreError> {
        let mut total = 0u64;
        loop {
            let n = self.rewrap_batch(old, new, REWRAP_BATCH).await?;
            if n == 0 {
                break;
            }
            total += n;
        }
        let check = KeyCheck::new(new).map_err(seal_error)?;
        let last = pooled!(self, |ctx, conn| async {
            let pg = |e: tokio_postgres::Error| pg_error(&ctx.target, &e);
            let PgConn { client, stmts } = conn;
            let tx = client.transaction().await.map_err(pg)?;
            tx.batch_execute("LOCK TABLE rotor_versions IN SHARE ROW EXCLUSIVE MODE")
                .await
                .map_err(pg)?;
            let n = rewrap_rows(ctx, &tx, old, new, None).await?;
            let stored: Vec<u8> = tx
                .query_one(
                    "SELECT value FROM rotor_meta WHERE key = 'key_check' FOR UPDATE",
                    &[],
                )
                .await
                .map_err(pg)?
                .try_get(0)
                .map_err(pg)?;
            let stored = KeyCheck::from_bytes(&stored).map_err(|e| StoreError::Corrupt {
                path: ctx.target.clone(),
                detail: format!("its master-key check record is damaged: {e}"),
            })?;
            if stored.verify(old).is_err() && stored.verify(new).is_err() {
                return Err(StoreError::WrongMasterKey {
                    detail: format!(
                        "the store's key check is under master key id {}, neither the old ({}) nor the new ({}) key",
                        stored.key_id(),
                        old.key_id(),
                        new.key_id()
                    ),
                });
            }
            tx.execute(
                "UPDATE rotor_meta SET value = $1 WHERE key = 'key_check'",
                &[&check.to_bytes()],
            )
            .await
            .map_err(pg)?;
            let event = AuditEvent::new(actor, "store.master_key.rotate").reason(Some(&format!(
                "master key {} replaced by {}",
                old.key_id(),
                new.key_id()
            )));
            // MACs under the old key no longer verify once only the new key opens the
            // store: they apply again from this record (`store.master_key.rotate` starts
            // them, like `audit.keyed`), which the chain binds to every record before it.
            db::append_audit(ctx, &AuditKey::for_records(new), &tx, stmts, None, &[event])
                .await
                .map_err(fail)?;
            tx.commit().await.map_err(pg)?;
            Ok::<_, StoreError>(n)
        })?;
        Ok(total + last)
    }
}

/// Rewraps rows whose `key_id` is not `new`'s (at most `limit`), inside `tx`.
async fn rewrap_rows(
    ctx: &Ctx,
    tx: &tokio_postgres::Transaction<'_>,
    old: &MasterKey,
    new: &MasterKey,
    limit: Option<i64>,
) -> Result<u64, StoreError> {
    let pg = |e: tokio_postgres::Error| pg_error(&ctx.target, &e);
    let new_id = new.key_id().to_string();
    let rows = tx
        .query(
            "SELECT vid, secret, id, sealed FROM rotor_versions WHERE key_id <> $1
             ORDER BY vid LIMIT $2 FOR UPDATE SKIP LOCKED",
            &[&new_id, &limit],
        )
        .await
        .map_err(pg)?;
    let update = tx
        .prepare("UPDATE rotor_versions SET sealed = $1, key_id = $2 WHERE vid = $3")
        .await
        .map_err(pg)?;
    let mut n = 0u64;
    for row in &rows {
        let vid: i64 = row.try_get(0).map_err(pg)?;
        let secret: String = row.try_get(1).map_err(pg)?;
        let id: String = row.try_get(2).map_err(pg)?;
        let bytes: Vec<u8> = row.try_get(3).map_err(pg)?;
        let tampered = || StoreError::Tampered {
            secret: secret.clone(),
            version: id.clone(),
        };
        let rewrapped =
            rotor_seal::rewrap_version(old, new, &secret, &id, &bytes).map_err(|e| match e {
                rotor_seal::Error::WrongMasterKey { .. } => StoreError::WrongMasterKey {
                    detail: format!("secret {secret}, version {id}: {e}"),
                },
                _ => tampered(),
            })?;
        tx.execute(
            &update,
            &[&rewrapped.to_bytes(), &rewrapped.key_id.to_string(), &vid],
        )
        .await
        .map_err(pg)?;
        n += 1;
    }
    Ok(n)
}

#[async_trait]
impl Store for PgStore {
    async fn apply(&self, change: Change) -> Result<Vec<AuditRecord>, StoreError> {
        let mut attempt = 0;
        loop {
            match pooled!(self, |ctx, conn| db::apply(ctx, conn, &change)) {
                Ok(records) => return Ok(records),
                Err(Fail::Store(e)) => return Err(e),
                Err(Fail::Retry) => {
                    attempt += 1;
                    self.backoff(attempt).await?;
                }
            }
        }
    }

    async fn claim(
        &self,
        id: &RotationId,
        owner: &str,
        now: Timestamp,
        expires_at: Timestamp,
        takeover: Takeover,
    ) -> Result<Lease, StoreError> {
        let mut attempt = 0;
        loop {
            match pooled!(self, |ctx, conn| db::claim(
                ctx, conn, id, owner, now, expires_at, takeover
            )) {
                Ok(lease) => return Ok(lease),
                Err(Fail::Store(e)) => return Err(e),
                Err(Fail::Retry) => {
                    attempt += 1;
                    self.backoff(attempt).await?;
                }
            }
        }
    }

    async fn versions(&self, secret: &SecretName) -> Result<Vec<VersionMeta>, StoreError> {
        pooled!(self, |ctx, conn| db::versions(ctx, conn, secret)).map_err(fail)
    }

    async fn read_stage(
        &self,
        secret: &SecretName,
        stage: Stage,
    ) -> Result<Option<Versioned>, StoreError> {
        pooled!(self, |ctx, conn| db::read_stage(ctx, conn, secret, stage)).map_err(fail)
    }

    async fn read_version(
        &self,
        secret: &SecretName,
        id: &VersionId,
    ) -> Result<Option<Versioned>, StoreError> {
        pooled!(self, |ctx, conn| db::read_version(ctx, conn, secret, id)).map_err(fail)
    }

    async fn rotation(&self, id: &RotationId) -> Result<Option<Rotation>, StoreError> {
        pooled!(self, |ctx, conn| db::rotation(ctx, conn, id)).map_err(fail)
    }

    async fn rotations(
        &self,
        secret: Option<&SecretName>,
        limit: usize,
    ) -> Result<Vec<Rotation>, StoreError> {
        pooled!(self, |ctx, conn| db::rotations(ctx, conn, secret, limit)).map_err(fail)
    }

    async fn open_rotations(&self) -> Result<Vec<Rotation>, StoreError> {
        pooled!(self, |ctx, conn| db::open_rotations(ctx, conn)).map_err(fail)
    }

    async fn owed_rollbacks(&self) -> Result<Vec<Rotation>, StoreError> {
        pooled!(self, |ctx, conn| db::owed_rollbacks(ctx, conn)).map_err(fail)
    }

    async fn summaries(&self) -> Result<Vec<SecretSummary>, StoreError> {
        pooled!(self, |ctx, conn| db::summaries(ctx, conn)).map_err(fail)
    }

    async fn audit_tail(&self, n: usize) -> Result<Vec<AuditRecord>, StoreError> {
        pooled!(self, |ctx, conn| db::audit_tail(ctx, conn, n)).map_err(fail)
    }

    async fn audit_all(&self) -> Result<Vec<AuditRecord>, StoreError> {
        pooled!(self, |ctx, conn| db::audit_all(ctx, conn)).map_err(fail)
    }

    async fn audit_verify(&self) -> Result<Verified, StoreError> {
        pooled!(self, |ctx, conn| db::audit_verify(ctx, conn)).map_err(fail)
    }

    async fn export(&self) -> Result<Dump, StoreError> {
        pooled!(self, |ctx, conn| db::export(ctx, conn)).map_err(fail)
    }

    async fn import(&self, dump: Dump, event: AuditEvent) -> Result<(), StoreError> {
        // Copied verbatim, a broken chain would stay broken: refuse it before writing.
        verify_chain(&dump.audit).map_err(|err| {
            StoreError::Backend(format!(
                "the audit log to import does not verify ({err}); nothing was imported"
            ))
        })?;
        let mut attempt = 0;
        loop {
            match pooled!(self, |ctx, conn| db::import(ctx, conn, &dump, &event)) {
                Ok(()) => return Ok(()),
                Err(Fail::Store(e)) => return Err(e),
                Err(Fail::Retry) => {
                    attempt += 1;
                    self.backoff(attempt).await?;
                }
            }
        }
    }
}
