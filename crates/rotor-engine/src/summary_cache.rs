//! The store's per-secret summaries as last read, kept while the audit chain's head stays
//! where it was.
//!
//! Why it is safe: whatever a summary holds (a stage, a rotation's status, step, error or
//! retire time) changes only inside a change that appends an audit record in the same
//! transaction (the `Store` contract; lease renewals and releases touch none of it). The
//! head is read *before* the summaries, so summaries that already include a later change
//! are kept under an older head and are read again at the next call. What is cached is the
//! store's facts, never a state: every caller still evaluates them against its own clock.
//!
//! Why: the daemon's page, API and `/metrics` read every secret's rows on each request,
//! about 45 ms at 10,000 secrets; a scrape every 15 s of an idle inventory now costs one
//! indexed read of the newest audit record instead.

use std::sync::{Arc, Mutex, PoisonError};

use rotor_core::Store;
use rotor_core::store::SecretSummary;

use crate::EngineError;

/// Summaries sorted by name, with the audit head (sequence number) read before them.
#[derive(Debug, Default)]
pub(crate) struct SummaryCache(Mutex<Option<(u64, Arc<Vec<SecretSummary>>)>>);

impl SummaryCache {
    /// The summaries of `store`, sorted by secret name: the kept ones while the audit head
    /// is unchanged, else read again (and kept).
    pub(crate) async fn read(
        &self,
        store: &dyn Store,
    ) -> Result<Arc<Vec<SecretSummary>>, EngineError> {
        let head = store.audit_tail(1).await?.last().map(|r| r.seq);
        if let Some(head) = head
            && let Some((seq, kept)) = self.lock().as_ref()
            && *seq == head
        {
            return Ok(Arc::clone(kept));
        }
        // `Engine::status` finds secrets by binary search, so the order is made sure of here
        // (the stores already return name order, on which the sort is a single pass).
        let mut fresh = store.summaries().await?;
        fresh.sort_unstable_by(|a, b| a.secret.cmp(&b.secret));
        let fresh = Arc::new(fresh);
        if let Some(head) = head {
            *self.lock() = Some((head, Arc::clone(&fresh)));
        }
        Ok(fresh)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(u64, Arc<Vec<SecretSummary>>)>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
