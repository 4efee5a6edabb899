//! Behaviour of the SQLite store on real files in temporary directories: the shared store
//! contract (`rotor_test_support::store_contract`, module `contract` below), and what only
//! a SQLite file has (modes, the WAL, corrupt files, schema constraints, passphrases,
//! several processes on one file, no runtime).
//! Over 600 lines on purpose: the contract run plus each SQLite-only case, on one fixture.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::new_store;
use rotor_core::audit::verify_chain;
use rotor_core::{Stage, Store, StoreError};
use rotor_seal::{KdfParams, MasterKey, MasterKeySource};
use rotor_store_sqlite::{IntegrityCheck, SCHEMA_VERSION, Settings, SqliteStore, seal_error};
use rotor_test_support::store_contract::{name, put_change};
use secrecy::{ExposeSecret, SecretString};

mod contract {
    use super::common::Sqlite;
    rotor_test_support::store_contract_tests!(Sqlite);
}

fn key_pair() -> (MasterKey, MasterKey) {
    let mut keys = key_copies(2);
    let b = keys.pop().expect("two");
    let a = keys.pop().expect("two");
    (a, b)
}

/// `n` handles on one fresh master key (`MasterKey` is deliberately not `Clone`).
fn key_copies(n: usize) -> Vec<MasterKey> {
    let k = MasterKey::generate().expect("key");
    let encoded = k.encode();
    (0..n)
        .map(|_| MasterKey::from_encoded(encoded.expose_secret()).expect("same key"))
        .collect()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
}

fn raw(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).expect("raw sqlite")
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn wal(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push("-wal");
    PathBuf::from(s)
}

#[tokio::test]
async fn create_makes_a_0600_file_and_refuses_to_overwrite() {
    let (_dir, path, store) = new_store();
    assert_eq!(mode(&path), 0o600);
    for side in ["-wal", "-shm"] {
        let mut s = path.as_os_str().to_owned();
        s.push(side);
        let p = PathBuf::from(s);
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{side}");
        }
    }
    // What a new store holds is the contract's `a_new_store_holds_only_its_init_record`.
    drop(store);
    let before = std::fs::read(&path).expect("read");
    let again = SqliteStore::create(&path, MasterKey::generate().expect("key"), "bob");
    assert!(
        matches!(again, Err(StoreError::AlreadyExists { .. })),
        "{again:?}"
    );
    assert!(
        std::fs::read(&path).expect("read") == before,
        "file changed"
    );
}

#[tokio::test]
async fn the_schema_allows_one_version_per_stage() {
    let (_dir, path, store) = new_store();
    let s = name("db");
    let (v1, c1) = put_change(&s, b"one");
    store.apply(c1).await.expect("put");
    let (v2, c2) = put_change(&s, b"two");
    store.apply(c2).await.expect("put");
    drop(store);
    let conn = raw(&path);
    let err = conn.execute(
        "INSERT INTO stages (secret, stage, version_id) VALUES ('db', 'current', ?1)",
        [v1.as_str()],
    );
    assert!(
        err.is_err(),
        "a second current must violate the primary key"
    );
    let n: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM stages WHERE secret = 'db' AND stage = 'current' AND version_id = ?1",
            [v2.as_str()],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(n, 1);
}

#[tokio::test]
async fn values_never_reach_the_file_or_the_wal_in_plaintext() {
    let (_dir, path, store) = new_store();
    let plaintext = b"correct-horse-battery-staple-4f9a1c";
    for i in 0..20 {
        let s = name(&format!("secret-{i}"));
        let (_, c) = put_change(&s, plaintext);
        store.apply(c).await.expect("put");
    }
    // While open: the WAL holds the recent pages.
    let mut bytes = std::fs::read(&path).expect("db");
    if let Ok(w) = std::fs::read(wal(&path)) {
        assert!(!w.is_empty());
        bytes.extend_from_slice(&w);
    }
    assert!(
        !contains(&bytes, plaintext),
        "plaintext found in the db or wal"
    );
    assert!(contains(&bytes, b"secret-7"), "the scan sees the rows");
    drop(store);
    let bytes = std::fs::read(&path).expect("db");
    assert!(!contains(&bytes, plaintext));
}

