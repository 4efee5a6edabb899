//! The SQL behind each [`rotor_core::Store`] method.
//!
//! Writes run in READ COMMITTED transactions that take their locks explicitly, always in
//! the same order (so they queue instead of deadlocking or failing at commit):
//!
//! 1. one transaction-scoped advisory lock per secret the change touches, in name order
//!    (`pg_advisory_xact_lock(SECRET_LOCK_CLASS, hashtext(secret))`): stage moves,
//!    `BeginRotation`'s "no other running rotation" check and the insert that follows are
//!    one critical section per secret, across replicas;
//! 2. the fenced rotation's row, `SELECT … FOR UPDATE` (also taken by `claim`), so a lease
//!    cannot change between the fence check and the commit;
//! 3. last, the single `rotor_audit_head` row, `FOR UPDATE`, held only for the few inserts
//!    that append the change's audit records: the chain is one total order across
//!    replicas, and the global serialization point is as short as it can be.
//!
//! Reads are single statements (one snapshot each) or, for `summaries`, a REPEATABLE READ
//! read-only transaction.

use std::collections::BTreeMap;

use jiff::Timestamp;
use rotor_core::audit::{AuditEvent, GENESIS, KEYED, Verified, verify_keyed};
use rotor_core::rotation::Lease;
use rotor_core::store::{
    Change, Dump, Fence, NewVersion, Op, RotationStamp, SecretSummary, Takeover, VersionStamp,
    Versioned,
};
use rotor_core::{
    AuditRecord, Rotation, RotationId, RotationStatus, SecretName, SecretValue, Stage, StoreError,
    VersionId, VersionMeta,
};
use rotor_seal::AuditKey;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, IsolationLevel, Row, Transaction};

use crate::Ctx;
use crate::pool::{PgConn, Stmts};

/// First key of the per-secret advisory locks ("Rots"); the second is `hashtext(secret)`.
/// A hash collision only makes two secrets share a lock.
pub(crate) const SECRET_LOCK_CLASS: i32 = 0x526f_7473;

/// Why a transaction did not commit.
#[derive(Debug)]
pub(crate) enum Fail {
    /// A serialization failure or deadlock: run the whole transaction again.
    Retry,
    Store(StoreError),
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

type Result<T, E = Fail> = std::result::Result<T, E>;

impl Ctx {
    pub(crate) fn corrupt(&self, detail: String) -> StoreError {
        StoreError::Corrupt {
            path: self.target.clone(),
            detail,
        }
    }

