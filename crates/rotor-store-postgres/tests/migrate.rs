//! `rotor store migrate` across stores on a real PostgreSQL: the shared migrate cases of
//! the store contract (`rotor_test_support::store_contract`) for SQLite → PostgreSQL,
//! PostgreSQL → SQLite and PostgreSQL → PostgreSQL (copy, refusals, all-or-nothing).

mod common;

use std::sync::Arc;

use rotor_seal::MasterKey;
use rotor_store_sqlite::SqliteStore;
use rotor_test_support::store_contract::{ACTOR, StoreFactory, Subject, sqlite_files, sqlite_rows};

/// Fresh SQLite stores, the other side of the migrations.
struct Sqlite;

impl StoreFactory for Sqlite {
    fn kind(&self) -> &str {
        "sqlite"
    }

    async fn fresh(&self) -> Subject {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rotor.db");
        let store =
            SqliteStore::create(&path, MasterKey::generate().expect("key"), ACTOR).expect("create");
        let files = path.clone();
        Subject::new(Arc::new(store), dir)
            .with_rows(move || sqlite_rows(&path))
            .with_files(move || sqlite_files(&files))
    }
}

mod sqlite_to_postgres {
    use super::Sqlite;
    use super::common::Pg;
    rotor_test_support::store_migrate_tests!(Sqlite, Pg::start());
}

mod postgres_to_sqlite {
    use super::Sqlite;
    use super::common::Pg;
    rotor_test_support::store_migrate_tests!(Pg::start(), Sqlite);
}

mod postgres_to_postgres {
    use super::common::Pg;
    rotor_test_support::store_migrate_tests!(Pg::start(), Pg::start());
}
