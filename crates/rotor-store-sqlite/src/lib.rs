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
//!   master key `WrongMasterKey` — all detected by [`SqliteStore::open`] before it writes.
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

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use rotor_core::audit::{AuditEvent, Verified};
use rotor_core::rotation::Lease;
use rotor_core::store::{Change, Dump, SecretSummary, Takeover, Versioned};
use rotor_core::{
    AuditRecord, Rotation, RotationId, SecretName, Stage, Store, StoreError, VersionId, VersionMeta,
};
use rotor_seal::{AuditKey, KdfParams, KeyCheck, MasterKey};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use secrecy::{ExposeSecret, SecretString};

mod db;

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

/// When commits reach the disk (SQLite's `synchronous`, always in WAL mode).
///
/// Measured with `examples/store_bench.rs` (release, ext4 on a virtio disk, 2 busy cores;
/// one rotation = 5 `apply` commits, calls through tokio's blocking pool; ranges over runs):
/// `Normal` 1,100–1,770 rotations/s, `Hybrid` 640–860/s (one fsync per rotation), `Full`
/// 75–160/s (every commit waits 1–2.5 ms for fsync). `Hybrid` is the default: it meets the
/// 500 rotations/s target while keeping every new value durable against power loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// Every commit is fsynced before `apply` returns: survives power loss and OS crashes.
    Full,
    /// Commits survive a crash or SIGKILL of the process, but the last commits before a
    /// power loss or OS crash may be lost (the database stays consistent, at an earlier
    /// commit). fsync happens only at checkpoints.
    Normal,
    /// The default: `Full` for every change that inserts a version (a new secret value),
    /// `Normal` for the rest. WHY: a new value may be set on a target right after its
    /// change commits, so losing that commit to a power cut would leave a credential rotor
    /// does not know; the other commits (step markers, stage moves, leases) record work the
    /// engine redoes if they are lost, because every step is idempotent. A `Full` commit
    /// also makes every earlier `Normal` commit durable (they precede it in the WAL).
    #[default]
    Hybrid,
}

impl Synchronous {
    /// The connection's standing setting (`Hybrid` raises it per commit).
    fn pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal | Synchronous::Hybrid => "NORMAL",
        }
    }
}

/// Connection settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub synchronous: Synchronous,
    /// How long a write waits for another writer's lock before failing with
    /// [`StoreError::Locked`].
    pub busy_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            synchronous: Synchronous::default(),
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// The embedded SQLite store. Cheap to share by reference; one connection per handle.
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    ctx: Ctx,
    conn: Mutex<Connection>,
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

fn sidecars(path: &Path) -> [PathBuf; 2] {
    let with = |suffix: &str| {
        let mut s = path.as_os_str().to_owned();
        s.push(suffix);
        PathBuf::from(s)
    };
    [with("-wal"), with("-shm")]
}

/// SQLite creates `-wal`/`-shm` with the database file's mode (minus the umask), so they are
/// never wider than 0600; this makes it explicit and umask-independent.
fn restrict_sidecars(path: &Path) -> Result<(), StoreError> {
    for p in sidecars(path) {
        match fs::set_permissions(&p, fs::Permissions::from_mode(0o600)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(StoreError::Backend(format!(
                    "cannot restrict the permissions of {}: {e}",
                    show(&p)
                )));
            }
        }
    }
    Ok(())
}

