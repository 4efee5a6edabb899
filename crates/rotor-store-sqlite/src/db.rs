//! The SQL behind each [`rotor_core::Store`] method, synchronous, on one connection.
//!
//! Writes run in one `BEGIN IMMEDIATE` transaction each (so concurrent writers serialize on
//! SQLite's lock instead of failing at commit); reads that take several queries run in one
//! deferred transaction so they see one snapshot.

use std::collections::BTreeMap;
use std::path::Path;

use jiff::Timestamp;
use rotor_core::audit::{AuditEvent, KEYED, Verified, verify_chain, verify_keyed};
use rotor_core::rotation::Lease;
use rotor_core::store::{
    Change, Dump, Fence, NewVersion, Op, RotationStamp, SecretSummary, Takeover, VersionStamp,
    Versioned,
};
use rotor_core::{
    AuditRecord, Rotation, RotationId, RotationStatus, SecretName, SecretValue, Stage, StoreError,
    VersionId, VersionMeta,
};
use rotor_seal::{AuditKey, KeyCheck, MasterKey};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};

use crate::{Ctx, Synchronous, show, sql_err};

type Result<T, E = StoreError> = std::result::Result<T, E>;

fn corrupt(path: &Path, detail: String) -> StoreError {
    StoreError::Corrupt {
        path: show(path),
        detail,
    }
}

fn ts(t: &Timestamp) -> String {
    // jiff prints as many fractional digits as needed (up to nanoseconds): exact round trip.
    t.to_string()
}

fn parse_ts(path: &Path, s: &str) -> Result<Timestamp> {
    s.parse()
        .map_err(|e| corrupt(path, format!("bad timestamp {s:?} in a row: {e}")))
}

fn parse_name(path: &Path, s: &str) -> Result<SecretName> {
    SecretName::new(s).map_err(|e| corrupt(path, format!("bad secret name in a row: {e}")))
}

fn parse_vid(path: &Path, s: &str) -> Result<VersionId> {
    VersionId::parse(s).ok_or_else(|| corrupt(path, format!("bad version id {s:?} in a row")))
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}

// ---------------------------------------------------------------------------------------
// writes

