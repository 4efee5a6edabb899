//! Connections: the target parsed from the secret's URL, fresh connections with a deadline,
//! and a cache of admin connections keyed by (url, user).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rotor_tls::postgres::PgTls;
use rotor_tls::{TlsError, TlsFailure};
use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config};

use rotor_core::Credential;
use rotor_core::SecretValue;

/// How long a connection attempt (TCP connect, startup, authentication) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one statement on an admin connection may take.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(15);

/// The server a secret lives on: its URL without credentials, and how to secure it.
#[derive(Clone)]
pub struct Target {
    url: String,
    config: Config,
    tls: PgTls,
    /// `host:port`, for messages.
    pub display: String,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("display", &self.display)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl Target {
    /// The url as configured (no credentials: [`Target::parse`] refuses a password).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// How connections to this target are secured (the probe reports it as its own check).
    pub fn tls(&self) -> &PgTls {
        &self.tls
    }

    /// Parses `postgres://host:port/dbname[?sslmode=...&sslrootcert=...]` as libpq would
    /// (see `rotor_tls`). The error text never repeats the URL (an operator may have
    /// pasted a password into it).
    pub fn parse(url: &str) -> Result<Self, String> {
        let (config, tls) = rotor_tls::postgres::parse_url(url).map_err(|e| match e {
            TlsError::Url(detail) => {
                format!("the url is not a PostgreSQL connection URL ({detail})")
            }
            other => format!("the url's TLS settings are unusable: {other}"),
        })?;
        if config.get_password().is_some() {
            return Err(
                "the url holds a password; rotor takes credentials from managed secrets only"
                    .into(),
            );
        }
        let host = match config.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            Some(Host::Unix(p)) => p.display().to_string(),
            None => "localhost".to_owned(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        Ok(Self {
            url: url.to_owned(),
            display: format!("{host}:{port}"),
            config,
            tls,
        })
    }
}

/// A failure talking to the server, before it is turned into a [`rotor_core::RotatorError`].
#[derive(Debug)]
pub enum PgFailure {
    Pg(tokio_postgres::Error),
    /// Our own deadline passed (`what` says which).
    Timeout(&'static str),
    /// TLS refused: a certificate that does not verify under the url's sslmode, or a
    /// server without TLS where the mode requires it. A configuration problem, never
    /// retried.
    Tls(TlsFailure),
}

impl From<tokio_postgres::Error> for PgFailure {
    fn from(e: tokio_postgres::Error) -> Self {
        PgFailure::Pg(e)
    }
}

impl PgFailure {
    /// The SQLSTATE the server answered with, if it answered.
    pub fn code(&self) -> Option<&str> {
        match self {
            PgFailure::Pg(e) => e.code().map(tokio_postgres::error::SqlState::code),
            PgFailure::Timeout(_) | PgFailure::Tls(_) => None,
        }
    }

    /// The server rejected the credential (wrong password, unknown role, NOLOGIN).
    pub fn is_auth(&self) -> bool {
        matches!(self.code(), Some("28P01" | "28000"))
    }

    /// A failure of the connection itself (no answer from the server).
    pub fn is_connection(&self) -> bool {
        match self {
            PgFailure::Pg(e) => e.as_db_error().is_none(),
            PgFailure::Timeout(_) => true,
            PgFailure::Tls(_) => false,
        }
    }
}

/// Opens a new connection as `cred`, within [`CONNECT_TIMEOUT`]. The connection's task
/// runs on the current tokio runtime and ends when the client is dropped.
pub async fn connect(target: &Target, cred: &Credential) -> Result<Client, PgFailure> {
    let mut config = target.config.clone();
    config
        .user(&cred.username)
        .password(cred.password().expose())
        .connect_timeout(CONNECT_TIMEOUT)
        .application_name("rotor");
    let result = tokio::time::timeout(CONNECT_TIMEOUT, target.tls.connect(&config)).await;
    drop(config);
    match result {
        Err(_) => Err(PgFailure::Timeout("connecting")),
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(target
            .tls
            .explain(&e)
            .map_or(PgFailure::Pg(e), PgFailure::Tls)),
    }
}

/// Runs `f` within [`STATEMENT_TIMEOUT`].
pub async fn deadline<T>(
    f: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, PgFailure> {
    match tokio::time::timeout(STATEMENT_TIMEOUT, f).await {
        Ok(r) => r.map_err(PgFailure::Pg),
        Err(_) => Err(PgFailure::Timeout("a statement")),
    }
}

struct Cached {
    password: SecretValue,
    client: Arc<Client>,
}

type Slot = Arc<tokio::sync::Mutex<Option<Cached>>>;

/// How many admin connections a pool keeps per (url, user). Several let `ALTER ROLE`s from
/// concurrent rotations run in parallel backends and share WAL flushes (each commit waits
/// for one), instead of queueing on one connection.
pub const ADMIN_CONNECTIONS: usize = 4;

/// Admin connections kept between calls: [`ADMIN_CONNECTIONS`] per (url, user), used in
/// turn. A cached connection is used only with the same password it was opened with
/// (compared in constant time), so a wrong admin credential is never masked by an older,
/// working connection.
#[derive(Default)]
pub struct Pool {
    slots: Mutex<HashMap<(String, String, usize), Slot>>,
    next: std::sync::atomic::AtomicUsize,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("Pool").field("connections", &n).finish()
    }
}

impl Pool {
    fn slot(&self, target: &Target, user: &str, shard: usize) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            slots
                .entry((target.url.clone(), user.to_owned(), shard))
                .or_default(),
        )
    }

    /// A live connection as `cred` from slot `shard`, and whether it was opened just now.
    async fn get(
        &self,
        target: &Target,
        cred: &Credential,
        shard: usize,
    ) -> Result<(Arc<Client>, bool), PgFailure> {
        let slot = self.slot(target, &cred.username, shard);
        let mut guard = slot.lock().await;
        if let Some(c) = guard.as_ref()
            && !c.client.is_closed()
            && c.password.ct_eq(cred.password())
        {
            return Ok((Arc::clone(&c.client), false));
        }
        *guard = None;
        let client = Arc::new(connect(target, cred).await?);
        *guard = Some(Cached {
            password: cred.password().clone(),
            client: Arc::clone(&client),
        });
        Ok((client, true))
    }

    async fn forget(&self, target: &Target, user: &str, shard: usize) {
        let slot = self.slot(target, user, shard);
        *slot.lock().await = None;
    }

    /// Runs `f` on a connection as `cred`. When a cached connection turns out dead (the
    /// server restarted, the network dropped it), it is replaced once and `f` runs again:
    /// every statement this crate sends is idempotent.
    pub async fn run<T, F, Fut>(
        &self,
        target: &Target,
        cred: &Credential,
        f: &F,
    ) -> Result<T, PgFailure>
    where
        F: Fn(Arc<Client>) -> Fut,
        Fut: Future<Output = Result<T, tokio_postgres::Error>>,
    {
        let shard =
            self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % ADMIN_CONNECTIONS;
        let mut retried = false;
        loop {
            let (client, fresh) = self.get(target, cred, shard).await?;
            match deadline(f(client)).await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_connection() => {
                    self.forget(target, &cred.username, shard).await;
                    // A dead cached connection is replaced once; a fresh one failing, or
                    // a timeout, is the answer.
                    if fresh || retried || matches!(e, PgFailure::Timeout(_)) {
                        return Err(e);
                    }
                    retried = true;
                }
                Err(e) => return Err(e),
            }
        }
    }
}
