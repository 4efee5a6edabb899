//! Rotation rows (indexed columns plus the JSON record) and the lease on them: `claim` is
//! the only way a lease token grows.

use jiff::Timestamp;
use rotor_core::audit::AuditEvent;
use rotor_core::rotation::Lease;
use rotor_core::store::Takeover;
use rotor_core::{Rotation, RotationId, RotationStatus, SecretName, Stage, StoreError};
use tokio_postgres::Transaction;

use super::audit::append_audit;
use super::write::stage_holder;
use super::{Fail, Result, get, q_opt, unique_violation};
use crate::Ctx;
use crate::pool::{PgConn, Stmts};

fn lease_token(lease: Option<&Lease>) -> i64 {
    lease.map_or(0, |l| i64::try_from(l.token).unwrap_or(i64::MAX))
}

fn rotation_json(r: &Rotation) -> Result<String> {
    serde_json::to_string(r)
        .map_err(|e| StoreError::Backend(format!("cannot encode rotation {}: {e}", r.id)).into())
}

pub(super) fn decode_rotation(ctx: &Ctx, json: &str) -> Result<Rotation> {
    serde_json::from_str(json).map_err(|e| ctx.corrupt(format!("bad rotation record: {e}")).into())
}

async fn running_rotation(
    ctx: &Ctx,
    tx: &Transaction<'_>,
    stmts: &mut Stmts,
    secret: &SecretName,
) -> Result<Option<Rotation>> {
    let row = q_opt(
        ctx,
        tx,
        stmts,
        "SELECT record FROM rotor_rotations WHERE secret = $1 AND status = 'running' LIMIT 1",
        &[&secret.as_str()],
    )
    .await?;
    match row {
        Some(r) => Ok(Some(decode_rotation(ctx, &get::<String>(ctx, &r, 0)?)?)),
        None => Ok(None),
    }
}

/// Inserts a rotation. Under the secret's lock: no other running rotation (else `Busy`),
/// and — the guard that makes a due rotation run once across replicas — a running
/// rotation whose `previous_version` is no longer current is refused with `Stale`:
/// another replica already rotated the secret after this one decided it was due.
pub(super) async fn begin_rotation(
    ctx: &Ctx,
    tx: &Transaction<'_>,
    stmts: &mut Stmts,
    r: &Rotation,
) -> Result<()> {
    if let Some(other) = running_rotation(ctx, tx, stmts, &r.secret).await? {
        return Err(StoreError::busy(&other).into());
    }
    // A rotation is planned against the current version it read (none, for a first
    // rotation): see `rotor_core::store::check_plan`.
    let current = stage_holder(ctx, tx, stmts, &r.secret, Stage::Current).await?;
    rotor_core::store::check_plan(r, current.as_deref())?;
    insert_rotation(ctx, tx, stmts, r, |constraint| match constraint {
        // Cannot happen under the secret lock; if it does, the retry sees the winner.
        "rotor_rotations_one_running" => Fail::Retry,
        _ => StoreError::Backend(format!("rotation {} already exists", r.id)).into(),
    })
    .await
}

