//! A throwaway PostgreSQL server for scripts (`scripts/bench-replicas`), started exactly as
//! the tests start theirs ([`Postgres::start`]).
//!
//! Creates the databases named as arguments, prints `PORT PASSWORD` as its first line, then
//! reads one SQL statement per line on stdin and prints its result (`psql -At`, fields split by
//! `|`) as one line each (`ERROR: …` when it fails). Stops and removes the server when stdin
//! closes. The password goes only to stdout, which the caller reads through a pipe.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use rotor_test_support::Postgres;

fn main() -> ExitCode {
    let pg = match Postgres::start() {
        Ok(pg) => pg,
        Err(e) => {
            eprintln!("pg-server: {e}");
            return ExitCode::FAILURE;
        }
    };
    for db in std::env::args().skip(1) {
        if let Err(e) = pg.create_db(&db) {
            eprintln!("pg-server: create database {db}: {e}");
            return ExitCode::FAILURE;
        }
    }
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{} {}", pg.port(), pg.admin_password())
        .and_then(|()| out.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let Some((db, sql)) = line.split_once(' ') else {
            continue;
        };
        let answer = match pg.psql_db(db, sql) {
            Ok(text) => text.replace('\n', " "),
            Err(e) => format!("ERROR: {}", e.to_string().replace('\n', " ")),
        };
        if writeln!(out, "{answer}")
            .and_then(|()| out.flush())
            .is_err()
        {
            break;
        }
    }
    ExitCode::SUCCESS
}
