//! Master-key rotation: rewrapping rows from the old key to the new one, in batches and
//! in the final transaction that moves the key check.

use std::path::Path;

use jiff::Timestamp;
use rotor_core::StoreError;
use rotor_core::audit::AuditEvent;
use rotor_seal::{AuditKey, KeyCheck, MasterKey};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use super::audit::append_audit;
use super::{Result, corrupt, fsynced};
use crate::{Ctx, sql_err};

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
    fsynced(ctx, conn, |conn| {
        rewrap_finish_tx(ctx, conn, old, new, check, actor)
    })
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