#[tokio::test]
async fn a_ciphertext_copied_to_another_row_is_tampered() {
    let (_dir, path, store) = new_store();
    let a = name("alpha");
    let b = name("beta");
    let (a1, c) = put_change(&a, b"alpha-value");
    store.apply(c).await.expect("put");
    let (a2, c) = put_change(&a, b"alpha-value-2");
    store.apply(c).await.expect("put");
    let (b1, c) = put_change(&b, b"beta-value");
    store.apply(c).await.expect("put");

    let conn = raw(&path);
    // Same secret, other version.
    conn.execute(
        "UPDATE versions SET sealed = (SELECT sealed FROM versions WHERE id = ?1) WHERE id = ?2",
        [a2.as_str(), a1.as_str()],
    )
    .expect("copy");
    // Other secret.
    conn.execute(
        "UPDATE versions SET sealed = (SELECT sealed FROM versions WHERE id = ?1) WHERE id = ?2",
        [a2.as_str(), b1.as_str()],
    )
    .expect("copy");
    drop(conn);

    let err = store.read_version(&a, &a1).await.expect_err("copied");
    assert!(matches!(err, StoreError::Tampered { .. }), "{err:?}");
    assert!(!err.to_string().contains("alpha-value"));
    let err = store
        .read_stage(&b, Stage::Current)
        .await
        .expect_err("copied");
    assert!(
        matches!(&err, StoreError::Tampered { secret, version } if secret == "beta" && *version == b1.to_string()),
        "{err:?}"
    );
    // The untouched row still opens.
    let ok = store
        .read_version(&a, &a2)
        .await
        .expect("read")
        .expect("row");
    assert_eq!(ok.value.expose(), b"alpha-value-2");

    // A flipped byte.
    raw(&path)
        .execute(
            "UPDATE versions SET sealed = CAST(substr(sealed, 1, length(sealed) - 1) || x'00' AS BLOB) WHERE id = ?1",
            [a2.as_str()],
        )
        .expect("flip");
    let err = store.read_version(&a, &a2).await.expect_err("flipped");
    assert!(matches!(err, StoreError::Tampered { .. }), "{err:?}");
}

#[tokio::test]
async fn a_wrong_master_key_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rotor.db");
    let (k, k_copy) = key_pair();
    let store = SqliteStore::create(&path, k, "alice").expect("create");
    let (_, c) = put_change(&name("db"), b"v");
    store.apply(c).await.expect("put");
    drop(store);
    let before = std::fs::read(&path).expect("read");
    let err = SqliteStore::open(&path, MasterKey::generate().expect("key")).expect_err("wrong key");
    assert!(matches!(err, StoreError::WrongMasterKey { .. }), "{err:?}");
    assert!(
        std::fs::read(&path).expect("read") == before,
        "byte-for-byte unchanged"
    );
    assert!(!wal(&path).exists() || std::fs::metadata(wal(&path)).expect("wal").len() == 0);

    let store = SqliteStore::open(&path, k_copy).expect("right key");
    assert_eq!(
        store
            .read_stage(&name("db"), Stage::Current)
            .await
            .expect("read")
            .expect("current")
            .value
            .expose(),
        b"v"
    );
}

#[tokio::test]
async fn missing_store_and_missing_key_are_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nope.db");
    let err = SqliteStore::open(&path, MasterKey::generate().expect("key")).expect_err("missing");
    assert!(matches!(err, StoreError::NotInitialized { .. }), "{err:?}");
    assert!(err.to_string().contains("rotor init"));
    assert!(!path.exists(), "open never creates the store");
    assert!(matches!(
        SqliteStore::kdf_params(&path),
        Err(StoreError::NotInitialized { .. })
    ));

    let key_err = MasterKeySource::File(dir.path().join("missing.key"))
        .load()
        .expect_err("no key file");
    let err = seal_error(key_err);
    assert!(
        matches!(err, StoreError::MissingMasterKey { .. }),
        "{err:?}"
    );
}

fn assert_corrupt(path: &Path) {
    let before = std::fs::read(path).expect("read");
    let err = SqliteStore::open(path, MasterKey::generate().expect("key")).expect_err("corrupt");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("will not recreate"));
    assert!(
        std::fs::read(path).expect("read") == before,
        "not recreated"
    );
}

#[tokio::test]
async fn truncated_garbage_and_foreign_files_are_corrupt() {
    let (dir, path, store) = new_store();
    for i in 0..50 {
        let (_, c) = put_change(&name(&format!("s{i}")), b"v");
        store.apply(c).await.expect("put");
    }
    drop(store);
    let full = std::fs::read(&path).expect("read");
    assert!(full.len() > 8192, "{}", full.len());

    // Truncated at a page boundary, mid-page, and inside the header.
    for cut in [full.len() / 2 / 4096 * 4096, full.len() - 100, 50, 0] {
        std::fs::write(&path, &full[..cut]).expect("truncate");
        assert_corrupt(&path);
    }

    // Garbage.
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x5a; 16384]).expect("write");
    assert_corrupt(&garbage);

    // A SQLite database that is not a rotor store.
    let foreign = dir.path().join("foreign.db");
    raw(&foreign)
        .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .expect("foreign");
    assert_corrupt(&foreign);

    // A damaged page in an otherwise intact file.
    let mut damaged = full.clone();
    for b in &mut damaged[4096..4 * 4096] {
        *b = 0xff;
    }
    std::fs::write(&path, &damaged).expect("damage");
    assert_corrupt(&path);
}