/// Checks the file before SQLite opens it: exists, is a regular file, has a SQLite header
/// with rotor's application id, and is not shorter than the header says.
fn check_file(path: &Path) -> Result<(), StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt {
        path: show(path),
        detail,
    };
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(StoreError::NotInitialized { path: show(path) });
        }
        Err(e) => {
            return Err(StoreError::Backend(format!(
                "cannot read {}: {e}",
                show(path)
            )));
        }
    };
    if !meta.is_file() {
        return Err(corrupt("it is not a regular file".into()));
    }
    let len = meta.len();
    let mut header = [0u8; 100];
    let mut file = fs::File::open(path)
        .map_err(|e| StoreError::Backend(format!("cannot read {}: {e}", show(path))))?;
    let mut read = 0;
    while read < header.len() {
        match file.read(&mut header[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(StoreError::Backend(format!(
                    "cannot read {}: {e}",
                    show(path)
                )));
            }
        }
    }
    if read < header.len() {
        return Err(corrupt(format!(
            "the file is {len} bytes long, shorter than a SQLite header (truncated, or not a rotor store)"
        )));
    }
    if &header[..16] != b"SQLite format 3\0" {
        return Err(corrupt(
            "it does not start with a SQLite header (not a rotor store, or overwritten)".into(),
        ));
    }
    let be32 = |at: usize| {
        u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65_536u64,
        n if n >= 512 && n.is_power_of_two() => u64::from(n),
        n => return Err(corrupt(format!("the header has an invalid page size {n}"))),
    };
    // The size checks are only sound when the file is all there is: with a non-empty WAL
    // a concurrent checkpoint may have written the new header (page 1) before growing the
    // file. Then SQLite's own integrity check (in `validate`, under a read lock) decides.
    let wal_len = fs::metadata(&sidecars(path)[0]).map_or(0, |m| m.len());
    if wal_len > 0 {
        return check_app_id(path, be32(68));
    }
    if len % page_size != 0 {
        return Err(corrupt(format!(
            "the file is {len} bytes long, not a whole number of {page_size}-byte pages (truncated)"
        )));
    }
    let pages = u64::from(be32(28));
    if pages > 0 && be32(24) == be32(92) && len < pages * page_size {
        return Err(corrupt(format!(
            "the header says {pages} pages of {page_size} bytes but the file is {len} bytes long (truncated)"
        )));
    }
    check_app_id(path, be32(68))
}

fn check_app_id(path: &Path, app_id: u32) -> Result<(), StoreError> {
    if app_id as i32 == APPLICATION_ID {
        Ok(())
    } else {
        Err(StoreError::Corrupt {
            path: show(path),
            detail: format!(
                "it is a SQLite database but not a rotor store (application id {app_id:#x})"
            ),
        })
    }
}

fn configure(conn: &Connection, path: &Path, settings: Settings) -> Result<(), StoreError> {
    let e = |e| sql_err(path, e);
    conn.busy_timeout(settings.busy_timeout).map_err(e)?;
    conn.pragma_update(None, "synchronous", settings.synchronous.pragma())
        .map_err(e)?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(e)?;
    Ok(())
}

/// Reads and validates everything `open` needs before it may write. Writes nothing. The key
/// check must be `master`'s, or (during a master-key rotation) `old`'s.
fn validate(
    conn: &Connection,
    path: &Path,
    master: &MasterKey,
    old: Option<&MasterKey>,
) -> Result<i64, StoreError> {
    let e = |e| sql_err(path, e);
    let corrupt = |detail: String| StoreError::Corrupt {
        path: show(path),
        detail,
    };
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(e)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: show(path),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found < 1 {
        return Err(corrupt(
            "it has no rotor schema (creation was interrupted, or it is not a rotor store)".into(),
        ));
    }
    let mut problems = Vec::new();
    {
        let mut stmt = conn.prepare("PRAGMA quick_check").map_err(e)?;
        let mut rows = stmt.query([]).map_err(e)?;
        while let Some(row) = rows.next().map_err(e)? {
            let line: String = row.get(0).map_err(e)?;
            if line != "ok" && problems.len() < 5 {
                problems.push(line);
            }
        }
    }
    if !problems.is_empty() {
        return Err(corrupt(format!(
            "integrity check failed: {}",
            problems.join("; ")
        )));
    }
    let meta = |key: &str| -> Result<Option<Vec<u8>>, StoreError> {
        conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|err| corrupt(format!("cannot read its meta table: {err}")))
    };
    if meta("format")?.as_deref() != Some(FORMAT.as_bytes()) {
        return Err(corrupt(
            "its meta table does not mark it as a rotor store".into(),
        ));
    }
    let check =
        meta("key_check")?.ok_or_else(|| corrupt("it has no master-key check record".into()))?;
    let check = KeyCheck::from_bytes(&check)
        .map_err(|err| corrupt(format!("its master-key check record is damaged: {err}")))?;
    match (check.verify(master), old) {
        (Ok(()), _) => {}
        (Err(_), Some(old)) if check.verify(old).is_ok() => {}
        (Err(e), _) => return Err(seal_error(e)),
    }
    Ok(found)
}

