//! The SQL behind each [`rotor_core::Store`] method, synchronous, on one connection.
//!
//! Writes run in one `BEGIN IMMEDIATE` transaction each (so concurrent writers serialize on
//! SQLite's lock instead of failing at commit); reads that take several queries run in one
//! deferred transaction so they see one snapshot.
//!
//! One file per concept: [`write`] (applying a change), [`rotation`] (rotation rows and
//! leases), [`audit`] (the hash-chained log), [`read`], [`rewrap`] (master-key rotation)
//! and [`dump`] (export and import).

use std::path::Path;

use jiff::Timestamp;
use rotor_core::{SecretName, StoreError, VersionId};
use rusqlite::Connection;

use crate::{Ctx, show, sql_err};

mod audit;
mod dump;
mod read;
mod rewrap;
mod rotation;
mod write;

pub(crate) use audit::{append_audit, audit_all, audit_tail, audit_verify, keyed_event};
pub(crate) use dump::{export, import};
pub(crate) use read::{
    open_rotations, owed_rollbacks, read_stage, read_version, rotation, rotations, summaries,
    versions,
};
pub(crate) use rewrap::{rewrap_batch, rewrap_finish};
pub(crate) use rotation::claim;
pub(crate) use write::apply;

type Result<T, E = StoreError> = std::result::Result<T, E>;

fn corrupt(path: &Path, detail: String) -> StoreError {
    StoreError::Corrupt {
        path: show(path),
        detail,
    }
}

fn ts(t: &Timestamp) -> String {
    // jiff prints as many fractional digits as needed (up to nanoseconds): exact round trip.
    t.to_string()
}

fn parse_ts(path: &Path, s: &str) -> Result<Timestamp> {
    s.parse()
        .map_err(|e| corrupt(path, format!("bad timestamp {s:?} in a row: {e}")))
}

fn parse_name(path: &Path, s: &str) -> Result<SecretName> {
    SecretName::new(s).map_err(|e| corrupt(path, format!("bad secret name in a row: {e}")))
}

fn parse_vid(path: &Path, s: &str) -> Result<VersionId> {
    VersionId::parse(s).ok_or_else(|| corrupt(path, format!("bad version id {s:?} in a row")))
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}

/// Runs `job` with `synchronous = FULL`, so its commit is fsynced before it returns, then
/// goes back to the connection's standing setting ([`crate::Synchronous`]). Going back is
/// not an error of the job, which has committed (or not) already: if it fails the
/// connection simply stays at FULL, which is slower but never less durable.
fn fsynced<T>(
    ctx: &Ctx,
    conn: &mut Connection,
    job: impl FnOnce(&mut Connection) -> Result<T>,
) -> Result<T> {
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|e| sql_err(&ctx.path, e))?;
    let result = job(conn);
    let _ = conn.pragma_update(None, "synchronous", ctx.synchronous.pragma());
    result
}
