//! Reads: versions (their values opened), stages, rotations and the per-secret
//! summaries.

use std::collections::BTreeMap;

use rotor_core::store::{RotationStamp, SecretSummary, VersionStamp, Versioned};
use rotor_core::{
    Rotation, RotationId, SecretName, SecretValue, Stage, StoreError, VersionId, VersionMeta,
};
use tokio_postgres::types::ToSql;
use tokio_postgres::{IsolationLevel, Row, Transaction};

use super::rotation::decode_rotation;
use super::{Result, get, parse_name, parse_ts, parse_vid, q, q_opt};
use crate::Ctx;
use crate::pool::PgConn;

/// A read-only snapshot for reads that take several statements.
pub(super) async fn read_tx<'c>(
    ctx: &Ctx,
    client: &'c mut tokio_postgres::Client,
) -> Result<Transaction<'c>> {
    client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(|e| ctx.pg(e))
}

fn stages_from(ctx: &Ctx, names: Vec<String>) -> Result<Vec<Stage>> {
    let mut out = names
        .iter()
        .map(|s| Stage::parse(s).ok_or_else(|| ctx.corrupt(format!("unknown stage {s:?}")).into()))
        .collect::<Result<Vec<_>>>()?;
    out.sort();
    Ok(out)
}

/// Columns: id, created_at, created_by, metadata, stages (text[]).
pub(super) fn version_meta(ctx: &Ctx, secret: &SecretName, row: &Row) -> Result<VersionMeta> {
    let id: String = get(ctx, row, 0)?;
    let created_at: String = get(ctx, row, 1)?;
    let metadata: String = get(ctx, row, 3)?;
    Ok(VersionMeta {
        stages: stages_from(ctx, get(ctx, row, 4)?)?,
        id: parse_vid(ctx, &id)?,
        secret: secret.clone(),
        created_at: parse_ts(ctx, &created_at)?,
        created_by: get(ctx, row, 2)?,
        metadata: serde_json::from_str(&metadata)
            .map_err(|err| ctx.corrupt(format!("bad version metadata: {err}")))?,
    })
}

pub(crate) async fn versions(
    ctx: &Ctx,
    conn: &mut PgConn,
    secret: &SecretName,
) -> Result<Vec<VersionMeta>> {
    let PgConn { client, stmts } = conn;
    let rows = q(
        ctx,
        &*client,
        stmts,
        "SELECT v.id, v.created_at, v.created_by, v.metadata,
                ARRAY(SELECT s.stage FROM rotor_stages s WHERE s.secret = v.secret AND s.version_id = v.id)
         FROM rotor_versions v WHERE v.secret = $1 ORDER BY v.vid DESC",
        &[&secret.as_str()],
    )
    .await?;
    rows.iter().map(|r| version_meta(ctx, secret, r)).collect()
}

/// Opens a row's sealed value with the store's keys (the master key, and during a
/// master-key rotation the old one too).
pub(crate) fn open_value(ctx: &Ctx, meta: VersionMeta, sealed: &[u8]) -> Result<Versioned> {
    let tampered = || StoreError::Tampered {
        secret: meta.secret.to_string(),
        version: meta.id.to_string(),
    };
    let plain =
        rotor_seal::open_version(&ctx.keys(), meta.secret.as_str(), meta.id.as_str(), sealed)
            .map_err(|err| match err {
                rotor_seal::Error::WrongMasterKey { .. } => StoreError::WrongMasterKey {
                    detail: format!("secret {}, version {}: {err}", meta.secret, meta.id),
                },
                _ => tampered(),
            })?;
    let value = SecretValue::from_slice(plain.expose_secret());
    Ok(Versioned { meta, value })
}

pub(crate) async fn read_stage(
    ctx: &Ctx,
    conn: &mut PgConn,
    secret: &SecretName,
    stage: Stage,
) -> Result<Option<Versioned>> {
    read_one(
        ctx,
        conn,
        secret,
        "SELECT v.id, v.created_at, v.created_by, v.metadata,
                ARRAY(SELECT s2.stage FROM rotor_stages s2 WHERE s2.secret = v.secret AND s2.version_id = v.id),
                v.sealed
         FROM rotor_stages s JOIN rotor_versions v ON v.secret = s.secret AND v.id = s.version_id
         WHERE s.secret = $1 AND s.stage = $2",
        stage.as_str(),
    )
    .await
}

pub(crate) async fn read_version(
    ctx: &Ctx,
    conn: &mut PgConn,
    secret: &SecretName,
    id: &VersionId,
) -> Result<Option<Versioned>> {
    read_one(
        ctx,
        conn,
        secret,
        "SELECT v.id, v.created_at, v.created_by, v.metadata,
                ARRAY(SELECT s.stage FROM rotor_stages s WHERE s.secret = v.secret AND s.version_id = v.id),
                v.sealed
         FROM rotor_versions v WHERE v.secret = $1 AND v.id = $2",
        id.as_str(),
    )
    .await
}

