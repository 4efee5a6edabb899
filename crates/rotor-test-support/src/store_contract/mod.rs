//! The [`Store`] contract, written once and run against every store (SQLite, PostgreSQL,
//! AWS over moto): what the engine, the CLI and the daemon rely on from any
//! `dyn Store`, checked through the trait alone.
//!
//! Each case is a `pub async fn` taking a [`StoreFactory`] (and the migrate cases two: a
//! source and a target kind), so a store's test file only says how to make a fresh store
//! and calls [`store_contract_tests!`](crate::store_contract_tests) (and
//! [`store_migrate_tests!`](crate::store_migrate_tests)): a case added here runs for every
//! store at once. What only one store has (file modes, SQL constraints, advisory locks,
//! AWS stage labels, tampering with raw rows) stays in that store's own tests.
//!
//! A [`Subject`] may also carry its backend's raw rows ([`Subject::with_rows`]); the
//! cases then check "nothing written" and "no plaintext at rest" on those rows too, not only
//! through the trait.

mod audit;
mod migrate;
mod rotations;
mod stages;

use std::any::Any;
use std::future::Future;
use std::sync::Arc;

use jiff::Timestamp;
use rotor_core::audit::AuditEvent;
use rotor_core::rotation::Trigger;
use rotor_core::store::{Change, NewVersion, Op};
use rotor_core::{
    Rotation, RotationId, RotationStatus, SecretName, SecretValue, Stage, Step, Store, VersionId,
};

pub use audit::*;
pub use migrate::*;
pub use rotations::*;
pub use stages::*;

/// Who creates every store a factory makes (its `store.init` record names it).
pub const ACTOR: &str = "alice@host";

/// Makes fresh, empty stores of one kind.
pub trait StoreFactory {
    /// The kind's name, for failure messages (`sqlite`, `postgres`, `aws`).
    fn kind(&self) -> &str;

    /// A new store holding nothing but its `store.init` audit record, made by [`ACTOR`]
    /// under a fresh master key. Panics (never skips) when the backend cannot be had.
    fn fresh(&self) -> impl Future<Output = Subject>;
}

/// A store under test, with whatever keeps it alive (a temporary directory, a database).
pub struct Subject {
    /// Declared first, so it is dropped before what it lives in.
    pub store: Arc<dyn Store>,
    rows: Option<Box<dyn Fn() -> String + Send + Sync>>,
    files: Option<Box<dyn Fn() -> Vec<u8> + Send + Sync>>,
    _keep: Box<dyn Any + Send + Sync>,
}

impl std::fmt::Debug for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subject")
            .field("store", &self.store)
            .field("rows", &self.rows.is_some())
            .field("files", &self.files.is_some())
            .finish_non_exhaustive()
    }
}

impl Subject {
    /// `store`, kept alive by `keep` (dropped after the store).
    pub fn new(store: Arc<dyn Store>, keep: impl Any + Send + Sync) -> Self {
        Self {
            store,
            rows: None,
            files: None,
            _keep: Box::new(keep),
        }
    }

    /// Adds the backend's raw view: every row of every table as text, binary columns as
    /// hex. Used for "nothing was written" and "no value in plaintext" checks below the
    /// trait.
    pub fn with_rows(mut self, rows: impl Fn() -> String + Send + Sync + 'static) -> Self {
        self.rows = Some(Box::new(rows));
        self
    }

    /// Adds the bytes the backend keeps on disk (a SQLite file and its WAL: free pages
    /// included, which no row dump shows), for the "no value in plaintext" checks.
    pub fn with_files(mut self, files: impl Fn() -> Vec<u8> + Send + Sync + 'static) -> Self {
        self.files = Some(Box::new(files));
        self
    }

    /// The raw rows, when the backend has a view of them.
    pub fn rows(&self) -> Option<String> {
        self.rows.as_ref().map(|f| f())
    }

    /// Everything the store holds, as comparable text (values included), plus its raw
    /// rows when known: equal before and after means nothing was written.
    pub async fn fingerprint(&self) -> String {
        let d = self.store.export().await.expect("export");
        let versions: Vec<_> = d
            .versions
            .iter()
            .map(|v| (v.meta.clone(), v.value.expose().to_vec()))
            .collect();
        format!(
            "{versions:?}\n{:?}\n{:?}\n{}",
            d.rotations,
            d.audit,
            self.rows().unwrap_or_default()
        )
    }

    /// Asserts no `plaintext` (as text, or hex as in a bytea/blob dump) is in the raw rows,
    /// nor (as bytes) in the files on disk, of those the backend has.
    #[track_caller]
    pub fn assert_not_at_rest(&self, plaintext: &[u8]) {
        let text = String::from_utf8_lossy(plaintext);
        if let Some(rows) = self.rows() {
            assert!(!rows.contains(&*text), "plaintext {text} in the rows");
            assert!(
                !rows.contains(&hex::encode(plaintext)),
                "plaintext {text} in the rows (hex)"
            );
        }
        if let Some(files) = &self.files {
            let bytes = files();
            assert!(
                !bytes.windows(plaintext.len()).any(|w| w == plaintext),
                "plaintext {text} in the files"
            );
        }
    }
}

/// Defines one `#[tokio::test]` per contract case, each on fresh stores from `$factory`
/// (an expression evaluated in each test: one server per test, as the other tests do).
#[macro_export]
macro_rules! store_contract_tests {
    ($factory:expr) => {
        $crate::store_contract_tests!(@cases $factory;
            a_new_store_holds_only_its_init_record,
            stages_move_across_three_promotes,
            pending_is_exclusive_and_a_failed_change_writes_nothing,
            put_inserts_and_promotes_in_one_change,
            timestamps_and_metadata_round_trip_exactly,
            read_staged_is_pending_current_previous_in_order,
            values_are_not_stored_in_plaintext,
            leases_fence_stale_writers,
            a_rotation_planned_against_a_replaced_current_is_refused,
            the_audit_chain_verifies_after_many_changes,
            summaries_cover_every_secret_in_one_pass,
            owed_rollbacks_are_listed_and_audit_times_follow_seq,
        );
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::store_contract::$case(&$factory).await;
            }
        )*
    };
}

