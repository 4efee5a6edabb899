//! Writes: one [`rotor_core::store::Change`] applied in one `BEGIN IMMEDIATE`
//! transaction (fence check, ops, audit records, commit), and the version and stage rows
//! its ops insert and move.

use std::path::Path;

use jiff::Timestamp;
use rotor_core::store::{Change, Fence, NewVersion, Op};
use rotor_core::{AuditRecord, SecretName, Stage, StoreError, VersionId};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use super::audit::append_audit;
use super::rotation::{insert_rotation, running_rotation, save_rotation};
use super::{Result, fsynced, is_unique_violation, ts};
use crate::{Ctx, Synchronous, sql_err};

pub(crate) fn apply(ctx: &Ctx, conn: &mut Connection, change: Change) -> Result<Vec<AuditRecord>> {
    let raise = ctx.synchronous == Synchronous::Hybrid
        && change
            .ops
            .iter()
            .any(|op| matches!(op, Op::InsertVersion { .. }));
    if !raise {
        return apply_tx(ctx, conn, change);
    }
    fsynced(ctx, conn, |conn| apply_tx(ctx, conn, change))
}

fn apply_tx(ctx: &Ctx, conn: &mut Connection, change: Change) -> Result<Vec<AuditRecord>> {
    let path = ctx.path.as_path();
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| sql_err(path, e))?;
    if let Some(fence) = &change.fence {
        check_fence(&tx, path, fence)?;
    }
    for op in change.ops {
        apply_op(ctx, &tx, op)?;
    }
    let records = append_audit(&tx, path, &ctx.records, Timestamp::now(), change.audit)?;
    tx.commit().map_err(|e| sql_err(path, e))?;
    Ok(records)
}

fn check_fence(tx: &Transaction<'_>, path: &Path, fence: &Fence) -> Result<()> {
    let current: Option<i64> = tx
        .prepare_cached("SELECT lease_token FROM rotations WHERE id = ?1")
        .and_then(|mut s| {
            s.query_row([fence.rotation.as_str()], |r| r.get(0))
                .optional()
        })
        .map_err(|e| sql_err(path, e))?;
    let Some(current) = current else {
        return Err(StoreError::RotationNotFound {
            rotation: fence.rotation.to_string(),
        });
    };
    let current = u64::try_from(current).unwrap_or(0);
    if current != fence.token {
        return Err(StoreError::LeaseLost {
            rotation: fence.rotation.to_string(),
            ours: fence.token,
            current,
        });
    }
    Ok(())
}

fn apply_op(ctx: &Ctx, tx: &Transaction<'_>, op: Op) -> Result<()> {
    let path = ctx.path.as_path();
    match op {
        Op::InsertVersion { version, stage } => {
            insert_version(ctx, tx, &version)?;
            match stage {
                None => Ok(()),
                // Labelling a new version current is a promote: the old current becomes
                // previous, exactly as `Promote` would do it.
                Some(Stage::Current) => promote(tx, path, &version.secret, &version.id),
                Some(stage) => {
                    if let Some(holder) = stage_holder(tx, path, &version.secret, stage)? {
                        return Err(StoreError::StageTaken {
                            secret: version.secret.to_string(),
                            stage,
                            version: holder,
                        });
                    }
                    set_stage(tx, path, &version.secret, stage, version.id.as_str())
                }
            }
        }
        Op::Promote { secret, version } => promote(tx, path, &secret, &version),
        Op::ClearStage {
            secret,
            stage,
            version,
        } => tx
            .prepare_cached(
                "DELETE FROM stages WHERE secret = ?1 AND stage = ?2 AND version_id = ?3",
            )
            .and_then(|mut s| s.execute(params![secret.as_str(), stage.as_str(), version.as_str()]))
            .map(drop)
            .map_err(|e| sql_err(path, e)),
        Op::BeginRotation(r) => {
            if let Some(other) = running_rotation(tx, path, &r.secret)? {
                return Err(StoreError::busy(&other));
            }
            // A rotation is planned against the current version it read.
            let current = stage_holder(tx, path, &r.secret, Stage::Current)?;
            rotor_core::store::check_plan(&r, current.as_deref())?;
            insert_rotation(tx, path, &r)
        }
        Op::SaveRotation(r) => save_rotation(tx, path, *r),
        _ => Err(StoreError::Backend(
            "this store does not support an operation of this rotor version; upgrade rotor-store-sqlite".into(),
        )),
    }
}