    /// Maps a driver error. Never includes a DETAIL line (it can quote row contents).
    pub(crate) fn pg(&self, e: tokio_postgres::Error) -> Fail {
        if let Some(code) = e.code()
            && (*code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED)
        {
            return Fail::Retry;
        }
        Fail::Store(crate::pg_error(&self.target, &e))
    }
}

fn parse_ts(ctx: &Ctx, s: &str) -> Result<Timestamp> {
    s.parse().map_err(|e| {
        ctx.corrupt(format!("bad timestamp {s:?} in a row: {e}"))
            .into()
    })
}

fn parse_name(ctx: &Ctx, s: &str) -> Result<SecretName> {
    SecretName::new(s).map_err(|e| ctx.corrupt(format!("bad secret name in a row: {e}")).into())
}

fn parse_vid(ctx: &Ctx, s: &str) -> Result<VersionId> {
    VersionId::parse(s).ok_or_else(|| ctx.corrupt(format!("bad version id {s:?} in a row")).into())
}

fn unique_violation(e: &tokio_postgres::Error) -> Option<String> {
    let db = e.as_db_error()?;
    (*db.code() == SqlState::UNIQUE_VIOLATION).then(|| db.constraint().unwrap_or("").to_owned())
}

/// Runs `sql` (prepared once per connection) and returns its rows.
async fn q<C: GenericClient + Sync>(
    ctx: &Ctx,
    tx: &C,
    stmts: &mut Stmts,
    sql: &'static str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>> {
    let st = stmts.get(tx, sql).await.map_err(|e| ctx.pg(e))?;
    tx.query(&st, params).await.map_err(|e| ctx.pg(e))
}

async fn q_opt<C: GenericClient + Sync>(
    ctx: &Ctx,
    tx: &C,
    stmts: &mut Stmts,
    sql: &'static str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<Row>> {
    Ok(q(ctx, tx, stmts, sql, params).await?.into_iter().next())
}

async fn exec<C: GenericClient + Sync>(
    ctx: &Ctx,
    tx: &C,
    stmts: &mut Stmts,
    sql: &'static str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64> {
    let st = stmts.get(tx, sql).await.map_err(|e| ctx.pg(e))?;
    tx.execute(&st, params).await.map_err(|e| ctx.pg(e))
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(ctx: &Ctx, row: &'a Row, i: usize) -> Result<T> {
    row.try_get(i).map_err(|e| {
        ctx.corrupt(format!("unexpected column {i} in a row: {e}"))
            .into()
    })
}

// ---------------------------------------------------------------------------------------
// writes

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
struct VersionRow<'a> {
    secret: &'a SecretName,
    id: &'a VersionId,
    created_at: &'a Timestamp,
    created_by: &'a str,
    metadata: &'a serde_json::Value,
    value: &'a SecretValue,
}

/// Seals the value with the master key, bound to `(secret, id)`, and inserts the row.
async fn insert_version_row(
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

async fn stage_holder(
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

fn lease_token(lease: Option<&Lease>) -> i64 {
    lease.map_or(0, |l| i64::try_from(l.token).unwrap_or(i64::MAX))
}

fn rotation_json(r: &Rotation) -> Result<String> {
    serde_json::to_string(r)
        .map_err(|e| StoreError::Backend(format!("cannot encode rotation {}: {e}", r.id)).into())
}

fn decode_rotation(ctx: &Ctx, json: &str) -> Result<Rotation> {
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
async fn begin_rotation(
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
        Err(e) => match unique_violation(&e).as_deref() {
            // Cannot happen under the secret lock; if it does, the retry sees the winner.
            Some("rotor_rotations_one_running") => Err(Fail::Retry),
            Some(_) => Err(StoreError::Backend(format!("rotation {} already exists", r.id)).into()),
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
async fn save_rotation(
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
async fn insert_audit(
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

// ---------------------------------------------------------------------------------------
// reads

/// A read-only snapshot for reads that take several statements.
async fn read_tx<'c>(ctx: &Ctx, client: &'c mut tokio_postgres::Client) -> Result<Transaction<'c>> {
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
fn version_meta(ctx: &Ctx, secret: &SecretName, row: &Row) -> Result<VersionMeta> {
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
    let PgConn { client, stmts } = conn;
    let row = q_opt(
        ctx,
        &*client,
        stmts,
        "SELECT v.id, v.created_at, v.created_by, v.metadata,
                ARRAY(SELECT s2.stage FROM rotor_stages s2 WHERE s2.secret = v.secret AND s2.version_id = v.id),
                v.sealed
         FROM rotor_stages s JOIN rotor_versions v ON v.secret = s.secret AND v.id = s.version_id
         WHERE s.secret = $1 AND s.stage = $2",
        &[&secret.as_str(), &stage.as_str()],
    )
    .await?;
    let Some(row) = row else { return Ok(None) };
    let meta = version_meta(ctx, secret, &row)?;
    let sealed: Vec<u8> = get(ctx, &row, 5)?;
    open_value(ctx, meta, &sealed).map(Some)
}

pub(crate) async fn read_version(
    ctx: &Ctx,
    conn: &mut PgConn,
    secret: &SecretName,
    id: &VersionId,
) -> Result<Option<Versioned>> {
    let PgConn { client, stmts } = conn;
    let row = q_opt(
        ctx,
        &*client,
        stmts,
        "SELECT v.id, v.created_at, v.created_by, v.metadata,
                ARRAY(SELECT s.stage FROM rotor_stages s WHERE s.secret = v.secret AND s.version_id = v.id),
                v.sealed
         FROM rotor_versions v WHERE v.secret = $1 AND v.id = $2",
        &[&secret.as_str(), &id.as_str()],
    )
    .await?;
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

/// One summary per secret with any version or rotation, sorted by name: three set-wise
/// queries in one REPEATABLE READ snapshot, however many secrets there are.
pub(crate) async fn summaries(ctx: &Ctx, conn: &mut PgConn) -> Result<Vec<SecretSummary>> {
    let PgConn { client, stmts } = conn;
    let tx = read_tx(ctx, client).await?;
    let mut map: BTreeMap<String, SecretSummary> = BTreeMap::new();
    for row in q(
        ctx,
        &tx,
        stmts,
        "SELECT secret, COUNT(*) FROM rotor_versions GROUP BY secret",
        &[],
    )
    .await?
    {
        let n: i64 = get(ctx, &row, 1)?;
        map.entry(get(ctx, &row, 0)?).or_default().versions = u64::try_from(n).unwrap_or(0);
    }
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

fn audit_row(ctx: &Ctx, row: &Row) -> Result<AuditRecord> {
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

// ---------------------------------------------------------------------------------------
// store migration

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
        let json = rotation_json(r)?;
        let st = stmts
            .get(
                &tx,
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
            Ok(_) => {}
            Err(e) if unique_violation(&e).is_some() => {
                return Err(StoreError::Backend(format!(
                    "rotation {} appears twice in the dump (or secret {} has two running rotations)",
                    r.id, r.secret
                ))
                .into());
            }
            Err(e) => return Err(ctx.pg(e)),
        }
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