/// Applies the migrations after `from`, in one transaction.
fn migrate(tx: &rusqlite::Transaction<'_>, path: &Path, from: i64) -> Result<(), StoreError> {
    for (i, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(from).unwrap_or(0))
    {
        tx.execute_batch(sql).map_err(|e| sql_err(path, e))?;
        tx.pragma_update(None, "user_version", i as i64 + 1)
            .map_err(|e| sql_err(path, e))?;
    }
    Ok(())
}

fn set_wal(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(|e| sql_err(path, e))?;
    if mode.eq_ignore_ascii_case("wal") {
        Ok(())
    } else {
        Err(StoreError::Backend(format!(
            "store {}: cannot switch to WAL mode (got {mode})",
            show(path)
        )))
    }
}

fn open_flags() -> OpenFlags {
    // No CREATE: SQLite must never make the file; `create` does, with mode 0600.
    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX
}

impl SqliteStore {
    /// Creates a new store at `path` (mode 0600; refuses an existing file with
    /// [`StoreError::AlreadyExists`]) with default [`Settings`] and no KDF record.
    pub fn create(path: &Path, master: MasterKey, actor: &str) -> Result<Self, StoreError> {
        Self::create_with(path, master, actor, None, Settings::default())
    }

    /// Creates a new store. `kdf`, when the master key was derived from a passphrase, is
    /// recorded so [`SqliteStore::open_with_passphrase`] can derive it again.
    ///
    /// The file is created by this process with `O_EXCL` and mode 0600 before SQLite opens
    /// it. If anything fails afterwards, the half-made file is removed again.
    pub fn create_with(
        path: &Path,
        master: MasterKey,
        actor: &str,
        kdf: Option<&KdfParams>,
        settings: Settings,
    ) -> Result<Self, StoreError> {
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(file) => drop(file),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(StoreError::AlreadyExists { path: show(path) });
            }
            Err(e) => {
                return Err(StoreError::Backend(format!(
                    "cannot create {}: {e}",
                    show(path)
                )));
            }
        }
        // The umask may have narrowed the mode further, never widened it; make it exact.
        let made = fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .map_err(|e| StoreError::Backend(format!("cannot set the mode of {}: {e}", show(path))))
            .and_then(|()| Self::init(path, master, actor, kdf, settings));
        if made.is_err() {
            for p in sidecars(path) {
                let _ = fs::remove_file(p);
            }
            let _ = fs::remove_file(path);
        }
        made
    }

    fn init(
        path: &Path,
        master: MasterKey,
        actor: &str,
        kdf: Option<&KdfParams>,
        settings: Settings,
    ) -> Result<Self, StoreError> {
        let e = |e| sql_err(path, e);
        let mut conn = Connection::open_with_flags(path, open_flags()).map_err(e)?;
        set_wal(&conn, path)?;
        restrict_sidecars(path)?;
        // The store's creation is always durable; the chosen setting applies afterwards.
        let init_settings = Settings {
            synchronous: Synchronous::Full,
            ..settings
        };
        configure(&conn, path, init_settings)?;
        let check = KeyCheck::new(&master).map_err(seal_error)?;
        let kdf_json = kdf
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|err| StoreError::Backend(format!("cannot encode KDF parameters: {err}")))?;
        let now = Timestamp::now();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(e)?;
        tx.pragma_update(None, "application_id", APPLICATION_ID)
            .map_err(e)?;
        migrate(&tx, path, 0)?;
        {
            let mut put = tx
                .prepare("INSERT INTO meta (key, value) VALUES (?1, ?2)")
                .map_err(e)?;
            put.execute(rusqlite::params!["format", FORMAT.as_bytes()])
                .map_err(e)?;
            put.execute(rusqlite::params!["key_check", check.to_bytes()])
                .map_err(e)?;
            put.execute(rusqlite::params!["created_at", now.to_string().as_bytes()])
                .map_err(e)?;
            if let Some(json) = kdf_json {
                put.execute(rusqlite::params!["kdf_params", json])
                    .map_err(e)?;
            }
        }
        db::append_audit(
            &tx,
            path,
            &AuditKey::for_records(&master),
            now,
            vec![AuditEvent::new(actor, "store.init")],
        )?;
        tx.commit().map_err(e)?;
        configure(&conn, path, settings)?;
        restrict_sidecars(path)?;
        Ok(Self::wrap(path, master, None, conn, settings))
    }

    /// Opens an existing store with default [`Settings`].
    pub fn open(path: &Path, master: MasterKey) -> Result<Self, StoreError> {
        Self::open_with(path, master, Settings::default())
    }

    /// Opens an existing store. Refuses, without writing anything: a missing file
    /// (`NotInitialized`), a file that is not a rotor store or is damaged (`Corrupt`), a
    /// newer schema (`TooNew`), and a master key other than the one it was created with
    /// (`WrongMasterKey`). Then applies pending migrations.
    pub fn open_with(
        path: &Path,
        master: MasterKey,
        settings: Settings,
    ) -> Result<Self, StoreError> {
        Self::open_keys(path, master, None, settings)
    }

    /// Opens the store during a master-key rotation: `new` seals every new value, and
    /// values open with whichever of `new` and `old` wrapped them (`rotor_seal::open_any`).
    /// The store's key check may be under either key (before, during or after
    /// [`SqliteStore::rewrap_all`]). Refuses what [`SqliteStore::open_with`] refuses, and a
    /// key check under neither key (`WrongMasterKey`).
    ///
    /// Every process that writes the store should use both keys until the rewrap has
    /// finished: one still on `old` alone keeps sealing under `old`, and its rows are
    /// rewrapped only by a later `rewrap_all` (which needs `old` again).
    pub fn open_rotating(
        path: &Path,
        new: MasterKey,
        old: MasterKey,
        settings: Settings,
    ) -> Result<Self, StoreError> {
        Self::open_keys(path, new, Some(old), settings)
    }

    fn open_keys(
        path: &Path,
        master: MasterKey,
        old: Option<MasterKey>,
        settings: Settings,
    ) -> Result<Self, StoreError> {
        check_file(path)?;
        let e = |e| sql_err(path, e);
        let mut conn = Connection::open_with_flags(path, open_flags()).map_err(e)?;
        // Until validated, closing must not checkpoint a WAL left by a crashed process into
        // the file: a refused open writes nothing.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
            .map_err(e)?;
        conn.busy_timeout(settings.busy_timeout).map_err(e)?;
        let found = validate(&conn, path, &master, old.as_ref())?;
        // Validated: from here on writing is allowed.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, false)
            .map_err(e)?;
        set_wal(&conn, path)?;
        configure(&conn, path, settings)?;
        if found < SCHEMA_VERSION {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(e)?;
            // Re-read under the write lock: another process may have migrated meanwhile.
            let now: i64 = tx
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(e)?;
            migrate(&tx, path, now)?;
            if now < KEYED_SCHEMA {
                db::append_audit(
                    &tx,
                    path,
                    &AuditKey::for_records(&master),
                    Timestamp::now(),
                    vec![db::keyed_event(
                        "records before this one were written without a MAC (store schema 1)",
                    )],
                )?;
            }
            tx.commit().map_err(e)?;
        }
        restrict_sidecars(path)?;
        Ok(Self::wrap(path, master, old, conn, settings))
    }

    /// Creates a store whose master key is derived from `passphrase` with `params`
    /// (use [`KdfParams::generate`] for a new store); the parameters are recorded in it.
    pub fn create_with_passphrase(
        path: &Path,
        passphrase: &SecretString,
        params: &KdfParams,
        actor: &str,
        settings: Settings,
    ) -> Result<Self, StoreError> {
        let master = MasterKey::derive_from_passphrase(passphrase, params).map_err(seal_error)?;
        Self::create_with(path, master, actor, Some(params), settings)
    }

    /// Opens a store created with [`SqliteStore::create_with_passphrase`].
    pub fn open_with_passphrase(
        path: &Path,
        passphrase: &SecretString,
        settings: Settings,
    ) -> Result<Self, StoreError> {
        let params = Self::kdf_params(path)?.ok_or_else(|| StoreError::WrongMasterKey {
            detail: format!(
                "store {} was not created with a passphrase; use its key file or ROTOR_MASTER_KEY",
                show(path)
            ),
        })?;
        let master = MasterKey::derive_from_passphrase(passphrase, &params).map_err(seal_error)?;
        Self::open_with(path, master, settings)
    }

    /// The KDF parameters recorded at creation (`None` for a store keyed by a key file or
    /// `ROTOR_MASTER_KEY`). Needs no key; writes nothing.
    pub fn kdf_params(path: &Path) -> Result<Option<KdfParams>, StoreError> {
        check_file(path)?;
        let e = |e| sql_err(path, e);
        let conn = Connection::open_with_flags(path, open_flags()).map_err(e)?;
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
            .map_err(e)?;
        conn.busy_timeout(Settings::default().busy_timeout)
            .map_err(e)?;
        let found: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(e)?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: show(path),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        let json: Option<Vec<u8>> = conn
            .query_row("SELECT value FROM meta WHERE key = 'kdf_params'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|err| StoreError::Corrupt {
                path: show(path),
                detail: format!("cannot read its meta table: {err}"),
            })?;
        json.map(|j| {
            serde_json::from_slice(&j).map_err(|err| StoreError::Corrupt {
                path: show(path),
                detail: format!("its KDF parameters are damaged: {err}"),
            })
        })
        .transpose()
    }

    fn wrap(
        path: &Path,
        master: MasterKey,
        old: Option<MasterKey>,
        conn: Connection,
        settings: Settings,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                ctx: Ctx {
                    path: path.to_owned(),
                    records: AuditKey::for_records(&master),
                    master,
                    old,
                    synchronous: settings.synchronous,
                },
                conn: Mutex::new(conn),
            }),
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.ctx.path
    }

    /// Rewraps up to `limit` values not yet under `new` (by their `key_id` column) from
    /// `old` to `new`, in one committed `BEGIN IMMEDIATE` transaction. Returns how many it
    /// rewrapped; 0 when none is left. Only the wrapped data key and `key_id` change, never
    /// the value ciphertext. A row under neither key fails the batch with
    /// `WrongMasterKey` naming its secret and version (nothing of the batch is written).
    pub async fn rewrap_batch(
        &self,
        old: &MasterKey,
        new: &MasterKey,
        limit: usize,
    ) -> Result<u64, StoreError> {
        let (old, new) = (copy_key(old)?, copy_key(new)?);
        let limit = limit.max(1);
        self.run(move |ctx, conn| db::rewrap_batch(ctx, conn, &old, &new, 0, limit))
            .await
            .map(|(n, _)| n)
    }

    /// Master-key rotation (`rotor master-key rotate`): rewraps every version's data key
    /// from `old` to `new` in committed batches of [`REWRAP_BATCH`], then, in ONE final
    /// transaction (which holds SQLite's write lock, so no writer can slip in), rewraps any
    /// row written meanwhile under another key, replaces the key check with one for `new`
    /// and appends `store.master_key.rotate` (actor `actor`, both key ids in `reason`) to
    /// the audit log. The final commit is always fsynced (`synchronous = FULL`), whatever
    /// [`Settings::synchronous`] says. Returns the number of rows rewrapped.
    ///
    /// Crash-safe and resumable: each batch commits on its own, every row is always under
    /// exactly one of the two keys (readable by a handle from
    /// [`SqliteStore::open_rotating`]), and re-running skips rows already under `new`
    /// (re-running after completion rewraps nothing, returns 0 and records the rotation
    /// again). Until the final commit the key check is still `old`'s, so
    /// [`SqliteStore::open`] with `old` alone still opens the store (and reads the rows not
    /// yet rewrapped; a rewrapped row is `WrongMasterKey` naming its secret and version);
    /// afterwards only `new` opens it. Fails with `WrongMasterKey` when the key check is
    /// under neither key.
    pub async fn rewrap_all(
        &self,
        old: &MasterKey,
        new: &MasterKey,
        actor: &str,
    ) -> Result<u64, StoreError> {
        let (old, new) = (Arc::new(copy_key(old)?), Arc::new(copy_key(new)?));
        let mut total = 0u64;
        // Keyset pagination by `vid`: each batch starts after the last row the previous one
        // looked at, so the batches together read the table once. Rows skipped that way
        // (none in practice: `vid`s only grow) are caught by the final pass.
        let mut after = 0i64;
        loop {
            let (o, n) = (Arc::clone(&old), Arc::clone(&new));
            let (done, last) = self
                .run(move |ctx, conn| db::rewrap_batch(ctx, conn, &o, &n, after, REWRAP_BATCH))
                .await?;
            if done == 0 {
                break;
            }
            total += done;
            after = last;
        }
        let check = KeyCheck::new(&new).map_err(seal_error)?;
        let actor = actor.to_owned();
        let last = self
            .run(move |ctx, conn| db::rewrap_finish(ctx, conn, &old, &new, &check, &actor))
            .await?;
        Ok(total + last)
    }

    /// Runs `job` with the connection: on tokio's blocking pool inside a tokio runtime,
    /// inline otherwise (see the crate docs for why).
    async fn run<T, F>(&self, job: F) -> Result<T, StoreError>
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