/// A store whose damage lies in pages a read never touches (here a table rotor does not
/// use): opened with `IntegrityCheck::BeforeFirstWrite` it answers reads, and the first
/// write checks the whole file and is refused without writing; opened with the default
/// `OnOpen` it is refused at once.
#[tokio::test]
async fn a_deferred_integrity_check_still_runs_before_the_first_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rotor.db");
    let mut keys = key_copies(3);
    let store = SqliteStore::create(&path, keys.pop().expect("key"), "test").expect("create");
    let (id, c) = put_change(&name("app"), b"the-value");
    store.apply(c).await.expect("put");
    drop(store);
    let conn = raw(&path);
    conn.execute_batch("CREATE TABLE padding (x); INSERT INTO padding VALUES (1);")
        .expect("padding");
    let root: i64 = conn
        .query_row(
            "SELECT rootpage FROM sqlite_master WHERE name = 'padding'",
            [],
            |r| r.get(0),
        )
        .expect("root");
    let page: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .expect("page size");
    drop(conn);
    let mut bytes = std::fs::read(&path).expect("read");
    let at = usize::try_from((root - 1) * page).expect("offset");
    for b in &mut bytes[at..at + 64] {
        *b = 0xff;
    }
    std::fs::write(&path, &bytes).expect("damage");

    let deferred = Settings {
        integrity: IntegrityCheck::BeforeFirstWrite,
        ..Settings::default()
    };
    let store = SqliteStore::open_with(&path, keys.pop().expect("key"), deferred).expect("open");
    let current = store
        .read_stage(&name("app"), Stage::Current)
        .await
        .expect("a read works")
        .expect("current");
    assert_eq!(current.meta.id, id);
    let (_, c) = put_change(&name("other"), b"v");
    let err = store.apply(c).await.expect_err("the first write checks");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    drop(store);
    assert!(
        std::fs::read(&path).expect("read") == bytes,
        "nothing written"
    );

    let err = SqliteStore::open(&path, keys.pop().expect("key")).expect_err("OnOpen refuses");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let (dir, path, store) = new_store();
    drop(store);
    let copy = dir.path().join("copy.db");
    std::fs::copy(&path, &copy).expect("copy");
    raw(&copy)
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .expect("bump");
    let before = std::fs::read(&copy).expect("read");
    let err = SqliteStore::open(&copy, MasterKey::generate().expect("key")).expect_err("too new");
    match err {
        StoreError::TooNew {
            found, supported, ..
        } => {
            assert_eq!(found, SCHEMA_VERSION + 1);
            assert_eq!(supported, SCHEMA_VERSION);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        std::fs::read(&copy).expect("read") == before,
        "file changed"
    );
}

#[tokio::test]
async fn an_edited_audit_row_breaks_the_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rotor.db");
    let (k, k2) = key_pair();
    let store = SqliteStore::create(&path, k, "alice").expect("create");
    for i in 0..30 {
        let (_, c) = put_change(&name(&format!("s{i}")), b"v");
        store.apply(c).await.expect("put");
    }
    raw(&path)
        .execute(
            "UPDATE audit SET reason = 'nothing to see' WHERE seq = 17",
            [],
        )
        .expect("edit");
    let err = verify_chain(&store.audit_all().await.expect("audit")).expect_err("edited");
    assert_eq!(err.seq, 17);
    drop(store);

    // Deleting a record is caught as well (after re-opening).
    let store = SqliteStore::open(&path, k2).expect("open");
    raw(&path)
        .execute_batch(
            "UPDATE audit SET reason = NULL WHERE seq = 17; DELETE FROM audit WHERE seq = 5;",
        )
        .expect("delete");
    let err = verify_chain(&store.audit_all().await.expect("audit")).expect_err("deleted");
    assert_eq!(err.position, 5);
}

