//! A small connection pool: at most `size` clients, each with its own prepared-statement
//! cache, handed out behind a semaphore.
//!
//! WHY our own and not deadpool: the store needs two things a generic pool does not give
//! for free. A client whose work was cut off (the caller's future dropped mid-transaction,
//! e.g. an aborted task) may still be inside a transaction holding row locks, so it must
//! be closed, never reused: [`Lease::done`] marks the work complete, and a lease dropped
//! without it discards its client (the server then rolls the transaction back). And the
//! statement cache lives with the client, so a statement is prepared once per connection.

use std::collections::HashMap;
use std::sync::Mutex;

use rotor_tls::TlsFailure;
use rotor_tls::postgres::PgTls;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::{Client, Config, GenericClient, Statement};

/// Why a connection could not be had.
pub(crate) enum ConnectError {
    Pg(tokio_postgres::Error),
    /// TLS refused under the URL's sslmode: a configuration problem, explained.
    Tls(TlsFailure),
    /// The store's runtime is shutting down (the connecting task was cancelled).
    Stopped,
}

impl From<tokio_postgres::Error> for ConnectError {
    fn from(e: tokio_postgres::Error) -> Self {
        ConnectError::Pg(e)
    }
}

/// A connected client plus the statements prepared on it.
pub(crate) struct PgConn {
    pub(crate) client: Client,
    pub(crate) stmts: Stmts,
}

/// Prepared statements of one connection, by SQL text.
#[derive(Default)]
pub(crate) struct Stmts(HashMap<&'static str, Statement>);

impl Stmts {
    /// The statement for `sql`, prepared on first use through `c` (a client or a
    /// transaction on the same connection).
    pub(crate) async fn get<C: GenericClient>(
        &mut self,
        c: &C,
        sql: &'static str,
    ) -> Result<Statement, tokio_postgres::Error> {
        if let Some(s) = self.0.get(sql) {
            return Ok(s.clone());
        }
        let s = c.prepare(sql).await?;
        self.0.insert(sql, s.clone());
        Ok(s)
    }
}

pub(crate) struct Pool {
    config: Config,
    tls: PgTls,
    /// SQL run once on every new connection (session settings).
    setup: String,
    idle: Mutex<Vec<PgConn>>,
    permits: Semaphore,
    /// The runtime the store was opened on: connections are made and driven there, whichever
    /// runtime asks for one. WHY: `rotor serve` answers HTTP on a thread of its own; a
    /// connection opened by a request and driven by that thread would make the scheduler's
    /// queries (lease renewals among them) wait on the API's queue.
    runtime: Option<tokio::runtime::Handle>,
}

/// One client taken from the pool. Returned on drop only after [`Lease::done`].
pub(crate) struct Lease<'a> {
    pool: &'a Pool,
    conn: Option<PgConn>,
    clean: bool,
    _permit: SemaphorePermit<'a>,
}

impl Pool {
    pub(crate) fn new(config: Config, tls: PgTls, setup: String, size: usize) -> Self {
        Self {
            config,
            tls,
            setup,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(size.max(1)),
            runtime: tokio::runtime::Handle::try_current().ok(),
        }
    }

    /// Opens a new connection (its socket and driver task on the store's runtime, see
    /// `runtime`). Errors surface on the client's next call; nothing is logged (nothing that
    /// could carry a value).
    pub(crate) async fn connect(&self) -> Result<PgConn, ConnectError> {
        let connected = match &self.runtime {
            Some(rt) => {
                let (tls, config) = (self.tls.clone(), self.config.clone());
                match rt.spawn(async move { tls.connect(&config).await }).await {
                    Ok(connected) => connected,
                    // A panic while connecting stays a panic, as when connecting in place.
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    Err(_) => return Err(ConnectError::Stopped),
                }
            }
            None => self.tls.connect(&self.config).await,
        };
        let client = match connected {
            Ok(c) => c,
            Err(e) => {
                return Err(self
                    .tls
                    .explain(&e)
                    .map_or(ConnectError::Pg(e), ConnectError::Tls));
            }
        };
        client.batch_execute(&self.setup).await?;
        Ok(PgConn {
            client,
            stmts: Stmts::default(),
        })
    }

    /// Waits for a free slot, then reuses an idle client or connects a new one.
    pub(crate) async fn get(&self) -> Result<Lease<'_>, ConnectError> {
        let permit = match self.permits.acquire().await {
            Ok(p) => p,
            // The semaphore is never closed.
            Err(_) => unreachable!("pool semaphore closed"),
        };
        let reused = loop {
            let next = match self.idle.lock() {
                Ok(mut idle) => idle.pop(),
                Err(poisoned) => poisoned.into_inner().pop(),
            };
            match next {
                Some(c) if c.client.is_closed() => continue,
                other => break other,
            }
        };
        let conn = match reused {
            Some(c) => c,
            None => self.connect().await?,
        };
        Ok(Lease {
            pool: self,
            conn: Some(conn),
            clean: false,
            _permit: permit,
        })
    }
}

impl Lease<'_> {
    pub(crate) fn conn(&mut self) -> &mut PgConn {
        match self.conn.as_mut() {
            Some(c) => c,
            None => unreachable!("a pool lease holds its client until dropped"),
        }
    }

    /// The work finished (committed or rolled back): the client may be reused.
    pub(crate) fn done(mut self) {
        self.clean = true;
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        if !self.clean || conn.client.is_closed() {
            // Dropping the client closes the connection; the server rolls back whatever
            // transaction it was in and releases its locks.
            return;
        }
        match self.pool.idle.lock() {
            Ok(mut idle) => idle.push(conn),
            Err(poisoned) => poisoned.into_inner().push(conn),
        }
    }
}
