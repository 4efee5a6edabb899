//! Real servers for rotor's integration tests.
//!
//! Everything here starts a **real** server process — never a mock:
//!
//! * [`Postgres`]: a throwaway PostgreSQL 15 cluster (`initdb` + `pg_ctl`, run as the
//!   `postgres` user through `runuser` when the tests run as root) with SCRAM-SHA-256
//!   authentication over TCP and a random password for the superuser `postgres`.
//! * [`Redis`]: a `redis-server` (7.x) whose admin is the **`default` user** with a random
//!   password, optionally started with an ACL file so that `ACL SAVE` works.
//! * [`Moto`]: moto's AWS emulator server (used for AWS Secrets Manager).
//! * [`Nginx`]: nginx with one location behind HTTP basic auth (an htpasswd file), for
//!   the reference command plugin.
//! * [`Sshd`]: OpenSSH's sshd as the current user, public keys from one authorized_keys
//!   file, for the second reference plugin (`examples/plugins/ssh-authorized-keys`).
//! * [`GithubApi`]: a loopback stand-in for GitHub's Actions secrets API that decrypts what
//!   it is sent with PyNaCl (GitHub itself cannot be reached from tests).
//! * [`TestCa`]: a CA made at test time that issues server and client certificates, for
//!   [`Postgres::start_tls`] (`ssl=on`, TLS-only `pg_hba.conf`) and [`Redis::start_tls`]
//!   (`--tls-port` only).
//! * [`TcpProxy`]: a small TCP proxy in front of any of them, to cut the network in the
//!   middle of a rotation step.
//! * [`store_contract`]: the `Store` contract written once, run for every store (the
//!   cases, the `store_contract_tests!`/`store_migrate_tests!` macros that make one test
//!   per case; the using crate needs `tokio` with `macros` and `rt-multi-thread`).
//!
//! Every instance listens on its own free port on 127.0.0.1 and keeps its data in its own
//! temporary directory, so tests can run in parallel. Dropping an instance stops the
//! server and removes its directory.
//!
//! The binaries come from the Debian packages and the Python venv that
//! `scripts/install-deps` installs; `scripts/test` exports where they are:
//!
//! * `ROTOR_PG_BIN`: PostgreSQL server binaries (default `/usr/lib/postgresql/15/bin`);
//! * `ROTOR_MOTO_SERVER`: moto's `moto_server` script, or else `ROTOR_PYTHON` with
//!   `-m moto.server`; both fall back to the repository's `.venv`;
//! * `redis-server` and `redis-cli` are taken from `PATH`.
//!
//! A missing binary is an error (with a hint to run `scripts/install-deps`), never a skip:
//! a test that needs a server fails when the server cannot be had.
//!
//! Starting and dropping block the calling thread (about a second for PostgreSQL); that
//! is fine inside `#[tokio::test]` too. Servers left behind by a test process that was
//! killed (not unwound) are not cleaned up: their directories are `/tmp/rotor-pg-*`,
//! `$TMPDIR/rotor-redis-*` and `$TMPDIR/rotor-moto-*`.
//!
//! ```no_run
//! use rotor_test_support::{Postgres, Redis, TcpProxy};
//!
//! let pg = Postgres::start().expect("PostgreSQL 15 (run scripts/install-deps)");
//! pg.create_db("app").expect("create database");
//! pg.psql("CREATE ROLE svc LOGIN PASSWORD 'old'").expect("create role");
//! // Point the code under test at the proxy, then cut the network mid-step:
//! let proxy = TcpProxy::start(pg.addr()).expect("proxy");
//! let url = format!("postgres://postgres:{}@127.0.0.1:{}/app", pg.admin_password(), proxy.port());
//! # let _ = url;
//! proxy.cut_all();
//! assert_eq!(pg.psql_as("svc", "old", "app", "SELECT current_user").expect("login"), "svc");
//!
//! let redis = Redis::start().expect("Redis (run scripts/install-deps)");
//! redis.cli(&["ACL", "SETUSER", "app", "on", ">p1", ">p2", "~*", "+@all"]).expect("ACL");
//! let replies = redis.cli_session("AUTH app p2\nACL WHOAMI\n").expect("session");
//! assert_eq!(replies.lines().collect::<Vec<_>>(), ["OK", "app"]);
//! ```

mod github;
mod moto;
mod net;
mod nginx;
mod postgres;
mod process;
mod proxy;
mod redis;
mod sshd;
pub mod store_contract;
mod tls;

pub use github::GithubApi;
pub use moto::{Moto, python};
pub use net::{free_port, wait_for_port};
pub use nginx::Nginx;
pub use postgres::Postgres;
pub use proxy::TcpProxy;
pub use redis::Redis;
pub use sshd::Sshd;
pub use tls::{CertFiles, TestCa};

/// What can go wrong while starting or talking to a test server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A binary the tests need is not installed.
    #[error("{0}")]
    MissingTool(String),
    /// An I/O operation on the test environment failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A server did not come up; `log_tail` holds the end of its log.
    #[error("{server} did not start: {reason}\n--- last lines of {server}'s log ---\n{log_tail}")]
    Start {
        /// Which server.
        server: &'static str,
        /// Why it is considered failed.
        reason: String,
        /// The last lines of the server's log file.
        log_tail: String,
    },
    /// A client command (`psql`, `redis-cli`, `pg_ctl`, …) failed.
    #[error("{command} failed: {detail}")]
    Command {
        /// The command (without secrets).
        command: String,
        /// Exit status and output.
        detail: String,
    },
    /// Waiting for something took longer than allowed.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was waited for.
        what: String,
        /// How long was waited.
        after: std::time::Duration,
    },
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}

/// A random password of 32 lowercase hex characters (128 bits), safe to put in URLs,
/// command lines of SQL and Redis ACL rules without quoting.
pub fn random_password() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::io("reading random bytes", std::io::Error::other(e.to_string())))?;
    Ok(hex::encode(bytes))
}
