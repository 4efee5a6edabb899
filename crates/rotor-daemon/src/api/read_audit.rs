//! Value reads through the API on the audit record, coalesced so the read path stays fast.
//!
//! The first read of a `(token, secret, version, stage)` is recorded before its value is
//! answered (a read whose record cannot be written is answered 503, without the value).
//! Later reads of the same key only count in memory; every [`FLUSH_EVERY`] the counts are
//! written as one `secret.read` record per key (`count=N`), and once more when the daemon
//! stops. So no read goes unrecorded; a crash loses at most the counts of the last interval
//! (never the fact that the token read that version). A key with no reads in an interval is
//! forgotten, so the next read of it is recorded at once again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rotor_core::{SecretName, Stage, VersionId};
use rotor_engine::{Engine, ReadChannel, ValueRead};
use tokio_util::sync::CancellationToken;

use super::ApiError;

/// How often coalesced read counts are written.
pub const FLUSH_EVERY: Duration = Duration::from_secs(10);

type Key = (String, SecretName, VersionId, Stage);

/// The API's read recorder. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct ReadAudit {
    engine: Arc<Engine>,
    /// Reads since the last flush, per key; a key is present once its first read is recorded
    /// (or being recorded).
    counts: Arc<Mutex<HashMap<Key, u64>>>,
}

impl ReadAudit {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self {
            engine,
            counts: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut HashMap<Key, u64>) -> R) -> R {
        let mut m = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut m)
    }

    /// Records a read of `secret`'s `version` at `stage` by the token `token`; returns once it
    /// is recorded or counted.
    pub async fn record(
        &self,
        token: &str,
        secret: &SecretName,
        version: &VersionId,
        stage: Stage,
    ) -> Result<(), ApiError> {
        let key = (token.to_owned(), secret.clone(), version.clone(), stage);
        let first = self.with(|m| match m.get_mut(&key) {
            Some(c) => {
                *c += 1;
                false
            }
            None => {
                m.insert(key.clone(), 0);
                true
            }
        });
        if !first {
            return Ok(());
        }
        let read = read_of(&key, 1);
        if let Err(e) = self.engine.record_reads(&[read]).await {
            tracing::error!(error = %e, secret = %secret, "cannot record a value read; refusing it");
            // Keep the key only if others counted on it meanwhile (the flush records them).
            self.with(|m| {
                if m.get(&key) == Some(&0) {
                    m.remove(&key);
                }
            });
            return Err(ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "audit_unavailable",
                "the read cannot be put on the audit record right now, so the value is not served; try again",
            ));
        }
        Ok(())
    }

    /// Writes the counts gathered since the last flush; forgets keys read no more.
    pub async fn flush(&self) {
        // Keys with no repeats are dropped here; a read meanwhile is recorded at once.
        let batch: Vec<(Key, u64)> = self.with(|m| m.drain().filter(|(_, c)| *c > 0).collect());
        if batch.is_empty() {
            return;
        }
        let reads: Vec<ValueRead> = batch.iter().map(|(k, n)| read_of(k, *n)).collect();
        if let Err(e) = self.engine.record_reads(&reads).await {
            tracing::error!(error = %e, "cannot write coalesced value reads; keeping them for the next try");
            self.with(|m| {
                for (k, n) in batch {
                    *m.entry(k).or_insert(0) += n;
                }
            });
        } else {
            // The keys just written stay known (their reads are on the record), counted anew.
            self.with(|m| {
                for (k, _) in batch {
                    m.entry(k).or_insert(0);
                }
            });
        }
    }

    /// Flushes every [`FLUSH_EVERY`] until `shutdown`, then once more.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.flush().await,
                () = shutdown.cancelled() => break,
            }
        }
        self.flush().await;
    }
}

fn read_of(key: &Key, count: u64) -> ValueRead {
    ValueRead {
        actor: format!("token {}", key.0),
        secret: key.1.clone(),
        version: key.2.clone(),
        stage: key.3,
        channel: ReadChannel::Api,
        count,
    }
}
