//! Helpers shared by the PostgreSQL store tests: a real throwaway server per test, and the
//! values and changes the tests write.
#![allow(dead_code)]

pub mod rotate;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rotor_seal::MasterKey;
use rotor_store_postgres::PgStore;
use rotor_test_support::Postgres;
use rotor_test_support::store_contract::{ACTOR, StoreFactory, Subject};
use secrecy::ExposeSecret;

/// The values, changes and rotations the tests write are the store contract's.
#[allow(unused_imports)] // each test file uses some of them
pub use rotor_test_support::store_contract::{name, new_version, put_change, rotation};

/// A real PostgreSQL 15 with an empty database `rotor`. Fails (never skips) without one.
pub struct Db {
    pub pg: Postgres,
    pub url: String,
}

pub fn db() -> Db {
    let pg = Postgres::start().expect("PostgreSQL 15 (run scripts/install-deps)");
    pg.create_db("rotor").expect("create database");
    let url = pg.url("rotor");
    Db { pg, url }
}

impl Db {
    pub fn psql(&self, sql: &str) -> String {
        self.pg.psql_db("rotor", sql).expect("psql")
    }

    /// Every row of every rotor table of database `rotor`: see [`dump`].
    pub fn dump(&self) -> String {
        dump(&self.pg, "rotor")
    }
}

/// Every row of every table of database `db`, as text (bytea as hex): a full dump for "was
/// anything written" and "is a value in there" checks.
pub fn dump(pg: &Postgres, db: &str) -> String {
    let psql = |sql: &str| pg.psql_db(db, sql).expect("psql");
    let tables =
        psql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename");
    let mut out = String::new();
    for t in tables.lines().filter(|t| !t.is_empty()) {
        out.push_str(&format!("== {t}\n"));
        out.push_str(&psql(&format!("SELECT t::text FROM \"{t}\" t ORDER BY 1")));
        out.push('\n');
    }
    out
}

/// Fresh PostgreSQL stores for the store contract: one server per test (started by
/// [`Pg::start`]), a new database per store, each with its rows ([`dump`]).
pub struct Pg {
    pg: Arc<Postgres>,
    made: AtomicUsize,
}

impl Pg {
    pub fn start() -> Pg {
        Pg {
            pg: Arc::new(Postgres::start().expect("PostgreSQL 15 (run scripts/install-deps)")),
            made: AtomicUsize::new(0),
        }
    }
}

impl StoreFactory for Pg {
    fn kind(&self) -> &str {
        "postgres"
    }

    async fn fresh(&self) -> Subject {
        let db = format!("rotor{}", self.made.fetch_add(1, Ordering::Relaxed));
        self.pg.create_db(&db).expect("create database");
        let store = PgStore::init(
            &self.pg.url(&db),
            MasterKey::generate().expect("key"),
            ACTOR,
        )
        .await
        .expect("init");
        let pg = self.pg.clone();
        Subject::new(Arc::new(store), ()).with_rows(move || dump(&pg, &db))
    }
}

/// `n` handles on one fresh master key (`MasterKey` is deliberately not `Clone`).
pub fn key_copies(n: usize) -> Vec<MasterKey> {
    let k = MasterKey::generate().expect("key");
    let encoded = k.encode();
    (0..n)
        .map(|_| MasterKey::from_encoded(encoded.expose_secret()).expect("same key"))
        .collect()
}

pub fn key_pair() -> (MasterKey, MasterKey) {
    let mut keys = key_copies(2);
    let b = keys.pop().expect("two");
    let a = keys.pop().expect("two");
    (a, b)
}

pub async fn new_store(db: &Db) -> PgStore {
    PgStore::init(&db.url, MasterKey::generate().expect("key"), "alice@host")
        .await
        .expect("init")
}
