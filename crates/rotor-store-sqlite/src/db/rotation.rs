//! Rotation rows (indexed columns plus the JSON record) and the lease on them: `claim` is
//! the only way a lease token grows.

use std::path::Path;

use jiff::Timestamp;
use rotor_core::audit::AuditEvent;
use rotor_core::rotation::Lease;
use rotor_core::store::Takeover;
use rotor_core::{Rotation, RotationId, RotationStatus, SecretName, StoreError};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use super::audit::append_audit;
use super::{Result, corrupt, is_unique_violation, ts};
use crate::{Ctx, sql_err};

/// Inserts a rotation row (columns and JSON record) as it is.
pub(super) fn insert_rotation(tx: &Transaction<'_>, path: &Path, r: &Rotation) -> Result<()> {
    let json = rotation_json(r)?;
    tx.prepare_cached(
        "INSERT INTO rotations (id, secret, status, step, started_at, lease_owner, lease_token, record)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .and_then(|mut s| {
        s.execute(params![
            r.id.as_str(),
            r.secret.as_str(),
            r.status.as_str(),
            r.step.as_str(),
            ts(&r.started_at),
            r.lease.as_ref().map(|l| l.owner.as_str()),
            lease_token(r.lease.as_ref()),
            json,
        ])
    })
    .map(drop)
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::Backend(format!(
                "rotation {} already exists (or secret {} already has a running rotation)",
                r.id, r.secret
            ))
        } else {
            sql_err(path, e)
        }
    })
}

fn lease_token(lease: Option<&Lease>) -> i64 {
    lease.map_or(0, |l| i64::try_from(l.token).unwrap_or(i64::MAX))
}

fn rotation_json(r: &Rotation) -> Result<String> {
    serde_json::to_string(r)
        .map_err(|e| StoreError::Backend(format!("cannot encode rotation {}: {e}", r.id)))
}

pub(super) fn running_rotation(
    tx: &Transaction<'_>,
    path: &Path,
    secret: &SecretName,
) -> Result<Option<Rotation>> {
    let json: Option<String> = tx
        .prepare_cached(
            "SELECT record FROM rotations WHERE secret = ?1 AND status = 'running' LIMIT 1",
        )
        .and_then(|mut s| s.query_row([secret.as_str()], |r| r.get(0)).optional())
        .map_err(|e| sql_err(path, e))?;
    json.map(|j| decode_rotation(path, &j)).transpose()
}

pub(super) fn load_rotation(
    conn: &Connection,
    path: &Path,
    id: &RotationId,
) -> Result<Option<Rotation>> {
    let json: Option<String> = conn
        .prepare_cached("SELECT record FROM rotations WHERE id = ?1")
        .and_then(|mut s| s.query_row([id.as_str()], |r| r.get(0)).optional())
        .map_err(|e| sql_err(path, e))?;
    json.map(|j| decode_rotation(path, &j)).transpose()
}

pub(super) fn decode_rotation(path: &Path, json: &str) -> Result<Rotation> {
    serde_json::from_str(json).map_err(|e| corrupt(path, format!("bad rotation record: {e}")))
}

fn write_rotation(tx: &Transaction<'_>, path: &Path, r: &Rotation) -> Result<()> {
    let json = rotation_json(r)?;
    tx.prepare_cached(
        "UPDATE rotations SET status = ?2, step = ?3, started_at = ?4, lease_owner = ?5,
                lease_token = ?6, record = ?7
         WHERE id = ?1",
    )
    .and_then(|mut s| {
        s.execute(params![
            r.id.as_str(),
            r.status.as_str(),
            r.step.as_str(),
            ts(&r.started_at),
            r.lease.as_ref().map(|l| l.owner.as_str()),
            lease_token(r.lease.as_ref()),
            json,
        ])
    })
    .map(drop)
    .map_err(|e| sql_err(path, e))
}

/// Overwrites a rotation record. The lease is the one exception: it is owned by `claim`, so
/// the record's lease is taken only when it carries the stored token (an expiry renewal by
/// the holder); otherwise the stored lease is kept. So no write can move a token backwards
/// and re-validate a stale holder's fence.
pub(super) fn save_rotation(tx: &Transaction<'_>, path: &Path, mut r: Rotation) -> Result<()> {
    let Some(stored) = load_rotation(tx, path, &r.id)? else {
        return Err(StoreError::RotationNotFound {
            rotation: r.id.to_string(),
        });
    };
    if stored.secret != r.secret {
        return Err(StoreError::Backend(format!(
            "rotation {} belongs to secret {}, not {}",
            r.id, stored.secret, r.secret
        )));
    }
    if lease_token(r.lease.as_ref()) != lease_token(stored.lease.as_ref()) {
        r.lease = stored.lease;
    }
    if r.status == RotationStatus::Running
        && let Some(other) = running_rotation(tx, path, &r.secret)?
        && other.id != r.id
    {
        return Err(StoreError::busy(&other));
    }
    write_rotation(tx, path, &r)
}

pub(crate) fn claim(
    ctx: &Ctx,
    conn: &mut Connection,
    id: &RotationId,
    owner: &str,
    now: Timestamp,
    expires_at: Timestamp,
    takeover: Takeover,
) -> Result<Lease> {
    let path = ctx.path.as_path();
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| sql_err(path, e))?;
    let Some(mut r) = load_rotation(&tx, path, id)? else {
        return Err(StoreError::RotationNotFound {
            rotation: id.to_string(),
        });
    };
    let (lease, reason) = rotor_core::store::take_lease(&r, owner, now, expires_at, takeover)?;
    r.lease = Some(lease.clone());
    write_rotation(&tx, path, &r)?;
    let event = AuditEvent::new(owner, "rotation.lease")
        .secret(&r.secret)
        .rotation(&r.id)
        .reason(reason.as_deref());
    // The record's time is read now, under the write lock that orders `seq`, not the
    // claimer's `now` from before it waited for the lock: times follow the sequence.
    append_audit(&tx, path, &ctx.records, Timestamp::now(), vec![event])?;
    tx.commit().map_err(|e| sql_err(path, e))?;
    Ok(lease)
}
