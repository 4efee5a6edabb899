//! What the SQLite store's test files share: fresh stores, as themselves and as the store
//! contract's factory.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use rotor_seal::MasterKey;
use rotor_store_sqlite::SqliteStore;
use rotor_test_support::store_contract::{ACTOR, StoreFactory, Subject, sqlite_files, sqlite_rows};

/// A new store file (made by [`ACTOR`]) in its own temporary directory.
pub fn new_store() -> (tempfile::TempDir, PathBuf, SqliteStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rotor.db");
    let store =
        SqliteStore::create(&path, MasterKey::generate().expect("key"), ACTOR).expect("create");
    (dir, path, store)
}

/// Fresh SQLite stores for the store contract, with their raw rows.
pub struct Sqlite;

impl StoreFactory for Sqlite {
    fn kind(&self) -> &str {
        "sqlite"
    }

    async fn fresh(&self) -> Subject {
        let (dir, path, store) = new_store();
        let files = path.clone();
        Subject::new(Arc::new(store), dir)
            .with_rows(move || sqlite_rows(&path))
            .with_files(move || sqlite_files(&files))
    }
}