pub(crate) fn apply(ctx: &Ctx, conn: &mut Connection, change: Change) -> Result<Vec<AuditRecord>> {
    let path = ctx.path.as_path();
    let raise = ctx.synchronous == Synchronous::Hybrid
        && change
            .ops
            .iter()
            .any(|op| matches!(op, Op::InsertVersion { .. }));
    if !raise {
        return apply_tx(ctx, conn, change);
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|e| sql_err(path, e))?;
    let result = apply_tx(ctx, conn, change);
    // Not an error of the change, which has committed (or not) already: if lowering fails
    // the connection simply stays at FULL, which is slower but never less durable.
    let _ = conn.pragma_update(None, "synchronous", "NORMAL");
    result
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

/// Inserts a rotation row (columns and JSON record) as it is.
fn insert_rotation(tx: &Transaction<'_>, path: &Path, r: &Rotation) -> Result<()> {
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

fn insert_version(ctx: &Ctx, tx: &Transaction<'_>, v: &NewVersion) -> Result<()> {
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

fn lease_token(lease: Option<&Lease>) -> i64 {
    lease.map_or(0, |l| i64::try_from(l.token).unwrap_or(i64::MAX))
}

fn rotation_json(r: &Rotation) -> Result<String> {
    serde_json::to_string(r)
        .map_err(|e| StoreError::Backend(format!("cannot encode rotation {}: {e}", r.id)))
}

fn running_rotation(
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

fn load_rotation(conn: &Connection, path: &Path, id: &RotationId) -> Result<Option<Rotation>> {
    let json: Option<String> = conn
        .prepare_cached("SELECT record FROM rotations WHERE id = ?1")
        .and_then(|mut s| s.query_row([id.as_str()], |r| r.get(0)).optional())
        .map_err(|e| sql_err(path, e))?;
    json.map(|j| decode_rotation(path, &j)).transpose()
}

fn decode_rotation(path: &Path, json: &str) -> Result<Rotation> {
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
fn save_rotation(tx: &Transaction<'_>, path: &Path, mut r: Rotation) -> Result<()> {
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

/// The audit `INSERT` of one record with every column.
const INSERT_AUDIT: &str = "INSERT INTO audit (seq, time, actor, action, secret, versions, rotation, reason, outcome, prev_hash, hash, mac)
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
fn insert_audit(
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

// ---------------------------------------------------------------------------------------
// reads

fn read_tx<'c>(conn: &'c mut Connection, path: &Path) -> Result<Transaction<'c>> {
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

const VERSION_COLS: &str = "v.id, v.created_at, v.created_by, v.metadata";

fn version_meta(
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
fn open_value(
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

fn rotation_list(
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

/// One summary per secret with any version or rotation, sorted by name. Three set-wise
/// queries over indexes (counts, stage labels joined to their versions, newest rotation per
/// secret), however many secrets there are.
pub(crate) fn summaries(ctx: &Ctx, conn: &mut Connection) -> Result<Vec<SecretSummary>> {
    let path = ctx.path.as_path();
    let e = |e| sql_err(path, e);
    let tx = read_tx(conn, path)?;
    let mut map: BTreeMap<String, SecretSummary> = BTreeMap::new();
    {
        let mut stmt = tx
            .prepare_cached("SELECT secret, COUNT(*) FROM versions GROUP BY secret")
            .map_err(e)?;
        let mut rows = stmt.query([]).map_err(e)?;
        while let Some(row) = rows.next().map_err(e)? {
            let name: String = row.get(0).map_err(e)?;
            let n: i64 = row.get(1).map_err(e)?;
            let entry = map.entry(name).or_default();
            entry.versions = u64::try_from(n).unwrap_or(0);
        }
    }
    {
        let mut stmt = tx
            .prepare_cached(
                "SELECT s.secret, s.stage, s.version_id, v.created_at FROM stages s
                 JOIN versions v ON v.secret = s.secret AND v.id = s.version_id",
            )
            .map_err(e)?;
        let mut rows = stmt.query([]).map_err(e)?;
        while let Some(row) = rows.next().map_err(e)? {
            let name: String = row.get(0).map_err(e)?;
            let stage: String = row.get(1).map_err(e)?;
            let id: String = row.get(2).map_err(e)?;
            let created_at: String = row.get(3).map_err(e)?;
            let stamp = Some(VersionStamp {
                id: parse_vid(path, &id)?,
                created_at: parse_ts(path, &created_at)?,
            });
            let entry = map.entry(name).or_default();
            match Stage::parse(&stage) {
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
            let name: String = row.get(0).map_err(e)?;
            let json: String = row.get(1).map_err(e)?;
            let r = decode_rotation(path, &json)?;
            map.entry(name).or_default().last_rotation = Some(RotationStamp {
                id: r.id,
                status: r.status,
                step: r.step,
                started_at: r.started_at,
                error: r.error,
                retire_after: r.retire_after,
            });
        }
    }
    map.into_iter()
        .map(|(name, mut s)| {
            s.secret = Some(parse_name(path, &name)?);
            Ok(s)
        })
        .collect()
}

const AUDIT_COLS: &str =
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

fn audit_list(
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

// ---------------------------------------------------------------------------------------
// master-key rotation

/// Rewraps, inside `tx`, the rows after `vid` `after` whose `key_id` is not `new`'s, in
/// `vid` order, at most `limit` (all when `None`). Returns how many it rewrapped and the
/// last `vid` it looked at (`after` when none).
fn rewrap_rows(
    tx: &Transaction<'_>,
    path: &Path,
    old: &MasterKey,
    new: &MasterKey,
    after: i64,
    limit: Option<usize>,
) -> Result<(u64, i64)> {
    let e = |e| sql_err(path, e);
    let new_id = new.key_id().to_string();
    // LIMIT -1: no limit.
    let limit = limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
    let rows: Vec<(i64, String, String, Vec<u8>)> = {
        let mut stmt = tx
            .prepare_cached(
                "SELECT vid, secret, id, sealed FROM versions WHERE key_id <> ?1 AND vid > ?2
                 ORDER BY vid LIMIT ?3",
            )
            .map_err(e)?;
        stmt.query_map(params![new_id, after, limit], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .and_then(Iterator::collect)
        .map_err(e)?
    };
    let mut update = tx
        .prepare_cached("UPDATE versions SET sealed = ?1, key_id = ?2 WHERE vid = ?3")
        .map_err(e)?;
    let mut last = after;
    for (vid, secret, id, bytes) in &rows {
        let tampered = || StoreError::Tampered {
            secret: secret.clone(),
            version: id.clone(),
        };
        let rewrapped =
            rotor_seal::rewrap_version(old, new, secret, id, bytes).map_err(|err| match err {
                rotor_seal::Error::WrongMasterKey { .. } => StoreError::WrongMasterKey {
                    detail: format!("secret {secret}, version {id}: {err}"),
                },
                _ => tampered(),
            })?;
        update
            .execute(params![
                rewrapped.to_bytes(),
                rewrapped.key_id.to_string(),
                vid
            ])
            .map_err(e)?;
        last = *vid;
    }
    Ok((rows.len() as u64, last))
}

/// One committed batch of [`rewrap_rows`].
pub(crate) fn rewrap_batch(
    ctx: &Ctx,
    conn: &mut Connection,
    old: &MasterKey,
    new: &MasterKey,
    after: i64,
    limit: usize,
) -> Result<(u64, i64)> {
    let path = ctx.path.as_path();
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| sql_err(path, e))?;
    let out = rewrap_rows(&tx, path, old, new, after, Some(limit))?;
    tx.commit().map_err(|e| sql_err(path, e))?;
    Ok(out)
}

/// The last transaction of a master-key rotation: rewraps every row still not under `new`,
/// moves the key check to `check` (`new`'s) and appends `store.master_key.rotate`. Always
/// committed with `synchronous = FULL`.
pub(crate) fn rewrap_finish(
    ctx: &Ctx,
    conn: &mut Connection,
    old: &MasterKey,
    new: &MasterKey,
    check: &KeyCheck,
    actor: &str,
) -> Result<u64> {
    let path = ctx.path.as_path();
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|e| sql_err(path, e))?;
    let result = rewrap_finish_tx(ctx, conn, old, new, check, actor);
    // As in `apply`: if lowering fails the connection stays at FULL (slower, never less
    // durable).
    let _ = conn.pragma_update(None, "synchronous", ctx.synchronous.pragma());
    result
}

fn rewrap_finish_tx(
    ctx: &Ctx,
    conn: &mut Connection,
    old: &MasterKey,
    new: &MasterKey,
    check: &KeyCheck,
    actor: &str,
) -> Result<u64> {
    let path = ctx.path.as_path();
    let e = |e| sql_err(path, e);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(e)?;
    let (n, _) = rewrap_rows(&tx, path, old, new, 0, None)?;
    let stored: Vec<u8> = tx
        .query_row("SELECT value FROM meta WHERE key = 'key_check'", [], |r| {
            r.get(0)
        })
        .optional()
        .map_err(e)?
        .ok_or_else(|| corrupt(path, "it has no master-key check record".into()))?;
    let stored = KeyCheck::from_bytes(&stored).map_err(|err| {
        corrupt(
            path,
            format!("its master-key check record is damaged: {err}"),
        )
    })?;
    if stored.verify(old).is_err() && stored.verify(new).is_err() {
        return Err(StoreError::WrongMasterKey {
            detail: format!(
                "the store's key check is under master key id {}, neither the old ({}) nor the new ({}) key",
                stored.key_id(),
                old.key_id(),
                new.key_id()
            ),
        });
    }
    tx.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'key_check'",
        params![check.to_bytes()],
    )
    .map_err(e)?;
    let event = AuditEvent::new(actor, "store.master_key.rotate").reason(Some(&format!(
        "master key {} replaced by {}",
        old.key_id(),
        new.key_id()
    )));
    // MACs under the old key no longer verify once only the new key opens the store: they
    // apply again from this record (`store.master_key.rotate` starts them, like
    // `audit.keyed`), which the chain binds to every record before it.
    append_audit(
        &tx,
        path,
        &AuditKey::for_records(new),
        Timestamp::now(),
        vec![event],
    )?;
    tx.commit().map_err(e)?;
    Ok(n)
}

// ---------------------------------------------------------------------------------------
// store migration

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
    let path = ctx.path.as_path();
    // Copied verbatim, a broken chain would stay broken: refuse it before writing.
    verify_chain(&dump.audit).map_err(|err| {
        StoreError::Backend(format!(
            "the audit log to import does not verify ({err}); nothing was imported"
        ))
    })?;
    // Like a change that inserts versions: new values are durable before this returns.
    let raise = ctx.synchronous == Synchronous::Hybrid;
    if raise {
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(|e| sql_err(path, e))?;
    }
    let result = import_tx(ctx, conn, dump, event);
    if raise {
        let _ = conn.pragma_update(None, "synchronous", "NORMAL");
    }
    result
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