#[async_trait]
impl Store for SqliteStore {
    async fn apply(&self, change: Change) -> Result<Vec<AuditRecord>, StoreError> {
        self.run(move |ctx, conn| db::apply(ctx, conn, change))
            .await
    }

    async fn claim(
        &self,
        id: &RotationId,
        owner: &str,
        now: Timestamp,
        expires_at: Timestamp,
        takeover: Takeover,
    ) -> Result<Lease, StoreError> {
        let id = id.clone();
        let owner = owner.to_owned();
        self.run(move |ctx, conn| db::claim(ctx, conn, &id, &owner, now, expires_at, takeover))
            .await
    }

    async fn versions(&self, secret: &SecretName) -> Result<Vec<VersionMeta>, StoreError> {
        let secret = secret.clone();
        self.run(move |ctx, conn| db::versions(ctx, conn, &secret))
            .await
    }

    async fn read_stage(
        &self,
        secret: &SecretName,
        stage: Stage,
    ) -> Result<Option<Versioned>, StoreError> {
        let secret = secret.clone();
        self.run(move |ctx, conn| db::read_stage(ctx, conn, &secret, stage))
            .await
    }

    async fn read_version(
        &self,
        secret: &SecretName,
        id: &VersionId,
    ) -> Result<Option<Versioned>, StoreError> {
        let secret = secret.clone();
        let id = id.clone();
        self.run(move |ctx, conn| db::read_version(ctx, conn, &secret, &id))
            .await
    }

