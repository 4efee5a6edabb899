//! Creating and opening a store: the file made `0600` by rotor, validation before
//! anything is written (schema, integrity, master-key check), migrations, passphrase keys.

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use rotor_core::StoreError;
use rotor_core::audit::AuditEvent;
use rotor_seal::{AuditKey, KdfParams, KeyCheck, MasterKey};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use secrecy::SecretString;

use crate::file::{check_file, open_flags, restrict_sidecars, sidecars};
use crate::{
    APPLICATION_ID, Ctx, FORMAT, Inner, IntegrityCheck, KEYED_SCHEMA, MIGRATIONS, SCHEMA_VERSION,
    Settings, SqliteStore, Synchronous, db, seal_error, show, sql_err,
};

fn configure(conn: &Connection, path: &Path, settings: Settings) -> Result<(), StoreError> {
    let e = |e| sql_err(path, e);
    conn.busy_timeout(settings.busy_timeout).map_err(e)?;
    conn.pragma_update(None, "synchronous", settings.synchronous.pragma())
        .map_err(e)?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(e)?;
    Ok(())
}

/// The schema version in the file header (`PRAGMA user_version`); a newer one than this
/// build understands is `TooNew`.
fn schema_version(conn: &Connection, path: &Path) -> Result<i64, StoreError> {
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| sql_err(path, e))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: show(path),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(found)
}

/// `PRAGMA quick_check` over the whole file: `Corrupt` naming the first problems found.
pub(crate) fn integrity_check(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let e = |e| sql_err(path, e);
    let mut problems = Vec::new();
    let mut stmt = conn.prepare("PRAGMA quick_check").map_err(e)?;
    let mut rows = stmt.query([]).map_err(e)?;
    while let Some(row) = rows.next().map_err(e)? {
        let line: String = row.get(0).map_err(e)?;
        if line != "ok" && problems.len() < 5 {
            problems.push(line);
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Corrupt {
            path: show(path),
            detail: format!("integrity check failed: {}", problems.join("; ")),
        })
    }
}

/// Reads and validates everything `open` needs before it may write (the schema, the format
/// marker, the key check; the whole-file [`integrity_check`] is the caller's, per
/// [`IntegrityCheck`]). Writes nothing. The key check must be `master`'s, or (during a
/// master-key rotation) `old`'s.
fn validate(
    conn: &Connection,
    path: &Path,
    master: &MasterKey,
    old: Option<&MasterKey>,
) -> Result<i64, StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt {
        path: show(path),
        detail,
    };
    let found = schema_version(conn, path)?;
    if found < 1 {
        return Err(corrupt(
            "it has no rotor schema (creation was interrupted, or it is not a rotor store)".into(),
        ));
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
        Ok(Self::wrap(path, master, None, conn, settings, true))
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
        // A migration is a write: the file is checked before it, whatever the setting.
        let checked = settings.integrity == IntegrityCheck::OnOpen || found < SCHEMA_VERSION;
        if checked {
            integrity_check(&conn, path)?;
        }
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
        Ok(Self::wrap(path, master, old, conn, settings, checked))
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
        schema_version(&conn, path)?;
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

    /// `checked`: whether the whole file passed [`integrity_check`] already (a store this
    /// handle created is new).
    fn wrap(
        path: &Path,
        master: MasterKey,
        old: Option<MasterKey>,
        conn: Connection,
        settings: Settings,
        checked: bool,
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
                checked: AtomicBool::new(checked),
            }),
        }
    }
}
