//! Reads: versions (their values opened), stages, rotations and the per-secret
//! summaries.

use std::collections::BTreeMap;
use std::path::Path;

use rotor_core::store::{RotationStamp, SecretSummary, VersionStamp, Versioned};
use rotor_core::{
    Rotation, RotationId, SecretName, SecretValue, Stage, StoreError, VersionId, VersionMeta,
};
use rusqlite::{Connection, Row, Transaction, params};

use super::rotation::{decode_rotation, load_rotation};
use super::{Result, corrupt, parse_name, parse_ts, parse_vid};
use crate::{Ctx, sql_err};

pub(super) fn read_tx<'c>(conn: &'c mut Connection, path: &Path) -> Result<Transaction<'c>> {
    conn.transaction().map_err(|e| sql_err(path, e))
}

/// Stages held by versions of `secret`, by version id, in `Stage::ALL` order.
fn stages_of(
    conn: &Connection,
    path: &Path,
    secret: &SecretName,
) -> Result<BTreeMap<String, Vec<Stage>>> {
    let e = |e| sql_err(path, e);
    let mut stmt = conn
        .prepare_cached("SELECT stage, version_id FROM stages WHERE secret = ?1")
        .map_err(e)?;
    let mut rows = stmt.query([secret.as_str()]).map_err(e)?;
    let mut out: BTreeMap<String, Vec<Stage>> = BTreeMap::new();
    while let Some(row) = rows.next().map_err(e)? {
        let stage: String = row.get(0).map_err(e)?;
        let stage = Stage::parse(&stage)
            .ok_or_else(|| corrupt(path, format!("unknown stage {stage:?}")))?;
        out.entry(row.get(1).map_err(e)?).or_default().push(stage);
    }
    for v in out.values_mut() {
        v.sort();
    }
    Ok(out)
}

pub(super) const VERSION_COLS: &str = "v.id, v.created_at, v.created_by, v.metadata";

pub(super) fn version_meta(
    path: &Path,
    secret: &SecretName,
    row: &Row<'_>,
    stages: &BTreeMap<String, Vec<Stage>>,
) -> Result<VersionMeta> {
    let e = |e| sql_err(path, e);
    let id: String = row.get(0).map_err(e)?;
    let created_at: String = row.get(1).map_err(e)?;
    let metadata: String = row.get(3).map_err(e)?;
    Ok(VersionMeta {
        stages: stages.get(&id).cloned().unwrap_or_default(),
        id: parse_vid(path, &id)?,
        secret: secret.clone(),
        created_at: parse_ts(path, &created_at)?,
        created_by: row.get(2).map_err(e)?,
        metadata: serde_json::from_str(&metadata)
            .map_err(|err| corrupt(path, format!("bad version metadata: {err}")))?,
    })
}

pub(crate) fn versions(
    ctx: &Ctx,
    conn: &mut Connection,
    secret: &SecretName,
) -> Result<Vec<VersionMeta>> {
    let path = ctx.path.as_path();
    let e = |e| sql_err(path, e);
    let tx = read_tx(conn, path)?;
    let stages = stages_of(&tx, path, secret)?;
    let mut stmt = tx
        .prepare_cached(&format!(
            "SELECT {VERSION_COLS} FROM versions v WHERE v.secret = ?1 ORDER BY v.vid DESC"
        ))
        .map_err(e)?;
    let mut rows = stmt.query([secret.as_str()]).map_err(e)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(e)? {
        out.push(version_meta(path, secret, row, &stages)?);
    }
    Ok(out)
}