#[tokio::test]
async fn passphrase_stores_record_their_kdf_parameters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rotor.db");
    // Small parameters: the test is about storage, not Argon2 cost.
    let params = KdfParams {
        m_cost_kib: 64,
        t_cost: 1,
        ..KdfParams::generate().expect("params")
    };
    let pass = SecretString::from("correct horse".to_owned());
    let store =
        SqliteStore::create_with_passphrase(&path, &pass, &params, "alice", Settings::default())
            .expect("create");
    let (_, c) = put_change(&name("db"), b"v");
    store.apply(c).await.expect("put");
    drop(store);
    assert_eq!(
        SqliteStore::kdf_params(&path).expect("params"),
        Some(params)
    );
    let store = SqliteStore::open_with_passphrase(&path, &pass, Settings::default()).expect("open");
    assert!(
        store
            .read_stage(&name("db"), Stage::Current)
            .await
            .expect("read")
            .is_some()
    );
    drop(store);
    let wrong = SecretString::from("wrong horse".to_owned());
    let err = SqliteStore::open_with_passphrase(&path, &wrong, Settings::default())
        .expect_err("wrong passphrase");
    assert!(matches!(err, StoreError::WrongMasterKey { .. }), "{err:?}");

    // A key-file store has no KDF record.
    let (_d, other, s) = new_store();
    drop(s);
    assert_eq!(SqliteStore::kdf_params(&other).expect("params"), None);
    let err = SqliteStore::open_with_passphrase(&other, &pass, Settings::default())
        .expect_err("no passphrase store");
    assert!(matches!(err, StoreError::WrongMasterKey { .. }), "{err:?}");
}

#[test]
fn two_handles_putting_concurrently_never_corrupt_stages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rotor.db");
    let mut keys = key_copies(4);
    drop(SqliteStore::create(&path, keys.pop().expect("key"), "init").expect("create"));
    let s = name("shared");
    let mut threads = Vec::new();
    for t in 0..2 {
        let key = keys.pop().expect("key");
        let path = path.clone();
        let s = s.clone();
        threads.push(std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let store = SqliteStore::open(&path, key).expect("open");
            let mut locked = 0u32;
            for i in 0..200 {
                loop {
                    let (_, c) = put_change(&s, format!("t{t}-{i}").as_bytes());
                    match rt.block_on(store.apply(c)) {
                        Ok(_) => break,
                        Err(StoreError::Locked) => locked += 1,
                        Err(other) => panic!("thread {t}: {other}"),
                    }
                }
            }
            locked
        }));
    }
    for t in threads {
        t.join().expect("thread");
    }
    let conn = raw(&path);
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).expect("count") };
    assert_eq!(
        count("SELECT COUNT(*) FROM stages WHERE secret = 'shared' AND stage = 'current'"),
        1
    );
    assert_eq!(count("SELECT COUNT(*) FROM versions"), 400);
    // The previous label is on the version committed just before the current one.
    let vid_of = |stage: &str| {
        count(&format!(
            "SELECT v.vid FROM stages s JOIN versions v ON v.secret = s.secret AND v.id = s.version_id
             WHERE s.stage = '{stage}'"
        ))
    };
    assert_eq!((vid_of("current"), vid_of("previous")), (400, 399));
    drop(conn);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let store = SqliteStore::open(&path, keys.pop().expect("key")).expect("open");
    let audit = rt.block_on(store.audit_all()).expect("audit");
    assert_eq!(verify_chain(&audit), Ok(401));
    let sums = rt.block_on(store.summaries()).expect("summaries");
    assert_eq!(sums.len(), 1);
    let name = sums[0].secret.clone().expect("name");
    assert_eq!(
        rt.block_on(store.versions(&name)).expect("versions").len(),
        400
    );
}

/// Without a tokio runtime the store runs its work inline: any executor works.
#[test]
fn works_without_a_tokio_runtime() {
    let (_dir, _path, store) = new_store();
    let s = name("db");
    let (id, c) = put_change(&s, b"inline");
    let mut fut = std::pin::pin!(store.apply(c));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(fut.as_mut().poll(&mut cx).is_ready(), "completes inline");
    let mut read = std::pin::pin!(store.read_version(&s, &id));
    match read.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(Ok(Some(v))) => assert_eq!(v.value.expose(), b"inline"),
        other => panic!("{:?}", other.map(|r| r.map(|v| v.map(|v| v.meta)))),
    }
}

/// The child half of `two_processes_putting_concurrently`: does nothing unless the parent
/// set `ROTOR_STORE_TEST_CHILD` (path) and `ROTOR_STORE_TEST_KEY` (encoded master key).
#[test]
fn child_putter() {
    let (Ok(path), Ok(key)) = (
        std::env::var("ROTOR_STORE_TEST_CHILD"),
        std::env::var("ROTOR_STORE_TEST_KEY"),
    ) else {
        return;
    };
    let tag = std::env::var("ROTOR_STORE_TEST_TAG").unwrap_or_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let store = SqliteStore::open(
        Path::new(&path),
        MasterKey::from_encoded(&key).expect("key"),
    )
    .expect("open");
    let s = name("shared");
    for i in 0..200 {
        loop {
            let (_, c) = put_change(&s, format!("{tag}-{i}").as_bytes());
            match rt.block_on(store.apply(c)) {
                Ok(_) => break,
                Err(StoreError::Locked) => {}
                Err(other) => panic!("child {tag}: {other}"),
            }
        }
    }
}

