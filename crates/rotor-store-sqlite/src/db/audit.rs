//! The audit log: appending records to the hash chain (each with its MAC) and reading it
//! back.

use std::path::Path;

use jiff::Timestamp;
use rotor_core::audit::{AuditEvent, KEYED, Verified, verify_keyed};
use rotor_core::{AuditRecord, RotationId, SecretName, StoreError};
use rotor_seal::AuditKey;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};

use super::{Result, corrupt, is_unique_violation, parse_name, parse_ts, parse_vid, ts};
use crate::{Ctx, sql_err};

/// The audit `INSERT` of one record with every column.
pub(super) const INSERT_AUDIT: &str = "INSERT INTO audit (seq, time, actor, action, secret, versions, rotation, reason, outcome, prev_hash, hash, mac)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";

/// The record from which MACs apply under the store's (new) key.
pub(crate) fn keyed_event(reason: &str) -> AuditEvent {
    AuditEvent::new("rotor", KEYED).reason(Some(reason))
}

/// Appends `events` to the chain: seq = previous max + 1, prev = previous record's hash,
/// each authenticated under `key` (its MAC covers the previous record's MAC). Runs inside
/// the write transaction that orders `seq`; the MACs add microseconds.
pub(crate) fn append_audit(
    tx: &Transaction<'_>,
    path: &Path,
    key: &AuditKey,
    now: Timestamp,
    events: Vec<AuditEvent>,
) -> Result<Vec<AuditRecord>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let e = |e| sql_err(path, e);
    let last: Option<(i64, String, Option<String>)> = tx
        .prepare_cached("SELECT seq, hash, mac FROM audit ORDER BY seq DESC LIMIT 1")
        .and_then(|mut s| {
            s.query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()
        })
        .map_err(e)?;
    let (mut seq, mut prev) = match last {
        Some((seq, hash, mac)) => (u64::try_from(seq).unwrap_or(0), Some((hash, mac))),
        None => (0, None),
    };
    let mut stmt = tx.prepare_cached(INSERT_AUDIT).map_err(e)?;
    let mut out = Vec::with_capacity(events.len());
    for event in events {
        seq += 1;
        let rec = AuditRecord::chain_keyed(
            seq,
            now,
            event,
            prev.as_ref().map(|(h, m)| (h.as_str(), m.as_deref())),
            |data| key.tag(data),
        );
        insert_audit(&mut stmt, path, &rec)?;
        prev = Some((rec.hash.clone(), rec.mac.clone()));
        out.push(rec);
    }
    Ok(out)
}

/// Writes one audit record as it is (`stmt` is the audit `INSERT`).
pub(super) fn insert_audit(
    stmt: &mut rusqlite::CachedStatement<'_>,
    path: &Path,
    rec: &AuditRecord,
) -> Result<()> {
    let versions = serde_json::to_string(&rec.event.versions)
        .map_err(|err| StoreError::Backend(format!("cannot encode audit versions: {err}")))?;
    stmt.execute(params![
        i64::try_from(rec.seq).unwrap_or(i64::MAX),
        ts(&rec.time),
        rec.event.actor,
        rec.event.action,
        rec.event.secret.as_ref().map(SecretName::as_str),
        versions,
        rec.event.rotation.as_ref().map(RotationId::as_str),
        rec.event.reason,
        rec.event.outcome,
        rec.prev_hash,
        rec.hash,
        rec.mac,
    ])
    .map(drop)
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::Backend(format!("audit record #{} appears twice", rec.seq))
        } else {
            sql_err(path, e)
        }
    })
}

pub(super) const AUDIT_COLS: &str =
    "seq, time, actor, action, secret, versions, rotation, reason, outcome, prev_hash, hash, mac";

fn audit_row(path: &Path, row: &Row<'_>) -> Result<AuditRecord> {
    let e = |e| sql_err(path, e);
    let seq: i64 = row.get(0).map_err(e)?;
    let time: String = row.get(1).map_err(e)?;
    let secret: Option<String> = row.get(4).map_err(e)?;
    let versions: String = row.get(5).map_err(e)?;
    let versions: Vec<String> = serde_json::from_str(&versions).map_err(|err| {
        corrupt(
            path,
            format!("audit record #{seq}: bad version list: {err}"),
        )
    })?;
    let rotation: Option<String> = row.get(6).map_err(e)?;
    Ok(AuditRecord {
        seq: u64::try_from(seq).unwrap_or(0),
        time: parse_ts(path, &time)?,
        event: AuditEvent {
            actor: row.get(2).map_err(e)?,
            action: row.get(3).map_err(e)?,
            secret: secret.map(|s| parse_name(path, &s)).transpose()?,
            versions: versions
                .iter()
                .map(|v| parse_vid(path, v))
                .collect::<Result<_>>()?,
            rotation: rotation.map(RotationId::from_stored),
            reason: row.get(7).map_err(e)?,
            outcome: row.get(8).map_err(e)?,
        },
        prev_hash: row.get(9).map_err(e)?,
        hash: row.get(10).map_err(e)?,
        mac: row.get(11).map_err(e)?,
    })
}

pub(super) fn audit_list(
    conn: &Connection,
    path: &Path,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<AuditRecord>> {
    let e = |e| sql_err(path, e);
    let mut stmt = conn.prepare_cached(sql).map_err(e)?;
    let mut rows = stmt.query(params).map_err(e)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(e)? {
        out.push(audit_row(path, row)?);
    }
    Ok(out)
}

pub(crate) fn audit_tail(ctx: &Ctx, conn: &mut Connection, n: usize) -> Result<Vec<AuditRecord>> {
    let n = i64::try_from(n).unwrap_or(i64::MAX);
    let mut out = audit_list(
        conn,
        &ctx.path,
        &format!("SELECT {AUDIT_COLS} FROM audit ORDER BY seq DESC LIMIT ?1"),
        [n],
    )?;
    out.reverse();
    Ok(out)
}

pub(crate) fn audit_all(ctx: &Ctx, conn: &mut Connection) -> Result<Vec<AuditRecord>> {
    audit_list(
        conn,
        &ctx.path,
        &format!("SELECT {AUDIT_COLS} FROM audit ORDER BY seq"),
        [],
    )
}

/// The whole log (one read) and its check under the store's record key.
pub(crate) fn audit_verify(ctx: &Ctx, conn: &mut Connection) -> Result<Verified> {
    let records = audit_all(ctx, conn)?;
    let outcome = verify_keyed(&records, |data, mac| ctx.records.verify(data, mac));
    Ok(Verified { records, outcome })
}