/// Reads one version row (`sql` selects the columns of [`version_meta`], then `sealed`, by
/// `$1` = secret and `$2` = `key`) and opens its value.
async fn read_one(
    ctx: &Ctx,
    conn: &mut PgConn,
    secret: &SecretName,
    sql: &'static str,
    key: &str,
) -> Result<Option<Versioned>> {
    let PgConn { client, stmts } = conn;
    let row = q_opt(ctx, &*client, stmts, sql, &[&secret.as_str(), &key]).await?;
    let Some(row) = row else { return Ok(None) };
    let meta = version_meta(ctx, secret, &row)?;
    let sealed: Vec<u8> = get(ctx, &row, 5)?;
    open_value(ctx, meta, &sealed).map(Some)
}

async fn rotation_list(
    ctx: &Ctx,
    conn: &mut PgConn,
    sql: &'static str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Rotation>> {
    let PgConn { client, stmts } = conn;
    let rows = q(ctx, &*client, stmts, sql, params).await?;
    rows.iter()
        .map(|r| decode_rotation(ctx, &get::<String>(ctx, r, 0)?))
        .collect()
}

pub(crate) async fn rotation(
    ctx: &Ctx,
    conn: &mut PgConn,
    id: &RotationId,
) -> Result<Option<Rotation>> {
    let mut list = rotation_list(
        ctx,
        conn,
        "SELECT record FROM rotor_rotations WHERE id = $1",
        &[&id.as_str()],
    )
    .await?;
    Ok(list.pop())
}

pub(crate) async fn rotations(
    ctx: &Ctx,
    conn: &mut PgConn,
    secret: Option<&SecretName>,
    limit: usize,
) -> Result<Vec<Rotation>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    match secret {
        Some(s) => {
            rotation_list(
                ctx,
                conn,
                "SELECT record FROM rotor_rotations WHERE secret = $1 ORDER BY rid DESC LIMIT $2",
                &[&s.as_str(), &limit],
            )
            .await
        }
        None => {
            rotation_list(
                ctx,
                conn,
                "SELECT record FROM rotor_rotations ORDER BY rid DESC LIMIT $1",
                &[&limit],
            )
            .await
        }
    }
}

pub(crate) async fn open_rotations(ctx: &Ctx, conn: &mut PgConn) -> Result<Vec<Rotation>> {
    rotation_list(
        ctx,
        conn,
        "SELECT record FROM rotor_rotations WHERE status IN ('running', 'grace') ORDER BY rid",
        &[],
    )
    .await
}

/// Failed rotations whose rollback is still owed. The flag lives in the JSON record, so this
/// scans the rotation rows (only `failed` ones are parsed); an index would need a migration
/// and is not worth one while failed rotations are few.
pub(crate) async fn owed_rollbacks(ctx: &Ctx, conn: &mut PgConn) -> Result<Vec<Rotation>> {
    rotation_list(
        ctx,
        conn,
        "SELECT record FROM rotor_rotations
         WHERE status = 'failed' AND (record::jsonb ->> 'rollback_owed') = 'true' ORDER BY rid",
        &[],
    )
    .await
}

/// One summary per secret with a stage or a rotation, sorted by name: two set-wise queries
/// in one REPEATABLE READ snapshot, however many secrets there are.
pub(crate) async fn summaries(ctx: &Ctx, conn: &mut PgConn) -> Result<Vec<SecretSummary>> {
    let PgConn { client, stmts } = conn;
    let tx = read_tx(ctx, client).await?;
    let mut map: BTreeMap<String, SecretSummary> = BTreeMap::new();
    for row in q(
        ctx,
        &tx,
        stmts,
        "SELECT s.secret, s.stage, s.version_id, v.created_at FROM rotor_stages s
         JOIN rotor_versions v ON v.secret = s.secret AND v.id = s.version_id",
        &[],
    )
    .await?
    {
        let stage: String = get(ctx, &row, 1)?;
        let id: String = get(ctx, &row, 2)?;
        let created_at: String = get(ctx, &row, 3)?;
        let stamp = Some(VersionStamp {
            id: parse_vid(ctx, &id)?,
            created_at: parse_ts(ctx, &created_at)?,
        });
        let entry = map.entry(get(ctx, &row, 0)?).or_default();
        match Stage::parse(&stage) {
            Some(Stage::Current) => entry.current = stamp,
            Some(Stage::Previous) => entry.previous = stamp,
            Some(Stage::Pending) => entry.pending = stamp,
            None => return Err(ctx.corrupt(format!("unknown stage {stage:?}")).into()),
        }
    }
    for row in q(
        ctx,
        &tx,
        stmts,
        "SELECT DISTINCT ON (secret) secret, record FROM rotor_rotations ORDER BY secret, rid DESC",
        &[],
    )
    .await?
    {
        let r = decode_rotation(ctx, &get::<String>(ctx, &row, 1)?)?;
        map.entry(get(ctx, &row, 0)?).or_default().last_rotation = Some(RotationStamp {
            id: r.id,
            status: r.status,
            step: r.step,
            started_at: r.started_at,
            error: r.error,
            retire_after: r.retire_after,
        });
    }
    tx.commit().await.map_err(|e| ctx.pg(e))?;
    map.into_iter()
        .map(|(name, mut s)| {
            s.secret = Some(parse_name(ctx, &name)?);
            Ok(s)
        })
        .collect()
}