#[tokio::test]
async fn two_processes_putting_concurrently() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rotor.db");
    let key = MasterKey::generate().expect("key");
    let encoded = key.encode();
    drop(SqliteStore::create(&path, key, "init").expect("create"));
    let exe = std::env::current_exe().expect("test binary");
    let children: Vec<_> = ["p1", "p2"]
        .into_iter()
        .map(|tag| {
            std::process::Command::new(&exe)
                .args(["--exact", "child_putter", "--test-threads", "1"])
                .env("ROTOR_STORE_TEST_CHILD", &path)
                .env("ROTOR_STORE_TEST_KEY", encoded.expose_secret())
                .env("ROTOR_STORE_TEST_TAG", tag)
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("spawn child")
        })
        .collect();
    for mut c in children {
        assert!(c.wait().expect("wait").success(), "a child failed");
    }
    let store = SqliteStore::open(
        &path,
        MasterKey::from_encoded(encoded.expose_secret()).expect("key"),
    )
    .expect("open");
    let s = name("shared");
    let versions = store.versions(&s).await.expect("versions");
    assert_eq!(versions.len(), 400);
    assert_eq!(versions.iter().filter(|v| v.has(Stage::Current)).count(), 1);
    assert_eq!(
        versions.iter().filter(|v| v.has(Stage::Previous)).count(),
        1
    );
    assert!(
        versions[0].has(Stage::Current),
        "the last committed put is current"
    );
    assert!(versions[1].has(Stage::Previous));
    assert_eq!(
        verify_chain(&store.audit_all().await.expect("audit")),
        Ok(401)
    );
}

/// The child half of `a_crashed_writer_leaves_a_wal_that_a_refused_open_does_not_touch`:
/// puts five values and dies without closing the store (like SIGKILL).
#[test]
fn child_crasher() {
    let (Ok(path), Ok(key)) = (
        std::env::var("ROTOR_STORE_TEST_CRASH"),
        std::env::var("ROTOR_STORE_TEST_KEY"),
    ) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let settings = Settings {
        synchronous: rotor_store_sqlite::Synchronous::Normal,
        ..Settings::default()
    };
    let store = SqliteStore::open_with(
        Path::new(&path),
        MasterKey::from_encoded(&key).expect("key"),
        settings,
    )
    .expect("open");
    for i in 0..5 {
        let (_, c) = put_change(&name("crashy"), format!("v{i}").as_bytes());
        rt.block_on(store.apply(c)).expect("put");
    }
    std::process::abort();
}

#[tokio::test]
async fn a_crashed_writer_leaves_a_wal_that_a_refused_open_does_not_touch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rotor.db");
    let key = MasterKey::generate().expect("key");
    let encoded = key.encode();
    drop(SqliteStore::create(&path, key, "init").expect("create"));
    let status = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "child_crasher", "--test-threads", "1"])
        .env("ROTOR_STORE_TEST_CRASH", &path)
        .env("ROTOR_STORE_TEST_KEY", encoded.expose_secret())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run child");
    assert!(!status.success(), "the child aborts");
    assert!(
        std::fs::metadata(wal(&path)).is_ok_and(|m| m.len() > 0),
        "the crash left a WAL"
    );
    let before = std::fs::read(&path).expect("read");
    let err = SqliteStore::open(&path, MasterKey::generate().expect("key")).expect_err("wrong key");
    assert!(matches!(err, StoreError::WrongMasterKey { .. }), "{err:?}");
    assert!(
        std::fs::read(&path).expect("read") == before,
        "no checkpoint on a refused open"
    );
    // Everything the crashed process committed is there (synchronous=NORMAL survives a crash).
    let store = SqliteStore::open(
        &path,
        MasterKey::from_encoded(encoded.expose_secret()).expect("key"),
    )
    .expect("open");
    let current = store
        .read_stage(&name("crashy"), Stage::Current)
        .await
        .expect("read")
        .expect("current");
    assert_eq!(current.value.expose(), b"v4");
    assert_eq!(
        verify_chain(&store.audit_all().await.expect("audit")),
        Ok(6)
    );
}