pub(super) fn insert_version(ctx: &Ctx, tx: &Transaction<'_>, v: &NewVersion) -> Result<()> {
    let path = ctx.path.as_path();
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
    let metadata = serde_json::to_string(&v.metadata)
        .map_err(|e| StoreError::Backend(format!("cannot encode version metadata: {e}")))?;
    tx.prepare_cached(
        "INSERT INTO versions (secret, id, created_at, created_by, metadata, key_id, sealed)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut s| {
        s.execute(params![
            v.secret.as_str(),
            v.id.as_str(),
            ts(&v.created_at),
            v.created_by,
            metadata,
            sealed.key_id.to_string(),
            sealed.to_bytes(),
        ])
    })
    .map(drop)
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::Backend(format!(
                "secret {}: version {} already exists (version ids are never reused)",
                v.secret, v.id
            ))
        } else {
            sql_err(path, e)
        }
    })
}

fn stage_holder(
    tx: &Transaction<'_>,
    path: &Path,
    secret: &SecretName,
    stage: Stage,
) -> Result<Option<String>> {
    tx.prepare_cached("SELECT version_id FROM stages WHERE secret = ?1 AND stage = ?2")
        .and_then(|mut s| {
            s.query_row(params![secret.as_str(), stage.as_str()], |r| r.get(0))
                .optional()
        })
        .map_err(|e| sql_err(path, e))
}

fn set_stage(
    tx: &Transaction<'_>,
    path: &Path,
    secret: &SecretName,
    stage: Stage,
    version: &str,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO stages (secret, stage, version_id) VALUES (?1, ?2, ?3)
         ON CONFLICT (secret, stage) DO UPDATE SET version_id = excluded.version_id",
    )
    .and_then(|mut s| s.execute(params![secret.as_str(), stage.as_str(), version]))
    .map(drop)
    .map_err(|e| sql_err(path, e))
}

fn drop_stage(tx: &Transaction<'_>, path: &Path, secret: &SecretName, stage: Stage) -> Result<()> {
    tx.prepare_cached("DELETE FROM stages WHERE secret = ?1 AND stage = ?2")
        .and_then(|mut s| s.execute(params![secret.as_str(), stage.as_str()]))
        .map(drop)
        .map_err(|e| sql_err(path, e))
}

/// `version` becomes current; the old current (if another) becomes previous, replacing the
/// old previous; `version` loses `pending` (and `previous`, when it is promoted back).
fn promote(
    tx: &Transaction<'_>,
    path: &Path,
    secret: &SecretName,
    version: &VersionId,
) -> Result<()> {
    let exists: bool = tx
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM versions WHERE secret = ?1 AND id = ?2)")
        .and_then(|mut s| s.query_row(params![secret.as_str(), version.as_str()], |r| r.get(0)))
        .map_err(|e| sql_err(path, e))?;
    if !exists {
        return Err(StoreError::VersionNotFound {
            secret: secret.to_string(),
            version: version.to_string(),
        });
    }
    let v = version.as_str();
    let current = stage_holder(tx, path, secret, Stage::Current)?;
    match current.as_deref() {
        Some(c) if c == v => {}
        Some(c) => {
            set_stage(tx, path, secret, Stage::Previous, c)?;
            set_stage(tx, path, secret, Stage::Current, v)?;
        }
        None => {
            if stage_holder(tx, path, secret, Stage::Previous)?.as_deref() == Some(v) {
                drop_stage(tx, path, secret, Stage::Previous)?;
            }
            set_stage(tx, path, secret, Stage::Current, v)?;
        }
    }
    if stage_holder(tx, path, secret, Stage::Pending)?.as_deref() == Some(v) {
        drop_stage(tx, path, secret, Stage::Pending)?;
    }
    Ok(())
}
