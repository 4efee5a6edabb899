//! The SQL behind each [`rotor_core::Store`] method.
//!
//! Writes run in READ COMMITTED transactions that take their locks explicitly, always in
//! the same order (so they queue instead of deadlocking or failing at commit):
//!
//! 1. one transaction-scoped advisory lock per secret the change touches, in name order
//!    (`pg_advisory_xact_lock(SECRET_LOCK_CLASS, hashtext(secret))`): stage moves,
//!    `BeginRotation`'s "no other running rotation" check and the insert that follows are
//!    one critical section per secret, across replicas;
//! 2. the fenced rotation's row, `SELECT … FOR UPDATE` (also taken by `claim`), so a lease
//!    cannot change between the fence check and the commit;
//! 3. last, the single `rotor_audit_head` row, `FOR UPDATE`, held only for the few inserts
//!    that append the change's audit records: the chain is one total order across
//!    replicas, and the global serialization point is as short as it can be.
//!
//! Reads are single statements (one snapshot each) or, for `summaries`, a REPEATABLE READ
//! read-only transaction.
//!
//! One file per concept: [`write`] (applying a change: versions and stages), [`rotation`]
//! (rotation rows and leases), [`audit`] (the hash-chained log), [`read`] and [`dump`]
//! (export and import). The statement helpers (`q`, `q_opt`, `exec`, `get`) are here.

use jiff::Timestamp;
use rotor_core::{SecretName, StoreError, VersionId};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, Row};

use crate::Ctx;
use crate::pool::Stmts;

mod audit;
mod dump;
mod read;
mod rotation;
mod write;

pub(crate) use audit::{append_audit, audit_all, audit_tail, audit_verify, keyed_event};
pub(crate) use dump::{export, import};
pub(crate) use read::{
    open_rotations, owed_rollbacks, read_stage, read_version, rotation, rotations, summaries,
    versions,
};
pub(crate) use rotation::claim;
pub(crate) use write::apply;

/// First key of the per-secret advisory locks ("Rots"); the second is `hashtext(secret)`.
/// A hash collision only makes two secrets share a lock.
pub(crate) const SECRET_LOCK_CLASS: i32 = 0x526f_7473;

/// Why a transaction did not commit.
#[derive(Debug)]
pub(crate) enum Fail {
    /// A serialization failure or deadlock: run the whole transaction again.
    Retry,
    Store(StoreError),
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

type Result<T, E = Fail> = std::result::Result<T, E>;

impl Ctx {
    pub(crate) fn corrupt(&self, detail: String) -> StoreError {
        StoreError::Corrupt {
            path: self.target.clone(),
            detail,
        }
    }

    /// Maps a driver error. Never includes a DETAIL line (it can quote row contents).
    pub(crate) fn pg(&self, e: tokio_postgres::Error) -> Fail {
        if let Some(code) = e.code()
            && (*code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED)
        {
            return Fail::Retry;
        }
        Fail::Store(crate::pg_error(&self.target, &e))
    }
}

fn parse_ts(ctx: &Ctx, s: &str) -> Result<Timestamp> {
    s.parse().map_err(|e| {
        ctx.corrupt(format!("bad timestamp {s:?} in a row: {e}"))
            .into()
    })
}

fn parse_name(ctx: &Ctx, s: &str) -> Result<SecretName> {
    SecretName::new(s).map_err(|e| ctx.corrupt(format!("bad secret name in a row: {e}")).into())
}

fn parse_vid(ctx: &Ctx, s: &str) -> Result<VersionId> {
    VersionId::parse(s).ok_or_else(|| ctx.corrupt(format!("bad version id {s:?} in a row")).into())
}

fn unique_violation(e: &tokio_postgres::Error) -> Option<String> {
    let db = e.as_db_error()?;
    (*db.code() == SqlState::UNIQUE_VIOLATION).then(|| db.constraint().unwrap_or("").to_owned())
}

/// Runs `sql` (prepared once per connection) and returns its rows.
async fn q<C: GenericClient + Sync>(
    ctx: &Ctx,
    tx: &C,
    stmts: &mut Stmts,
    sql: &'static str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>> {
    let st = stmts.get(tx, sql).await.map_err(|e| ctx.pg(e))?;
    tx.query(&st, params).await.map_err(|e| ctx.pg(e))
}

async fn q_opt<C: GenericClient + Sync>(
    ctx: &Ctx,
    tx: &C,
    stmts: &mut Stmts,
    sql: &'static str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<Row>> {
    Ok(q(ctx, tx, stmts, sql, params).await?.into_iter().next())
}

async fn exec<C: GenericClient + Sync>(
    ctx: &Ctx,
    tx: &C,
    stmts: &mut Stmts,
    sql: &'static str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64> {
    let st = stmts.get(tx, sql).await.map_err(|e| ctx.pg(e))?;
    tx.execute(&st, params).await.map_err(|e| ctx.pg(e))
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(ctx: &Ctx, row: &'a Row, i: usize) -> Result<T> {
    row.try_get(i).map_err(|e| {
        ctx.corrupt(format!("unexpected column {i} in a row: {e}"))
            .into()
    })
}