/// Reads one version row (selected by `filter` over `v`/`s`) and opens its value.
fn read_one(
    ctx: &Ctx,
    conn: &mut Connection,
    secret: &SecretName,
    sql: &str,
    key: &str,
) -> Result<Option<Versioned>> {
    let path = ctx.path.as_path();
    let e = |e| sql_err(path, e);
    let tx = read_tx(conn, path)?;
    let stages = stages_of(&tx, path, secret)?;
    let mut stmt = tx.prepare_cached(sql).map_err(e)?;
    let mut rows = stmt.query(params![secret.as_str(), key]).map_err(e)?;
    let Some(row) = rows.next().map_err(e)? else {
        return Ok(None);
    };
    let meta = version_meta(path, secret, row, &stages)?;
    open_value(ctx, meta, row.get_ref(4).map_err(e)?).map(Some)
}

/// Opens a row's sealed value with the store's keys (the master key, and during a
/// master-key rotation the old one too: `rotor_seal::open_version`). A value under another key
/// is `WrongMasterKey`, anything else that does not open `Tampered`; both name the secret
/// and version, never the value.
pub(super) fn open_value(
    ctx: &Ctx,
    meta: VersionMeta,
    sealed: rusqlite::types::ValueRef<'_>,
) -> Result<Versioned> {
    let tampered = || StoreError::Tampered {
        secret: meta.secret.to_string(),
        version: meta.id.to_string(),
    };
    let rusqlite::types::ValueRef::Blob(sealed) = sealed else {
        return Err(tampered());
    };
    let plain = rotor_seal::open_version(&ctx.keys(), meta.secret.as_str(), meta.id.as_str(), sealed)
        .map_err(|err| match err {
        rotor_seal::Error::WrongMasterKey { .. } => StoreError::WrongMasterKey {
            detail: format!(
                "secret {}, version {}: {err} (during a master-key rotation, open the store with both keys)",
                meta.secret, meta.id
            ),
        },
        _ => tampered(),
    })?;
    let value = SecretValue::from_slice(plain.expose_secret());
    Ok(Versioned { meta, value })
}

pub(crate) fn read_stage(
    ctx: &Ctx,
    conn: &mut Connection,
    secret: &SecretName,
    stage: Stage,
) -> Result<Option<Versioned>> {
    let sql = format!(
        "SELECT {VERSION_COLS}, v.sealed FROM stages s
         JOIN versions v ON v.secret = s.secret AND v.id = s.version_id
         WHERE s.secret = ?1 AND s.stage = ?2"
    );
    read_one(ctx, conn, secret, &sql, stage.as_str())
}

pub(crate) fn read_version(
    ctx: &Ctx,
    conn: &mut Connection,
    secret: &SecretName,
    id: &VersionId,
) -> Result<Option<Versioned>> {
    let sql = format!(
        "SELECT {VERSION_COLS}, v.sealed FROM versions v WHERE v.secret = ?1 AND v.id = ?2"
    );
    read_one(ctx, conn, secret, &sql, id.as_str())
}

pub(crate) fn rotation(
    ctx: &Ctx,
    conn: &mut Connection,
    id: &RotationId,
) -> Result<Option<Rotation>> {
    load_rotation(conn, &ctx.path, id)
}

pub(super) fn rotation_list(
    conn: &Connection,
    path: &Path,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Rotation>> {
    let e = |e| sql_err(path, e);
    let mut stmt = conn.prepare_cached(sql).map_err(e)?;
    let mut rows = stmt.query(params).map_err(e)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(e)? {
        let json: String = row.get(0).map_err(e)?;
        out.push(decode_rotation(path, &json)?);
    }
    Ok(out)
}

pub(crate) fn rotations(
    ctx: &Ctx,
    conn: &mut Connection,
    secret: Option<&SecretName>,
    limit: usize,
) -> Result<Vec<Rotation>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    match secret {
        Some(s) => rotation_list(
            conn,
            &ctx.path,
            "SELECT record FROM rotations WHERE secret = ?1 ORDER BY rid DESC LIMIT ?2",
            params![s.as_str(), limit],
        ),
        None => rotation_list(
            conn,
            &ctx.path,
            "SELECT record FROM rotations ORDER BY rid DESC LIMIT ?1",
            params![limit],
        ),
    }
}

