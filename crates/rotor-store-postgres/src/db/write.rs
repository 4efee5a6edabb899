//! Writes: one [`rotor_core::store::Change`] applied in one transaction (secret locks,
//! fence check, ops, audit records, commit), and the version and stage rows its ops insert
//! and move.

use jiff::Timestamp;
use rotor_core::store::{Change, Fence, NewVersion, Op};
use rotor_core::{AuditRecord, SecretName, SecretValue, Stage, StoreError, VersionId};
use tokio_postgres::Transaction;

use super::audit::append_audit;
use super::rotation::{begin_rotation, save_rotation};
use super::{Result, SECRET_LOCK_CLASS, exec, get, q, q_opt, unique_violation};
use crate::Ctx;
use crate::pool::{PgConn, Stmts};

fn op_secret(op: &Op) -> Option<&str> {
    match op {
        Op::InsertVersion { version, .. } => Some(version.secret.as_str()),
        Op::Promote { secret, .. } | Op::ClearStage { secret, .. } => Some(secret.as_str()),
        Op::BeginRotation(r) | Op::SaveRotation(r) => Some(r.secret.as_str()),
        _ => None,
    }
}

async fn lock_secrets(
    ctx: &Ctx,
    tx: &Transaction<'_>,
    stmts: &mut Stmts,
    secrets: impl Iterator<Item = &str>,
) -> Result<()> {
    let mut names: Vec<&str> = secrets.collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        q(
            ctx,
            tx,
            stmts,
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            &[&SECRET_LOCK_CLASS, &name],
        )
        .await?;
    }
    Ok(())
}

pub(crate) async fn apply(
    ctx: &Ctx,
    conn: &mut PgConn,
    change: &Change,
) -> Result<Vec<AuditRecord>> {
    let PgConn { client, stmts } = conn;
    let tx = client.transaction().await.map_err(|e| ctx.pg(e))?;
    lock_secrets(ctx, &tx, stmts, change.ops.iter().filter_map(op_secret)).await?;
    if let Some(fence) = &change.fence {
        check_fence(ctx, &tx, stmts, fence).await?;
    }
    for op in &change.ops {
        apply_op(ctx, &tx, stmts, op).await?;
    }
    let records = append_audit(ctx, &ctx.records, &tx, stmts, None, &change.audit).await?;
    tx.commit().await.map_err(|e| ctx.pg(e))?;
    Ok(records)
}

async fn check_fence(
    ctx: &Ctx,
    tx: &Transaction<'_>,
    stmts: &mut Stmts,
    fence: &Fence,
) -> Result<()> {
    let row = q_opt(
        ctx,
        tx,
        stmts,
        "SELECT lease_token FROM rotor_rotations WHERE id = $1 FOR UPDATE",
        &[&fence.rotation.as_str()],
    )
    .await?;
    let Some(row) = row else {
        return Err(StoreError::RotationNotFound {
            rotation: fence.rotation.to_string(),
        }
        .into());
    };
    let current = u64::try_from(get::<i64>(ctx, &row, 0)?).unwrap_or(0);
    if current != fence.token {
        return Err(StoreError::LeaseLost {
            rotation: fence.rotation.to_string(),
            ours: fence.token,
            current,
        }
        .into());
    }
    Ok(())
}

async fn apply_op(ctx: &Ctx, tx: &Transaction<'_>, stmts: &mut Stmts, op: &Op) -> Result<()> {
    match op {
        Op::InsertVersion { version, stage } => {
            insert_version(ctx, tx, stmts, version).await?;
            match stage {
                None => Ok(()),
                // Labelling a new version current is a promote: the old current becomes
                // previous, exactly as `Promote` would do it.
                Some(Stage::Current) => promote(ctx, tx, stmts, &version.secret, &version.id).await,
                Some(stage) => {
                    if let Some(holder) = stage_holder(ctx, tx, stmts, &version.secret, *stage).await? {
                        return Err(StoreError::StageTaken {
                            secret: version.secret.to_string(),
                            stage: *stage,
                            version: holder,
                        }
                        .into());
                    }
                    set_stage(ctx, tx, stmts, &version.secret, *stage, version.id.as_str()).await
                }
            }
        }
        Op::Promote { secret, version } => promote(ctx, tx, stmts, secret, version).await,
        Op::ClearStage {
            secret,
            stage,
            version,
        } => exec(
            ctx,
            tx,
            stmts,
            "DELETE FROM rotor_stages WHERE secret = $1 AND stage = $2 AND version_id = $3",
            &[&secret.as_str(), &stage.as_str(), &version.as_str()],
        )
        .await
        .map(drop),
        Op::BeginRotation(r) => begin_rotation(ctx, tx, stmts, r).await,
        Op::SaveRotation(r) => save_rotation(ctx, tx, stmts, r).await,
        _ => Err(StoreError::Backend(
            "this store does not support an operation of this rotor version; upgrade rotor-store-postgres".into(),
        )
        .into()),
    }
}

async fn insert_version(
    ctx: &Ctx,
    tx: &Transaction<'_>,
    stmts: &mut Stmts,
    v: &NewVersion,
) -> Result<()> {
    let row = VersionRow {
        secret: &v.secret,
        id: &v.id,
        created_at: &v.created_at,
        created_by: &v.created_by,
        metadata: &v.metadata,
        value: &v.value,
    };
    insert_version_row(ctx, tx, stmts, &row).await
}

