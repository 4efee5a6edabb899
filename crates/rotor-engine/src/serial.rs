//! One operation at a time per secret inside one process.
//!
//! Every engine entry point that changes a secret (rotate, resume, retire, abort, put, an
//! owed rollback) holds the secret's turn while it reads the store, takes the lease and
//! drives the steps. So a `rotor serve` whose API rotates a secret while its own scheduler
//! retires it runs the two one after the other, each on a fresh read; the engine never
//! "takes over" a lease held by a live job of its own process. Across processes the store's
//! leases (compare-and-set on the token) do the same job.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rotor_core::SecretName;
use tokio::sync::{Mutex as TurnLock, OwnedMutexGuard};

/// The turn of one secret: held while an operation on it runs.
pub(crate) type Turn = OwnedMutexGuard<()>;

/// Per-secret turns. Entries are tiny and bounded by the inventory, so they are never evicted.
#[derive(Debug, Default)]
pub(crate) struct Turns {
    locks: Mutex<HashMap<SecretName, Arc<TurnLock<()>>>>,
}

impl Turns {
    /// Waits for `secret`'s turn. Fair (FIFO), so a waiting API call is not starved by the
    /// scheduler.
    pub(crate) async fn take(&self, secret: &SecretName) -> Turn {
        let lock = {
            // A poisoned map only means a panic elsewhere while inserting; the map is intact.
            let mut locks = self
                .locks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            locks.entry(secret.clone()).or_default().clone()
        };
        lock.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_turn_per_secret() {
        let turns = Arc::new(Turns::default());
        let a = SecretName::new("a").expect("valid");
        let b = SecretName::new("b").expect("valid");
        let held = turns.take(&a).await;
        // Another secret is not blocked.
        let _b = turns.take(&b).await;
        let t2 = turns.clone();
        let a2 = a.clone();
        let waiter = tokio::spawn(async move {
            let _t = t2.take(&a2).await;
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(held);
        waiter.await.expect("joined");
    }
}
