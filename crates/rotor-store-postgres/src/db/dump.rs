//! Store migration (`rotor store migrate`): exporting everything in one snapshot and
//! importing a dump into an empty store.

use rotor_core::StoreError;
use rotor_core::audit::{AuditEvent, GENESIS};
use rotor_core::store::Dump;

use super::audit::{append_audit, audit_row, insert_audit};
use super::read::{open_value, read_tx, version_meta};
use super::rotation::{decode_rotation, insert_rotation};
use super::write::{VersionRow, insert_version_row};
use super::{Result, exec, get, parse_name, q, q_opt, unique_violation};
use crate::Ctx;
use crate::pool::PgConn;

/// Everything in the store, in one REPEATABLE READ snapshot: versions (oldest first, values
/// opened, stages), rotations (oldest first) and the audit log (by seq).
pub(crate) async fn export(ctx: &Ctx, conn: &mut PgConn) -> Result<Dump> {
    let PgConn { client, stmts } = conn;
    let tx = read_tx(ctx, client).await?;
    let rows = q(
        ctx,
        &tx,
        stmts,
        "SELECT v.id, v.created_at, v.created_by, v.metadata,
                ARRAY(SELECT s.stage FROM rotor_stages s WHERE s.secret = v.secret AND s.version_id = v.id),
                v.sealed, v.secret
         FROM rotor_versions v ORDER BY v.vid",
        &[],
    )
    .await?;
    let mut versions = Vec::with_capacity(rows.len());
    for row in &rows {
        let secret = parse_name(ctx, &get::<String>(ctx, row, 6)?)?;
        let meta = version_meta(ctx, &secret, row)?;
        let sealed: Vec<u8> = get(ctx, row, 5)?;
        versions.push(open_value(ctx, meta, &sealed)?);
    }
    let rotations = q(
        ctx,
        &tx,
        stmts,
        "SELECT record FROM rotor_rotations ORDER BY rid",
        &[],
    )
    .await?
    .iter()
    .map(|r| decode_rotation(ctx, &get::<String>(ctx, r, 0)?))
    .collect::<Result<Vec<_>>>()?;
    let audit = q(
        ctx,
        &tx,
        stmts,
        "SELECT seq, time, actor, action, secret, versions, rotation, reason, outcome, prev_hash, hash, mac
         FROM rotor_audit ORDER BY seq",
        &[],
    )
    .await?
    .iter()
    .map(|r| audit_row(ctx, r))
    .collect::<Result<Vec<_>>>()?;
    tx.commit().await.map_err(|e| ctx.pg(e))?;
    Ok(Dump {
        versions,
        rotations,
        audit,
    })
}

/// Loads `dump` into this (empty) store in one transaction; see [`rotor_core::Store::import`].
/// Every rotor table is locked against writers first (`SHARE ROW EXCLUSIVE`, which waits
/// for writers in flight), so the emptiness check still holds at commit.
pub(crate) async fn import(
    ctx: &Ctx,
    conn: &mut PgConn,
    dump: &Dump,
    event: &AuditEvent,
) -> Result<()> {
    let PgConn { client, stmts } = conn;
    let tx = client.transaction().await.map_err(|e| ctx.pg(e))?;
    tx.batch_execute(
        "LOCK TABLE rotor_versions, rotor_stages, rotor_rotations, rotor_audit, rotor_audit_head
         IN SHARE ROW EXCLUSIVE MODE",
    )
    .await
    .map_err(|e| ctx.pg(e))?;
    let counts = q_opt(
        ctx,
        &tx,
        stmts,
        "SELECT (SELECT count(*) FROM rotor_versions), (SELECT count(*) FROM rotor_rotations),
                (SELECT count(*) FROM rotor_audit),
                (SELECT count(*) FROM rotor_audit WHERE action <> 'store.init')",
        &[],
    )
    .await?
    .ok_or_else(|| ctx.corrupt("counting its rows returned nothing".into()))?;
    let (versions, rotations, audit, others): (i64, i64, i64, i64) = (
        get(ctx, &counts, 0)?,
        get(ctx, &counts, 1)?,
        get(ctx, &counts, 2)?,
        get(ctx, &counts, 3)?,
    );
    if versions > 0 || rotations > 0 || audit > 1 || others > 0 {
        return Err(StoreError::NotEmpty {
            detail: format!(
                "{} holds {versions} versions, {rotations} rotations and {audit} audit records",
                ctx.target
            ),
        }
        .into());
    }
    for v in &dump.versions {
        let row = VersionRow {
            secret: &v.meta.secret,
            id: &v.meta.id,
            created_at: &v.meta.created_at,
            created_by: &v.meta.created_by,
            metadata: &v.meta.metadata,
            value: &v.value,
        };
        insert_version_row(ctx, &tx, stmts, &row).await?;
        for stage in &v.meta.stages {
            let st = stmts
                .get(
                    &tx,
                    "INSERT INTO rotor_stages (secret, stage, version_id) VALUES ($1, $2, $3)",
                )
                .await
                .map_err(|e| ctx.pg(e))?;
            match tx
                .execute(
                    &st,
                    &[
                        &v.meta.secret.as_str(),
                        &stage.as_str(),
                        &v.meta.id.as_str(),
                    ],
                )
                .await
            {
                Ok(_) => {}
                Err(e) if unique_violation(&e).is_some() => {
                    return Err(StoreError::Backend(format!(
                        "secret {}: the dump labels more than one version {stage}",
                        v.meta.secret
                    ))
                    .into());
                }
                Err(e) => return Err(ctx.pg(e)),
            }
        }
    }
    for r in &dump.rotations {
        insert_rotation(ctx, &tx, stmts, r, |_| {
            StoreError::Backend(format!(
                "rotation {} appears twice in the dump (or secret {} has two running rotations)",
                r.id, r.secret
            ))
            .into()
        })
        .await?;
    }
    // The target's own `store.init` record gives way to the copied chain.
    exec(ctx, &tx, stmts, "DELETE FROM rotor_audit", &[]).await?;
    // Verified by the caller: seq runs 1, 2, 3, ... without repeats.
    for rec in &dump.audit {
        insert_audit(ctx, &tx, stmts, rec).await?;
    }
    let (seq, hash, mac) = dump.audit.last().map_or((0, GENESIS, None), |r| {
        (r.seq, r.hash.as_str(), r.mac.as_deref())
    });
    exec(
        ctx,
        &tx,
        stmts,
        "UPDATE rotor_audit_head SET seq = $1, hash = $2, mac = $3 WHERE singleton",
        &[&i64::try_from(seq).unwrap_or(i64::MAX), &hash, &mac],
    )
    .await?;
    // Chained after the last copied record (seq + 1, its hash). The copied MACs are under
    // the source's key, which may not be this store's: MACs apply again from this record
    // (`store.migrate` starts them, like `audit.keyed`).
    append_audit(
        ctx,
        &ctx.records,
        &tx,
        stmts,
        None,
        std::slice::from_ref(event),
    )
    .await?;
    tx.commit().await.map_err(|e| ctx.pg(e))?;
    Ok(())
}