/// A version to insert, borrowed (from a [`NewVersion`] or an imported [`Versioned`]).
pub(super) struct VersionRow<'a> {
    pub(super) secret: &'a SecretName,
    pub(super) id: &'a VersionId,
    pub(super) created_at: &'a Timestamp,
    pub(super) created_by: &'a str,
    pub(super) metadata: &'a serde_json::Value,
    pub(super) value: &'a SecretValue,
}

/// Seals the value with the master key, bound to `(secret, id)`, and inserts the row.
pub(super) async fn insert_version_row(
    ctx: &Ctx,
    tx: &Transaction<'_>,
    stmts: &mut Stmts,
    v: &VersionRow<'_>,
) -> Result<()> {
    let sealed = rotor_seal::seal_version(
        &ctx.master,
        v.secret.as_str(),
        v.id.as_str(),
        v.value.expose(),
    )
    .map_err(|e| {
        StoreError::Backend(format!(
            "secret {}, version {}: cannot seal the value: {e}",
            v.secret, v.id
        ))
    })?;
    let metadata = serde_json::to_string(v.metadata)
        .map_err(|e| StoreError::Backend(format!("cannot encode version metadata: {e}")))?;
    let st = stmts
        .get(
            tx,
            "INSERT INTO rotor_versions (secret, id, created_at, created_by, metadata, key_id, sealed)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .await
        .map_err(|e| ctx.pg(e))?;
    let res = tx
        .execute(
            &st,
            &[
                &v.secret.as_str(),
                &v.id.as_str(),
                &v.created_at.to_string(),
                &v.created_by,
                &metadata,
                &sealed.key_id.to_string(),
                &sealed.to_bytes(),
            ],
        )
        .await;
    match res {
        Ok(_) => Ok(()),
        Err(e) if unique_violation(&e).is_some() => Err(StoreError::Backend(format!(
            "secret {}: version {} already exists (version ids are never reused)",
            v.secret, v.id
        ))
        .into()),
        Err(e) => Err(ctx.pg(e)),
    }
}

pub(super) async fn stage_holder(
    ctx: &Ctx,
    tx: &Transaction<'_>,
    stmts: &mut Stmts,
    secret: &SecretName,
    stage: Stage,
) -> Result<Option<String>> {
    let row = q_opt(
        ctx,
        tx,
        stmts,
        "SELECT version_id FROM rotor_stages WHERE secret = $1 AND stage = $2",
        &[&secret.as_str(), &stage.as_str()],
    )
    .await?;
    row.map(|r| get(ctx, &r, 0)).transpose()
}

async fn set_stage(
    ctx: &Ctx,
    tx: &Transaction<'_>,
    stmts: &mut Stmts,
    secret: &SecretName,
    stage: Stage,
    version: &str,
) -> Result<()> {
    exec(
        ctx,
        tx,
        stmts,
        "INSERT INTO rotor_stages (secret, stage, version_id) VALUES ($1, $2, $3)
         ON CONFLICT (secret, stage) DO UPDATE SET version_id = excluded.version_id",
        &[&secret.as_str(), &stage.as_str(), &version],
    )
    .await
    .map(drop)
}

async fn drop_stage(
    ctx: &Ctx,
    tx: &Transaction<'_>,
    stmts: &mut Stmts,
    secret: &SecretName,
    stage: Stage,
) -> Result<()> {
    exec(
        ctx,
        tx,
        stmts,
        "DELETE FROM rotor_stages WHERE secret = $1 AND stage = $2",
        &[&secret.as_str(), &stage.as_str()],
    )
    .await
    .map(drop)
}

/// `version` becomes current; the old current (if another) becomes previous, replacing the
/// old previous; `version` loses `pending` (and `previous`, when it is promoted back).
/// Runs under the secret's advisory lock, so the read-then-move is not interleaved.
async fn promote(
    ctx: &Ctx,
    tx: &Transaction<'_>,
    stmts: &mut Stmts,
    secret: &SecretName,
    version: &VersionId,
) -> Result<()> {
    let exists = q_opt(
        ctx,
        tx,
        stmts,
        "SELECT 1 FROM rotor_versions WHERE secret = $1 AND id = $2",
        &[&secret.as_str(), &version.as_str()],
    )
    .await?
    .is_some();
    if !exists {
        return Err(StoreError::VersionNotFound {
            secret: secret.to_string(),
            version: version.to_string(),
        }
        .into());
    }
    let v = version.as_str();
    let current = stage_holder(ctx, tx, stmts, secret, Stage::Current).await?;
    match current.as_deref() {
        Some(c) if c == v => {}
        Some(c) => {
            set_stage(ctx, tx, stmts, secret, Stage::Previous, c).await?;
            set_stage(ctx, tx, stmts, secret, Stage::Current, v).await?;
        }
        None => {
            if stage_holder(ctx, tx, stmts, secret, Stage::Previous)
                .await?
                .as_deref()
                == Some(v)
            {
                drop_stage(ctx, tx, stmts, secret, Stage::Previous).await?;
            }
            set_stage(ctx, tx, stmts, secret, Stage::Current, v).await?;
        }
    }
    if stage_holder(ctx, tx, stmts, secret, Stage::Pending)
        .await?
        .as_deref()
        == Some(v)
    {
        drop_stage(ctx, tx, stmts, secret, Stage::Pending).await?;
    }
    Ok(())
}