    async fn rotation(&self, id: &RotationId) -> Result<Option<Rotation>, StoreError> {
        let id = id.clone();
        self.run(move |ctx, conn| db::rotation(ctx, conn, &id))
            .await
    }

    async fn rotations(
        &self,
        secret: Option<&SecretName>,
        limit: usize,
    ) -> Result<Vec<Rotation>, StoreError> {
        let secret = secret.cloned();
        self.run(move |ctx, conn| db::rotations(ctx, conn, secret.as_ref(), limit))
            .await
    }

    async fn open_rotations(&self) -> Result<Vec<Rotation>, StoreError> {
        self.run(db::open_rotations).await
    }

    async fn owed_rollbacks(&self) -> Result<Vec<Rotation>, StoreError> {
        self.run(db::owed_rollbacks).await
    }

    async fn summaries(&self) -> Result<Vec<SecretSummary>, StoreError> {
        self.run(db::summaries).await
    }

    async fn audit_tail(&self, n: usize) -> Result<Vec<AuditRecord>, StoreError> {
        self.run(move |ctx, conn| db::audit_tail(ctx, conn, n))
            .await
    }

    async fn audit_all(&self) -> Result<Vec<AuditRecord>, StoreError> {
        self.run(db::audit_all).await
    }

    async fn audit_verify(&self) -> Result<Verified, StoreError> {
        self.run(db::audit_verify).await
    }

    async fn export(&self) -> Result<Dump, StoreError> {
        self.run(db::export).await
    }

    async fn import(&self, dump: Dump, event: AuditEvent) -> Result<(), StoreError> {
        self.run(move |ctx, conn| db::import(ctx, conn, dump, event))
            .await
    }
}