/// Inserts a rotation row (columns and JSON record) as it is. A unique violation is what
/// `on_unique` makes of the violated constraint's name: `BeginRotation` and an import mean
/// different things by it.
pub(super) async fn insert_rotation(
    ctx: &Ctx,
    tx: &Transaction<'_>,
    stmts: &mut Stmts,
    r: &Rotation,
    on_unique: impl FnOnce(&str) -> Fail,
) -> Result<()> {
    let json = rotation_json(r)?;
    let st = stmts
        .get(
            tx,
            "INSERT INTO rotor_rotations (id, secret, status, step, started_at, lease_owner, lease_token, record)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .await
        .map_err(|e| ctx.pg(e))?;
    let res = tx
        .execute(
            &st,
            &[
                &r.id.as_str(),
                &r.secret.as_str(),
                &r.status.as_str(),
                &r.step.as_str(),
                &r.started_at.to_string(),
                &r.lease.as_ref().map(|l| l.owner.as_str()),
                &lease_token(r.lease.as_ref()),
                &json,
            ],
        )
        .await;
    match res {
        Ok(_) => Ok(()),
        Err(e) => match unique_violation(&e) {
            Some(constraint) => Err(on_unique(&constraint)),
            None => Err(ctx.pg(e)),
        },
    }
}

async fn load_rotation(
    ctx: &Ctx,
    tx: &Transaction<'_>,
    stmts: &mut Stmts,
    id: &RotationId,
) -> Result<Option<Rotation>> {
    let row = q_opt(
        ctx,
        tx,
        stmts,
        "SELECT record FROM rotor_rotations WHERE id = $1 FOR UPDATE",
        &[&id.as_str()],
    )
    .await?;
    match row {
        Some(r) => Ok(Some(decode_rotation(ctx, &get::<String>(ctx, &r, 0)?)?)),
        None => Ok(None),
    }
}

async fn write_rotation(
    ctx: &Ctx,
    tx: &Transaction<'_>,
    stmts: &mut Stmts,
    r: &Rotation,
) -> Result<()> {
    let json = rotation_json(r)?;
    let st = stmts
        .get(
            tx,
            "UPDATE rotor_rotations SET status = $2, step = $3, started_at = $4, lease_owner = $5,
                    lease_token = $6, record = $7
             WHERE id = $1",
        )
        .await
        .map_err(|e| ctx.pg(e))?;
    let res = tx
        .execute(
            &st,
            &[
                &r.id.as_str(),
                &r.status.as_str(),
                &r.step.as_str(),
                &r.started_at.to_string(),
                &r.lease.as_ref().map(|l| l.owner.as_str()),
                &lease_token(r.lease.as_ref()),
                &json,
            ],
        )
        .await;
    match res {
        Ok(_) => Ok(()),
        Err(e) if unique_violation(&e).as_deref() == Some("rotor_rotations_one_running") => {
            Err(Fail::Retry)
        }
        Err(e) => Err(ctx.pg(e)),
    }
}

/// Overwrites a rotation record. The lease is the one exception: it is owned by `claim`, so
/// the record's lease is taken only when it carries the stored token (an expiry renewal by
/// the holder); otherwise the stored lease is kept. So no write can move a token backwards
/// and re-validate a stale holder's fence.
pub(super) async fn save_rotation(
    ctx: &Ctx,
    tx: &Transaction<'_>,
    stmts: &mut Stmts,
    r: &Rotation,
) -> Result<()> {
    let Some(stored) = load_rotation(ctx, tx, stmts, &r.id).await? else {
        return Err(StoreError::RotationNotFound {
            rotation: r.id.to_string(),
        }
        .into());
    };
    if stored.secret != r.secret {
        return Err(StoreError::Backend(format!(
            "rotation {} belongs to secret {}, not {}",
            r.id, stored.secret, r.secret
        ))
        .into());
    }
    let mut r = r.clone();
    if lease_token(r.lease.as_ref()) != lease_token(stored.lease.as_ref()) {
        r.lease = stored.lease;
    }
    if r.status == RotationStatus::Running
        && let Some(other) = running_rotation(ctx, tx, stmts, &r.secret).await?
        && other.id != r.id
    {
        return Err(StoreError::busy(&other).into());
    }
    write_rotation(ctx, tx, stmts, &r).await
}

pub(crate) async fn claim(
    ctx: &Ctx,
    conn: &mut PgConn,
    id: &RotationId,
    owner: &str,
    now: Timestamp,
    expires_at: Timestamp,
    takeover: Takeover,
) -> Result<Lease> {
    let PgConn { client, stmts } = conn;
    let tx = client.transaction().await.map_err(|e| ctx.pg(e))?;
    let Some(mut r) = load_rotation(ctx, &tx, stmts, id).await? else {
        return Err(StoreError::RotationNotFound {
            rotation: id.to_string(),
        }
        .into());
    };
    let (lease, reason) = rotor_core::store::take_lease(&r, owner, now, expires_at, takeover)?;
    r.lease = Some(lease.clone());
    write_rotation(ctx, &tx, stmts, &r).await?;
    let event = AuditEvent::new(owner, "rotation.lease")
        .secret(&r.secret)
        .rotation(&r.id)
        .reason(reason.as_deref());
    // `None`: the record's time is read after the audit-head lock, not the claimer's `now`
    // from before it waited for it, so times follow `seq`.
    append_audit(
        ctx,
        &ctx.records,
        &tx,
        stmts,
        None,
        std::slice::from_ref(&event),
    )
    .await?;
    tx.commit().await.map_err(|e| ctx.pg(e))?;
    Ok(lease)
}
