//! Master-key rotation (`rotor master-key rotate`) on a connected store: committed batches
//! rewrap the rows not yet under the new key, then one final transaction rewraps the
//! stragglers, moves the key check to the new key and records it.

use rotor_core::StoreError;
use rotor_core::audit::AuditEvent;
use rotor_seal::{AuditKey, KeyCheck, MasterKey};

use crate::pool::PgConn;
use crate::{Ctx, PgStore, REWRAP_BATCH, db, fail, pg_error, seal_error};

impl PgStore {
    /// Rewraps up to `limit` values not yet under `new` from `old` to `new`, in one
    /// committed transaction (rows another process is rewrapping are skipped:
    /// `FOR UPDATE SKIP LOCKED`). Returns how many it rewrapped; 0 when none is left.
    /// Only the wrapped data key and `key_id` change, never the value ciphertext.
    pub async fn rewrap_batch(
        &self,
        old: &MasterKey,
        new: &MasterKey,
        limit: usize,
    ) -> Result<u64, StoreError> {
        let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
        pooled!(self, |ctx, conn| async {
            let tx = conn
                .client
                .transaction()
                .await
                .map_err(|e| pg_error(&ctx.target, &e))?;
            let n = rewrap_rows(ctx, &tx, old, new, Some(limit)).await?;
            tx.commit().await.map_err(|e| pg_error(&ctx.target, &e))?;
            Ok::<_, StoreError>(n)
        })
    }

    /// Master-key rotation: rewraps every version's data key from `old` to `new` in
    /// committed batches of [`REWRAP_BATCH`], then, in one transaction that locks
    /// `rotor_versions` against writers, rewraps any row written meanwhile, replaces the
    /// key check with one for `new` and appends `store.master_key.rotate` (actor `actor`)
    /// to the audit log. Returns the number of rows rewrapped.
    ///
    /// Crash-safe and resumable: each batch commits on its own, every row is always under
    /// exactly one of the two keys (readable by a handle from
    /// [`PgStore::connect_rotating`]), and re-running skips rows already under `new`.
    /// Until the final commit the key check is still `old`'s, so a handle with `old` alone
    /// still opens the store (and can read the rows not yet rewrapped); afterwards only
    /// `new` opens it.
    pub async fn rewrap_all(
        &self,
        old: &MasterKey,
        new: &MasterKey,
        actor: &str,
    ) -> Result<u64, StoreError> {
        let mut total = 0u64;
        loop {
            let n = self.rewrap_batch(old, new, REWRAP_BATCH).await?;
            if n == 0 {
                break;
            }
            total += n;
        }
        let check = KeyCheck::new(new).map_err(seal_error)?;
        let last = pooled!(self, |ctx, conn| async {
            let pg = |e: tokio_postgres::Error| pg_error(&ctx.target, &e);
            let PgConn { client, stmts } = conn;
            let tx = client.transaction().await.map_err(pg)?;
            tx.batch_execute("LOCK TABLE rotor_versions IN SHARE ROW EXCLUSIVE MODE")
                .await
                .map_err(pg)?;
            let n = rewrap_rows(ctx, &tx, old, new, None).await?;
            let stored: Vec<u8> = tx
                .query_one(
                    "SELECT value FROM rotor_meta WHERE key = 'key_check' FOR UPDATE",
                    &[],
                )
                .await
                .map_err(pg)?
                .try_get(0)
                .map_err(pg)?;
            let stored = KeyCheck::from_bytes(&stored).map_err(|e| StoreError::Corrupt {
                path: ctx.target.clone(),
                detail: format!("its master-key check record is damaged: {e}"),
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
                "UPDATE rotor_meta SET value = $1 WHERE key = 'key_check'",
                &[&check.to_bytes()],
            )
            .await
            .map_err(pg)?;
            let event = AuditEvent::new(actor, "store.master_key.rotate").reason(Some(&format!(
                "master key {} replaced by {}",
                old.key_id(),
                new.key_id()
            )));
            // MACs under the old key no longer verify once only the new key opens the
            // store: they apply again from this record (`store.master_key.rotate` starts
            // them, like `audit.keyed`), which the chain binds to every record before it.
            db::append_audit(ctx, &AuditKey::for_records(new), &tx, stmts, None, &[event])
                .await
                .map_err(fail)?;
            tx.commit().await.map_err(pg)?;
            Ok::<_, StoreError>(n)
        })?;
        Ok(total + last)
    }
}

/// Rewraps rows whose `key_id` is not `new`'s (at most `limit`), inside `tx`.
async fn rewrap_rows(
    ctx: &Ctx,
    tx: &tokio_postgres::Transaction<'_>,
    old: &MasterKey,
    new: &MasterKey,
    limit: Option<i64>,
) -> Result<u64, StoreError> {
    let pg = |e: tokio_postgres::Error| pg_error(&ctx.target, &e);
    let new_id = new.key_id().to_string();
    let rows = tx
        .query(
            "SELECT vid, secret, id, sealed FROM rotor_versions WHERE key_id <> $1
             ORDER BY vid LIMIT $2 FOR UPDATE SKIP LOCKED",
            &[&new_id, &limit],
        )
        .await
        .map_err(pg)?;
    let update = tx
        .prepare("UPDATE rotor_versions SET sealed = $1, key_id = $2 WHERE vid = $3")
        .await
        .map_err(pg)?;
    let mut n = 0u64;
    for row in &rows {
        let vid: i64 = row.try_get(0).map_err(pg)?;
        let secret: String = row.try_get(1).map_err(pg)?;
        let id: String = row.try_get(2).map_err(pg)?;
        let bytes: Vec<u8> = row.try_get(3).map_err(pg)?;
        let tampered = || StoreError::Tampered {
            secret: secret.clone(),
            version: id.clone(),
        };
        let rewrapped =
            rotor_seal::rewrap_version(old, new, &secret, &id, &bytes).map_err(|e| match e {
                rotor_seal::Error::WrongMasterKey { .. } => StoreError::WrongMasterKey {
                    detail: format!("secret {secret}, version {id}: {e}"),
                },
                _ => tampered(),
            })?;
        tx.execute(
            &update,
            &[&rewrapped.to_bytes(), &rewrapped.key_id.to_string(), &vid],
        )
        .await
        .map_err(pg)?;
        n += 1;
    }
    Ok(n)
}
