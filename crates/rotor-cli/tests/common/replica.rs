//! `rotor serve` replicas on one PostgreSQL store, and counting what they did from its tables.

use std::process::{Child, Stdio};

use rotor_test_support::Postgres;

use super::Env;

/// The single number a `SELECT count(*) …` on the store's database returns.
pub fn count(pg: &Postgres, sql: &str) -> usize {
    pg.psql_db("rotor", sql)
        .expect("psql")
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// A `rotor serve` replica of `env`'s config, the store's password in `PGPW`.
pub fn serve(env: &Env, pw: &str) -> Child {
    env.command(&["serve", "--listen", "127.0.0.1:0"])
        .env("PGPW", pw)
        .env("ROTOR_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn rotor serve")
}
