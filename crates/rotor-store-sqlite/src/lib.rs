//! rotor's embedded default store: one encrypted SQLite file.
//!
//! [`SqliteStore`] implements [`rotor_core::Store`] on a single SQLite database file in WAL
//! mode. Versions of a secret are rows whose value is sealed with `rotor-seal` (a fresh data
//! key per value, wrapped by the master key), bound to `(secret name, version id)` as
//! associated data, so a ciphertext copied onto another row does not open. Stage labels live
//! in their own table keyed by `(secret, stage)`, rotation records as indexed columns plus a
//! JSON copy of the whole record, and the audit log as a hash chain (`rotor_core::audit`)
//! whose every record carries a MAC under `rotor_seal::AuditKey::for_records` of the master
//! key (migration 0002 added it; an older store gets an `audit.keyed` record when opened).
//!
//! Invariants:
//! - **a stage moves only inside a transaction that also appends its audit record**: every
//!   write is one `BEGIN IMMEDIATE` transaction ([`Store::apply`] / [`Store::claim`]) that
//!   checks the fence, runs the ops, appends the audit events and commits; any error rolls
//!   all of it back;
//! - each stage labels at most one version of a secret: the schema's primary key
//!   `stages(secret, stage)` enforces it, not just the code;
//! - at most one `running` rotation per secret (code check plus a partial unique index);
//! - a lease token only ever grows, and only through [`Store::claim`]; a change fenced with
//!   an older token is refused with `LeaseLost`;
//! - no plaintext value is ever written to the database, its WAL or an error message;
//! - the file is created `0600` before SQLite touches it, and never recreated: a missing
//!   file is `NotInitialized`, a damaged one `Corrupt`, a newer schema `TooNew`, and a wrong
//!   master key `WrongMasterKey` — all detected before anything is written: by
//!   [`SqliteStore::open`], whose whole-file integrity check may wait for the handle's first
//!   write ([`IntegrityCheck::BeforeFirstWrite`]; pages read before it are checked by SQLite
//!   as they are read).
//!
//! Master-key rotation (`rotor master-key rotate`), without downtime:
//! [`SqliteStore::open_rotating`] opens the store with the new and the old key (new values
//! are sealed with the new key; a value opens with whichever key wrapped it), and
//! [`SqliteStore::rewrap_all`] runs the rewrap protocol:
//! 1. in committed batches of [`REWRAP_BATCH`] ([`SqliteStore::rewrap_batch`] is one
//!    batch), every row whose `key_id` column is not the new key's id is rewrapped: its
//!    data key is unwrapped with the old key and wrapped with the new one (the value
//!    ciphertext never changes, no plaintext is involved);
//! 2. then ONE final `BEGIN IMMEDIATE` transaction (SQLite's write lock keeps every writer
//!    out) rewraps the rows written meanwhile under the old key, replaces the `key_check`
//!    meta row with the new key's and appends `store.master_key.rotate` (both key ids in
//!    `reason`) to the audit log; it is committed with `synchronous = FULL`.
//!
//! Until step 2 commits the key check is the old key's, so [`SqliteStore::open`] with the
//! old key alone still opens the store (a row already rewrapped then reads as
//! `WrongMasterKey` naming its secret and version); afterwards only the new key opens it.
//! A crash at any point leaves every row under exactly one of the two keys (a batch
//! commits or rolls back as a whole), so a handle from `open_rotating` reads everything,
//! and re-running `rewrap_all` resumes where it stopped (re-running a finished one
//! rewraps nothing and returns 0).
//!
//! Migration (`rotor store migrate`): [`Store::export`] reads everything in one snapshot
//! (values opened in memory); [`Store::import`] loads such a dump into a freshly created
//! store in one transaction — refused with `NotEmpty` when the store holds any version,
//! rotation or audit record besides its own `store.init` — re-sealing every value with
//! this store's key under the same `(secret, version id)`, copying stages, rotation records
//! and the audit log verbatim (the `store.init` record gives way to the copied chain), and
//! appending the migrate event after the last copied record. A dump whose audit log does
//! not verify is refused before anything is written.
//!
//! Durability: see [`Synchronous`]. Timestamps are stored as jiff's RFC 3339 text with full
//! precision, which round-trips exactly (the audit hash covers them).
//!
//! Threading: each handle owns one connection behind a `std::sync::Mutex`. Calls run on
//! tokio's blocking pool (`spawn_blocking`) when a tokio runtime is present, inline
//! otherwise. WHY: a write may wait up to `busy_timeout` (default 5 s) for another process's
//! lock, which must not stall an async worker thread; the hop costs a few microseconds,
//! well below a commit (measured by `examples/store_bench.rs`).
//!
//! [`Store::apply`]: rotor_core::Store::apply
//! [`Store::claim`]: rotor_core::Store::claim
//! [`Store::export`]: rotor_core::Store::export
//! [`Store::import`]: rotor_core::Store::import

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rotor_core::StoreError;
use rotor_seal::{AuditKey, MasterKey};
use rusqlite::Connection;
use secrecy::ExposeSecret;

