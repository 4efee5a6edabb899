//! Store migration (`rotor store migrate`): exporting everything in one snapshot and
//! importing a dump into an empty store.

use std::collections::BTreeMap;

use jiff::Timestamp;
use rotor_core::audit::{AuditEvent, verify_chain};
use rotor_core::store::{Dump, NewVersion, Versioned};
use rotor_core::{Stage, StoreError};
use rusqlite::{Connection, TransactionBehavior, params};

use super::audit::{AUDIT_COLS, INSERT_AUDIT, append_audit, audit_list, insert_audit};
use super::read::{VERSION_COLS, open_value, read_tx, rotation_list, version_meta};
use super::rotation::insert_rotation;
use super::write::insert_version;
use super::{Result, corrupt, fsynced, is_unique_violation, parse_name};
use crate::{Ctx, Synchronous, show, sql_err};

/// Everything in the store, in one read snapshot: versions (oldest first, values opened,
/// stages), rotations (oldest first) and the audit log (by seq).
pub(crate) fn export(ctx: &Ctx, conn: &mut Connection) -> Result<Dump> {
    let path = ctx.path.as_path();
    let e = |e| sql_err(path, e);
    let tx = read_tx(conn, path)?;
    // secret -> version id -> stages
    let mut stages: BTreeMap<String, BTreeMap<String, Vec<Stage>>> = BTreeMap::new();
    {
        let mut stmt = tx
            .prepare("SELECT secret, version_id, stage FROM stages")
            .map_err(e)?;
        let mut rows = stmt.query([]).map_err(e)?;
        while let Some(row) = rows.next().map_err(e)? {
            let stage: String = row.get(2).map_err(e)?;
            let stage = Stage::parse(&stage)
                .ok_or_else(|| corrupt(path, format!("unknown stage {stage:?}")))?;
            stages
                .entry(row.get(0).map_err(e)?)
                .or_default()
                .entry(row.get(1).map_err(e)?)
                .or_default()
                .push(stage);
        }
    }
    for per_secret in stages.values_mut() {
        for v in per_secret.values_mut() {
            v.sort();
        }
    }
    let none = BTreeMap::new();
    let mut versions = Vec::new();
    {
        let mut stmt = tx
            .prepare(&format!(
                "SELECT {VERSION_COLS}, v.sealed, v.secret FROM versions v ORDER BY v.vid"
            ))
            .map_err(e)?;
        let mut rows = stmt.query([]).map_err(e)?;
        while let Some(row) = rows.next().map_err(e)? {
            let name: String = row.get(5).map_err(e)?;
            let secret = parse_name(path, &name)?;
            let meta = version_meta(path, &secret, row, stages.get(&name).unwrap_or(&none))?;
            versions.push(open_value(ctx, meta, row.get_ref(4).map_err(e)?)?);
        }
    }
    let rotations = rotation_list(&tx, path, "SELECT record FROM rotations ORDER BY rid", [])?;
    let audit = audit_list(
        &tx,
        path,
        &format!("SELECT {AUDIT_COLS} FROM audit ORDER BY seq"),
        [],
    )?;
    Ok(Dump {
        versions,
        rotations,
        audit,
    })
}

/// Loads `dump` into this (empty) store in one transaction; see [`rotor_core::Store::import`].
pub(crate) fn import(
    ctx: &Ctx,
    conn: &mut Connection,
    dump: Dump,
    event: AuditEvent,
) -> Result<()> {
    // Copied verbatim, a broken chain would stay broken: refuse it before writing.
    verify_chain(&dump.audit).map_err(|err| {
        StoreError::Backend(format!(
            "the audit log to import does not verify ({err}); nothing was imported"
        ))
    })?;
    // Like a change that inserts versions: new values are durable before this returns.
    if ctx.synchronous == Synchronous::Hybrid {
        fsynced(ctx, conn, |conn| import_tx(ctx, conn, dump, event))
    } else {
        import_tx(ctx, conn, dump, event)
    }
}

fn import_tx(ctx: &Ctx, conn: &mut Connection, dump: Dump, event: AuditEvent) -> Result<()> {
    let path = ctx.path.as_path();
    let e = |e| sql_err(path, e);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(e)?;
    let count = |sql: &str| -> Result<i64> { tx.query_row(sql, [], |r| r.get(0)).map_err(e) };
    let versions = count("SELECT COUNT(*) FROM versions")?;
    let rotations = count("SELECT COUNT(*) FROM rotations")?;
    let audit = count("SELECT COUNT(*) FROM audit")?;
    let others = count("SELECT COUNT(*) FROM audit WHERE action <> 'store.init'")?;
    if versions > 0 || rotations > 0 || audit > 1 || others > 0 {
        return Err(StoreError::NotEmpty {
            detail: format!(
                "{} holds {versions} versions, {rotations} rotations and {audit} audit records",
                show(path)
            ),
        });
    }
    for v in dump.versions {
        let Versioned { meta, value } = v;
        let version = NewVersion {
            secret: meta.secret,
            id: meta.id,
            created_by: meta.created_by,
            created_at: meta.created_at,
            metadata: meta.metadata,
            value,
        };
        insert_version(ctx, &tx, &version)?;
        for stage in meta.stages {
            tx.prepare_cached("INSERT INTO stages (secret, stage, version_id) VALUES (?1, ?2, ?3)")
                .and_then(|mut s| {
                    s.execute(params![
                        version.secret.as_str(),
                        stage.as_str(),
                        version.id.as_str()
                    ])
                })
                .map_err(|err| {
                    if is_unique_violation(&err) {
                        StoreError::Backend(format!(
                            "secret {}: the dump labels more than one version {stage}",
                            version.secret
                        ))
                    } else {
                        sql_err(path, err)
                    }
                })?;
        }
    }
    for r in &dump.rotations {
        insert_rotation(&tx, path, r)?;
    }
    // The target's own `store.init` record gives way to the copied chain.
    tx.execute("DELETE FROM audit", []).map_err(e)?;
    {
        let mut stmt = tx.prepare_cached(INSERT_AUDIT).map_err(e)?;
        for rec in &dump.audit {
            insert_audit(&mut stmt, path, rec)?;
        }
    }
    // Chained after the last copied record (seq + 1, its hash). The copied MACs are under
    // the source's key, which may not be this store's: MACs apply again from this record
    // (`store.migrate` starts them, like `audit.keyed`).
    append_audit(&tx, path, &ctx.records, Timestamp::now(), vec![event])?;
    tx.commit().map_err(e)?;
    Ok(())
}