pub(crate) fn open_rotations(ctx: &Ctx, conn: &mut Connection) -> Result<Vec<Rotation>> {
    rotation_list(
        conn,
        &ctx.path,
        "SELECT record FROM rotations WHERE status IN ('running', 'grace') ORDER BY rid",
        [],
    )
}

/// Failed rotations whose rollback is still owed. The flag lives in the JSON record, so this
/// scans the rotation rows (only `failed` ones are parsed); an index would need a migration
/// and is not worth one while failed rotations are few.
pub(crate) fn owed_rollbacks(ctx: &Ctx, conn: &mut Connection) -> Result<Vec<Rotation>> {
    rotation_list(
        conn,
        &ctx.path,
        "SELECT record FROM rotations
         WHERE status = 'failed' AND json_extract(record, '$.rollback_owed') = 1 ORDER BY rid",
        [],
    )
}

/// Column `i` of `row` as text borrowed from the row (no copy), `Corrupt` when it is not.
fn text_at<'r>(row: &'r rusqlite::Row<'_>, i: usize, path: &Path) -> Result<&'r str> {
    row.get_ref(i)
        .map_err(|e| sql_err(path, e))?
        .as_str()
        .map_err(|err| corrupt(path, format!("column {i} of a row is not text: {err}")))
}

/// One summary per secret with a stage or a rotation, sorted by name. Two set-wise queries
/// over indexes (stage labels joined to their versions, newest rotation per secret), however
/// many secrets there are.
pub(crate) fn summaries(ctx: &Ctx, conn: &mut Connection) -> Result<Vec<SecretSummary>> {
    let path = ctx.path.as_path();
    let e = |e| sql_err(path, e);
    let tx = read_tx(conn, path)?;
    let mut map: BTreeMap<String, SecretSummary> = BTreeMap::new();
    {
        let mut stmt = tx
            .prepare_cached(
                "SELECT s.secret, s.stage, s.version_id, v.created_at FROM stages s
                 JOIN versions v ON v.secret = s.secret AND v.id = s.version_id",
            )
            .map_err(e)?;
        let mut rows = stmt.query([]).map_err(e)?;
        while let Some(row) = rows.next().map_err(e)? {
            let text = |i| text_at(row, i, path);
            let (stage, id, created_at) = (text(1)?, text(2)?, text(3)?);
            let stamp = Some(VersionStamp {
                id: parse_vid(path, id)?,
                created_at: parse_ts(path, created_at)?,
            });
            let name: String = row.get(0).map_err(e)?;
            let entry = map.entry(name).or_default();
            match Stage::parse(stage) {
                Some(Stage::Current) => entry.current = stamp,
                Some(Stage::Previous) => entry.previous = stamp,
                Some(Stage::Pending) => entry.pending = stamp,
                None => return Err(corrupt(path, format!("unknown stage {stage:?}"))),
            }
        }
    }
    {
        let mut stmt = tx
            .prepare_cached(
                "SELECT secret, record FROM rotations
                 WHERE rid IN (SELECT MAX(rid) FROM rotations GROUP BY secret)",
            )
            .map_err(e)?;
        let mut rows = stmt.query([]).map_err(e)?;
        while let Some(row) = rows.next().map_err(e)? {
            let text = |i| text_at(row, i, path);
            let name = text(0)?;
            // Only the headline's fields are decoded (the record is ~600 bytes of JSON).
            let stamp: RotationStamp = serde_json::from_str(text(1)?)
                .map_err(|err| corrupt(path, format!("bad rotation record of {name}: {err}")))?;
            // Most secrets have a stage already: no second copy of the name for them.
            match map.get_mut(name) {
                Some(entry) => entry.last_rotation = Some(stamp),
                None => {
                    map.entry(name.to_owned()).or_default().last_rotation = Some(stamp);
                }
            }
        }
    }
    map.into_iter()
        .map(|(name, mut s)| {
            s.secret = Some(parse_name(path, &name)?);
            Ok(s)
        })
        .collect()
}
