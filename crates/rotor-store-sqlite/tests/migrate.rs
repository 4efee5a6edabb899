//! `rotor store migrate` between SQLite stores: the shared migrate cases of the store
//! contract (`rotor_test_support::store_contract`), SQLite into SQLite under another
//! master key. Migrations to and from the other stores run in their crates' tests.

mod common;

mod sqlite_to_sqlite {
    use super::common::Sqlite;
    rotor_test_support::store_migrate_tests!(Sqlite, Sqlite);
}