mod db;
mod file;
mod key_rotation;
mod open;
mod settings;
mod store;

pub use settings::{IntegrityCheck, Settings, Synchronous};

/// `PRAGMA application_id` of a rotor store ("Rotr"): tells a rotor store from any other
/// SQLite file by its header alone.
pub const APPLICATION_ID: i32 = 0x526f_7472;

/// The `meta.format` value of a rotor store.
const FORMAT: &str = "rotor-store";

/// Embedded, numbered, append-only migrations. Entry `i` takes the schema from version `i`
/// to `i + 1`; the schema version is `PRAGMA user_version` (in the file header, so it
/// changes atomically with the migration's transaction).
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_init.sql"),
    include_str!("../migrations/0002_audit_mac.sql"),
];

/// The first schema whose audit records carry a MAC: migrating past it appends the
/// `audit.keyed` record from which MACs apply.
const KEYED_SCHEMA: i64 = 2;

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Rows rewrapped per committed batch by [`SqliteStore::rewrap_all`].
pub const REWRAP_BATCH: usize = 200;

/// The embedded SQLite store. Cheap to share by reference; one connection per handle.
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    ctx: Ctx,
    conn: Mutex<Connection>,
    /// Whether the whole file passed [`open::integrity_check`] (at open, or before the first
    /// write with [`IntegrityCheck::BeforeFirstWrite`]); set under the connection lock.
    checked: AtomicBool,
}

/// What the operations need besides the connection.
pub(crate) struct Ctx {
    pub(crate) path: PathBuf,
    /// Seals new values; opens values.
    pub(crate) master: MasterKey,
    /// During a master-key rotation ([`SqliteStore::open_rotating`]): the old key, which
    /// still opens the rows not yet rewrapped.
    pub(crate) old: Option<MasterKey>,
    /// Authenticates every audit record appended (derived from `master`).
    pub(crate) records: AuditKey,
    pub(crate) synchronous: Synchronous,
}

impl Ctx {
    /// The keys that open values: the master key, then the old one during a rotation.
    pub(crate) fn keys(&self) -> Vec<&MasterKey> {
        std::iter::once(&self.master)
            .chain(self.old.as_ref())
            .collect()
    }
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.ctx.path)
            .field("key_id", &self.inner.ctx.master.key_id())
            .field(
                "old_key_id",
                &self.inner.ctx.old.as_ref().map(MasterKey::key_id),
            )
            .finish_non_exhaustive()
    }
}

fn show(path: &Path) -> String {
    path.display().to_string()
}

/// Maps a SQLite error: lock contention is [`StoreError::Locked`], a damaged file
/// [`StoreError::Corrupt`], anything else [`StoreError::Backend`] naming the file.
pub(crate) fn sql_err(path: &Path, e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Locked,
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StoreError::Corrupt {
            path: show(path),
            detail: e.to_string(),
        },
        _ => StoreError::Backend(format!("store {}: {e}", show(path))),
    }
}

/// Maps a `rotor-seal` error that is not about one row (loading a key, the key check) to a
/// [`StoreError`]. Useful to callers that load the master key themselves: a missing key
/// becomes [`StoreError::MissingMasterKey`], a rejected one [`StoreError::WrongMasterKey`].
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

/// A second handle on `key`, for the blocking pool (`MasterKey` is deliberately not
/// `Clone`; both copies are zeroized on drop).
fn copy_key(key: &MasterKey) -> Result<MasterKey, StoreError> {
    MasterKey::from_encoded(key.encode().expose_secret()).map_err(seal_error)
}

impl SqliteStore {
    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.ctx.path
    }

    /// Runs `job`, which only reads, with the connection: on tokio's blocking pool inside a
    /// tokio runtime, inline otherwise (see the crate docs for why).
    async fn run<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Ctx, &mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.on_connection(false, job).await
    }

    /// Runs `job`, which writes, like [`run`](Self::run); first checks the whole file
    /// once when the handle was opened without checking it
    /// ([`IntegrityCheck::BeforeFirstWrite`]).
    async fn run_write<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Ctx, &mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.on_connection(true, job).await
    }

    async fn on_connection<T, F>(&self, writes: bool, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Ctx, &mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        let work = move || {
            let mut conn = inner
                .conn
                .lock()
                .map_err(|_| StoreError::Backend("store connection lock poisoned".into()))?;
            if writes && !inner.checked.load(Ordering::Acquire) {
                open::integrity_check(&conn, &inner.ctx.path)?;
                inner.checked.store(true, Ordering::Release);
            }
            job(&inner.ctx, &mut conn)
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => handle
                .spawn_blocking(work)
                .await
                .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?,
            Err(_) => work(),
        }
    }
}
