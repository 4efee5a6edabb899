//! Master-key rotation (`rotor master-key rotate`) on an open store: the rewrap protocol
//! described in the crate docs.

use std::sync::Arc;

use rotor_core::StoreError;
use rotor_seal::{KeyCheck, MasterKey};

use crate::{REWRAP_BATCH, SqliteStore, copy_key, db, seal_error};

impl SqliteStore {
    /// Rewraps up to `limit` values not yet under `new` (by their `key_id` column) from
    /// `old` to `new`, in one committed `BEGIN IMMEDIATE` transaction. Returns how many it
    /// rewrapped; 0 when none is left. Only the wrapped data key and `key_id` change, never
    /// the value ciphertext. A row under neither key fails the batch with
    /// `WrongMasterKey` naming its secret and version (nothing of the batch is written).
    pub async fn rewrap_batch(
        &self,
        old: &MasterKey,
        new: &MasterKey,
        limit: usize,
    ) -> Result<u64, StoreError> {
        let (old, new) = (copy_key(old)?, copy_key(new)?);
        let limit = limit.max(1);
        self.run_write(move |ctx, conn| db::rewrap_batch(ctx, conn, &old, &new, 0, limit))
            .await
            .map(|(n, _)| n)
    }

    /// Master-key rotation (`rotor master-key rotate`): rewraps every version's data key
    /// from `old` to `new` in committed batches of [`REWRAP_BATCH`], then, in ONE final
    /// transaction (which holds SQLite's write lock, so no writer can slip in), rewraps any
    /// row written meanwhile under another key, replaces the key check with one for `new`
    /// and appends `store.master_key.rotate` (actor `actor`, both key ids in `reason`) to
    /// the audit log. The final commit is always fsynced (`synchronous = FULL`), whatever
    /// [`Settings::synchronous`](crate::Settings::synchronous) says. Returns the number of
    /// rows rewrapped.
    ///
    /// Crash-safe and resumable: each batch commits on its own, every row is always under
    /// exactly one of the two keys (readable by a handle from
    /// [`SqliteStore::open_rotating`]), and re-running skips rows already under `new`
    /// (re-running after completion rewraps nothing, returns 0 and records the rotation
    /// again). Until the final commit the key check is still `old`'s, so
    /// [`SqliteStore::open`] with `old` alone still opens the store (and reads the rows not
    /// yet rewrapped; a rewrapped row is `WrongMasterKey` naming its secret and version);
    /// afterwards only `new` opens it. Fails with `WrongMasterKey` when the key check is
    /// under neither key.
    pub async fn rewrap_all(
        &self,
        old: &MasterKey,
        new: &MasterKey,
        actor: &str,
    ) -> Result<u64, StoreError> {
        let (old, new) = (Arc::new(copy_key(old)?), Arc::new(copy_key(new)?));
        let mut total = 0u64;
        // Keyset pagination by `vid`: each batch starts after the last row the previous one
        // looked at, so the batches together read the table once. Rows skipped that way
        // (none in practice: `vid`s only grow) are caught by the final pass.
        let mut after = 0i64;
        loop {
            let (o, n) = (Arc::clone(&old), Arc::clone(&new));
            let (done, last) = self
                .run_write(move |ctx, conn| {
                    db::rewrap_batch(ctx, conn, &o, &n, after, REWRAP_BATCH)
                })
                .await?;
            if done == 0 {
                break;
            }
            total += done;
            after = last;
        }
        let check = KeyCheck::new(&new).map_err(seal_error)?;
        let actor = actor.to_owned();
        let last = self
            .run_write(move |ctx, conn| db::rewrap_finish(ctx, conn, &old, &new, &check, &actor))
            .await?;
        Ok(total + last)
    }
}
