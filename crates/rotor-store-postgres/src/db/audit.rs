//! The audit log: appending records after the locked head row (each with its MAC) and
//! reading it back.

use jiff::Timestamp;
use rotor_core::audit::{AuditEvent, KEYED, Verified, verify_keyed};
use rotor_core::{AuditRecord, RotationId, SecretName, StoreError, VersionId};
use rotor_seal::AuditKey;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Transaction};

use super::{Fail, Result, exec, get, parse_name, parse_ts, parse_vid, q, q_opt};
use crate::Ctx;
use crate::pool::{PgConn, Stmts};

/// How long a transaction waits for the audit head before it is run again (`SET LOCAL`, so
/// only for the rest of that transaction: the head lock is the last one it takes).
const HEAD_LOCK_WAIT_SQL: &str = "SET LOCAL lock_timeout = 250";

/// Appends `events` after the chain's head, which it locks first (see the module docs).
/// `time` defaults to the clock read after the lock, so record times follow `seq`. Each
/// record is authenticated under `key` (its MAC covers the previous record's, kept in the
/// head row): computed under the head lock, microseconds.
pub(crate) async fn append_audit(
    ctx: &Ctx,
    key: &AuditKey,
    tx: &Transaction<'_>,
    stmts: &mut Stmts,
    time: Option<Timestamp>,
    events: &[AuditEvent],
) -> Result<Vec<AuditRecord>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    // The head is held for microseconds by a healthy process, so a long wait means its
    // holder (or a queue ahead of us) is stalled: give up after HEAD_LOCK_WAIT and run the
    // whole transaction again (`Fail::Retry`, bounded by the store's retries) rather than
    // queue. WHY: a waiter whose own process is stopped would otherwise be granted the lock
    // in its turn and hold it, idle, until the server ends its session; giving up keeps a
    // stopped replica from holding the head more than once.
    tx.batch_execute(HEAD_LOCK_WAIT_SQL)
        .await
        .map_err(|e| ctx.pg(e))?;
    let head = match q_opt(
        ctx,
        tx,
        stmts,
        "SELECT seq, hash, mac FROM rotor_audit_head WHERE singleton FOR UPDATE",
        &[],
    )
    .await
    {
        Err(Fail::Store(StoreError::Locked)) => return Err(Fail::Retry),
        other => other?,
    }
    .ok_or_else(|| ctx.corrupt("the audit head row is missing".into()))?;
    let mut seq = u64::try_from(get::<i64>(ctx, &head, 0)?).unwrap_or(0);
    let mut prev: String = get(ctx, &head, 1)?;
    let mut prev_mac: Option<String> = get(ctx, &head, 2)?;
    let now = time.unwrap_or_else(Timestamp::now);
    let mut out = Vec::with_capacity(events.len());
    for event in events {
        seq += 1;
        let link = (seq > 1).then_some((prev.as_str(), prev_mac.as_deref()));
        let rec = AuditRecord::chain_keyed(seq, now, event.clone(), link, |d| key.tag(d));
        insert_audit(ctx, tx, stmts, &rec).await?;
        prev.clone_from(&rec.hash);
        prev_mac.clone_from(&rec.mac);
        out.push(rec);
    }
    exec(
        ctx,
        tx,
        stmts,
        "UPDATE rotor_audit_head SET seq = $1, hash = $2, mac = $3 WHERE singleton",
        &[&i64::try_from(seq).unwrap_or(i64::MAX), &prev, &prev_mac],
    )
    .await?;
    Ok(out)
}

/// Writes one audit record as it is (the head row is the caller's business).
pub(super) async fn insert_audit(
    ctx: &Ctx,
    tx: &Transaction<'_>,
    stmts: &mut Stmts,
    rec: &AuditRecord,
) -> Result<()> {
    let versions: Vec<&str> = rec.event.versions.iter().map(VersionId::as_str).collect();
    exec(
        ctx,
        tx,
        stmts,
        "INSERT INTO rotor_audit (seq, time, actor, action, secret, versions, rotation, reason, outcome, prev_hash, hash, mac)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        &[
            &i64::try_from(rec.seq).unwrap_or(i64::MAX),
            &rec.time.to_string(),
            &rec.event.actor,
            &rec.event.action,
            &rec.event.secret.as_ref().map(SecretName::as_str),
            &versions,
            &rec.event.rotation.as_ref().map(RotationId::as_str),
            &rec.event.reason,
            &rec.event.outcome,
            &rec.prev_hash,
            &rec.hash,
            &rec.mac,
        ],
    )
    .await
    .map(drop)
}

pub(super) fn audit_row(ctx: &Ctx, row: &Row) -> Result<AuditRecord> {
    let seq: i64 = get(ctx, row, 0)?;
    let time: String = get(ctx, row, 1)?;
    let secret: Option<String> = get(ctx, row, 4)?;
    let versions: Vec<String> = get(ctx, row, 5)?;
    let rotation: Option<String> = get(ctx, row, 6)?;
    Ok(AuditRecord {
        seq: u64::try_from(seq).unwrap_or(0),
        time: parse_ts(ctx, &time)?,
        event: AuditEvent {
            actor: get(ctx, row, 2)?,
            action: get(ctx, row, 3)?,
            secret: secret.map(|s| parse_name(ctx, &s)).transpose()?,
            versions: versions
                .iter()
                .map(|v| parse_vid(ctx, v))
                .collect::<Result<_>>()?,
            rotation: rotation.map(RotationId::from_stored),
            reason: get(ctx, row, 7)?,
            outcome: get(ctx, row, 8)?,
        },
        prev_hash: get(ctx, row, 9)?,
        hash: get(ctx, row, 10)?,
        mac: get(ctx, row, 11)?,
    })
}

async fn audit_list(
    ctx: &Ctx,
    conn: &mut PgConn,
    sql: &'static str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<AuditRecord>> {
    let PgConn { client, stmts } = conn;
    let rows = q(ctx, &*client, stmts, sql, params).await?;
    rows.iter().map(|r| audit_row(ctx, r)).collect()
}

pub(crate) async fn audit_tail(ctx: &Ctx, conn: &mut PgConn, n: usize) -> Result<Vec<AuditRecord>> {
    let n = i64::try_from(n).unwrap_or(i64::MAX);
    let mut out = audit_list(
        ctx,
        conn,
        "SELECT seq, time, actor, action, secret, versions, rotation, reason, outcome, prev_hash, hash, mac
         FROM rotor_audit ORDER BY seq DESC LIMIT $1",
        &[&n],
    )
    .await?;
    out.reverse();
    Ok(out)
}

/// The record from which MACs apply under the store's (new) key.
pub(crate) fn keyed_event(reason: &str) -> AuditEvent {
    AuditEvent::new("rotor", KEYED).reason(Some(reason))
}

/// The whole log (one read) and its check under the store's record key.
pub(crate) async fn audit_verify(ctx: &Ctx, conn: &mut PgConn) -> Result<Verified> {
    let records = audit_all(ctx, conn).await?;
    let outcome = verify_keyed(&records, |data, mac| ctx.records.verify(data, mac));
    Ok(Verified { records, outcome })
}

pub(crate) async fn audit_all(ctx: &Ctx, conn: &mut PgConn) -> Result<Vec<AuditRecord>> {
    audit_list(
        ctx,
        conn,
        "SELECT seq, time, actor, action, secret, versions, rotation, reason, outcome, prev_hash, hash, mac
         FROM rotor_audit ORDER BY seq",
        &[],
    )
    .await
}