/// Defines one `#[tokio::test]` per migrate case, from stores of `$from` into stores of
/// `$to`. Put each pair in its own module (`mod sqlite_to_postgres { … }`).
#[macro_export]
macro_rules! store_migrate_tests {
    ($from:expr, $to:expr) => {
        $crate::store_migrate_tests!(@cases $from, $to;
            export_then_import_copies_everything_and_the_chain_verifies,
            importing_into_a_store_that_holds_anything_is_refused_and_writes_nothing,
            a_failure_in_the_middle_of_an_import_writes_nothing,
        );
    };
    (@cases $from:expr, $to:expr; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::store_contract::$case(&$from, &$to).await;
            }
        )*
    };
}

/// A valid secret name.
pub fn name(s: &str) -> SecretName {
    SecretName::new(s).expect("valid name")
}

/// A new version of `secret` holding `value`, made by [`ACTOR`] now, with a `kid`.
pub fn new_version(secret: &SecretName, value: &[u8]) -> NewVersion {
    NewVersion {
        secret: secret.clone(),
        id: VersionId::generate(),
        created_by: ACTOR.into(),
        created_at: Timestamp::now(),
        metadata: serde_json::json!({"kid": "k1"}),
        value: SecretValue::from_slice(value),
    }
}

/// `rotor put`: insert and promote in one change, with its audit record.
pub fn put_change(secret: &SecretName, value: &[u8]) -> (VersionId, Change) {
    let v = new_version(secret, value);
    let id = v.id.clone();
    let change = Change::new()
        .op(Op::InsertVersion {
            version: v,
            stage: None,
        })
        .op(Op::Promote {
            secret: secret.clone(),
            version: id.clone(),
        })
        .audit(
            AuditEvent::new(ACTOR, "secret.put")
                .secret(secret)
                .version(&id),
        );
    (id, change)
}

/// Applies [`put_change`]; returns the new current version.
pub async fn put(store: &dyn Store, secret: &SecretName, value: &[u8]) -> VersionId {
    let (id, change) = put_change(secret, value);
    store.apply(change).await.expect("put");
    id
}

/// Inserts `value` as `secret`'s pending version (the create step's stage move).
pub async fn insert_pending(store: &dyn Store, secret: &SecretName, value: &[u8]) -> VersionId {
    let v = new_version(secret, value);
    let id = v.id.clone();
    store
        .apply(Change::new().op(Op::InsertVersion {
            version: v,
            stage: Some(Stage::Pending),
        }))
        .await
        .expect("insert pending");
    id
}

/// A running manual rotation of `secret` at its create step, without a lease or a plan.
pub fn rotation(secret: &SecretName) -> Rotation {
    let now = Timestamp::now();
    Rotation {
        id: RotationId::generate(),
        secret: secret.clone(),
        trigger: Trigger::Manual,
        actor: ACTOR.into(),
        reason: None,
        emergency: false,
        evict: true,
        status: RotationStatus::Running,
        step: Step::Create,
        step_done: false,
        attempts: 0,
        error: None,
        pending_version: None,
        previous_version: None,
        started_at: now,
        updated_at: now,
        activate_after: None,
        rollback_owed: false,
        retire_after: None,
        lease: None,
    }
}

/// The id of the version holding `stage`.
pub async fn stage_of(store: &dyn Store, secret: &SecretName, stage: Stage) -> Option<VersionId> {
    store
        .read_stage(secret, stage)
        .await
        .expect("read stage")
        .map(|v| v.meta.id)
}

/// The SQLite database at `path` and its WAL (if any), as bytes on disk.
pub fn sqlite_files(path: &std::path::Path) -> Vec<u8> {
    let mut bytes = std::fs::read(path).expect("read the database file");
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    if let Ok(w) = std::fs::read(std::path::PathBuf::from(wal)) {
        bytes.extend_from_slice(&w);
    }
    bytes
}

/// Every row of every table of the SQLite database at `path`, as text (blobs as hex): the
/// raw view of a SQLite store (or of the AWS store's SQLite ledger) for [`Subject::with_rows`].
pub fn sqlite_rows(path: &std::path::Path) -> String {
    use rusqlite::types::ValueRef;
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open the store read-only");
    let mut tables = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .expect("list tables");
    let tables: Vec<String> = tables
        .query_map([], |r| r.get(0))
        .expect("list tables")
        .collect::<Result<_, _>>()
        .expect("table names");
    let mut out = String::new();
    for t in tables {
        out.push_str(&format!("== {t}\n"));
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM \"{t}\""))
            .expect("select");
        let n = stmt.column_count();
        let mut rows: Vec<String> = stmt
            .query_map([], |r| {
                let mut line = Vec::with_capacity(n);
                for i in 0..n {
                    line.push(match r.get_ref(i)? {
                        ValueRef::Null => "NULL".to_owned(),
                        ValueRef::Integer(x) => x.to_string(),
                        ValueRef::Real(x) => x.to_string(),
                        ValueRef::Text(x) => String::from_utf8_lossy(x).into_owned(),
                        ValueRef::Blob(x) => format!("\\x{}", hex::encode(x)),
                    });
                }
                Ok(line.join("|"))
            })
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("row");
        // Rows in a stable order whatever the query plan.
        rows.sort();
        for r in rows {
            out.push_str(&r);
            out.push('\n');
        }
    }
    out
}
