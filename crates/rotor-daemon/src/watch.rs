//! Stage changes for `GET /v1/watch`: one hub, fed two ways.
//!
//! - **push**: the hub is a [`Deliver`] target registered on the engine, so changes this
//!   process makes (scheduler, API, emergency) are seen the moment the engine commits them;
//! - **poll**: while anyone watches, the store's `summaries()` are read every ~200 ms and
//!   diffed, so changes made by other processes (`rotor rotate` on the CLI, another replica)
//!   are seen within a second.
//!
//! Both go through one per-secret snapshot (current and previous version ids), so a change is
//! announced once whichever path sees it first. Events carry names and version ids only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rotor_core::store::SecretSummary;
use rotor_core::{SecretName, Stage, Store, VersionId};
use rotor_engine::{Deliver, StageChange};
use serde::Serialize;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// One event of the watch stream: `{"secret","stage_change","version"}` where `version` is
/// the current version after the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WatchEvent {
    pub secret: SecretName,
    pub stage_change: StageChange,
    pub version: Option<VersionId>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Snap {
    current: Option<VersionId>,
    previous: Option<VersionId>,
}

impl Snap {
    fn of(s: &SecretSummary) -> Self {
        Self {
            current: s.current.as_ref().map(|v| v.id.clone()),
            previous: s.previous.as_ref().map(|v| v.id.clone()),
        }
    }
}

type Listener = Box<dyn Fn(&WatchEvent) + Send + Sync>;

struct Inner {
    tx: broadcast::Sender<WatchEvent>,
    store: Arc<dyn Store>,
    seen: Mutex<HashMap<String, Snap>>,
    listeners: Mutex<Vec<Listener>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchHub")
            .field("subscribers", &self.tx.receiver_count())
            .finish_non_exhaustive()
    }
}

/// The stage-change hub. Cheap to clone.
#[derive(Debug, Clone)]
pub struct WatchHub {
    inner: Arc<Inner>,
}

impl WatchHub {
    pub fn new(store: Arc<dyn Store>) -> Self {
        let (tx, _) = broadcast::channel(1024);
        Self {
            inner: Arc::new(Inner {
                tx,
                store,
                seen: Mutex::new(HashMap::new()),
                listeners: Mutex::new(Vec::new()),
            }),
        }
    }

    /// A receiver of every later event.
    pub fn subscribe(&self) -> broadcast::Receiver<WatchEvent> {
        self.inner.tx.subscribe()
    }

    pub fn subscribers(&self) -> usize {
        self.inner.tx.receiver_count()
    }

    /// Calls `f` for every event (in-process consumers such as the value cache).
    pub fn on_event(&self, f: impl Fn(&WatchEvent) + Send + Sync + 'static) {
        self.lock_listeners().push(Box::new(f));
    }

    fn lock_listeners(&self) -> std::sync::MutexGuard<'_, Vec<Listener>> {
        self.inner
            .listeners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn emit(&self, ev: WatchEvent) {
        for f in self.lock_listeners().iter() {
            f(&ev);
        }
        // No receivers is fine: nobody is watching.
        let _ = self.inner.tx.send(ev);
    }

    /// Records `snap` for `secret`; emits when it changed (classified by `hint` if given).
    fn observe(&self, secret: &SecretName, snap: Snap, hint: Option<StageChange>) {
        let old = {
            let mut seen = self
                .inner
                .seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let old = seen.get(secret.as_str()).cloned();
            if old.as_ref() == Some(&snap) {
                return;
            }
            seen.insert(secret.to_string(), snap.clone());
            old
        };
        let old = old.unwrap_or_default();
        let change = if snap.current != old.current {
            hint.unwrap_or(StageChange::Finished)
        } else if old.previous.is_some() && snap.previous.is_none() {
            hint.unwrap_or(StageChange::Retired)
        } else {
            // Only `previous` appeared or changed alongside: nothing consumers act on.
            return;
        };
        self.emit(WatchEvent {
            secret: secret.clone(),
            stage_change: change,
            version: snap.current,
        });
    }

    /// Reads every summary once and records it without emitting (the baseline).
    pub async fn prime(&self) -> Result<(), rotor_core::StoreError> {
        let summaries = self.inner.store.summaries().await?;
        let mut seen = self
            .inner
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for s in summaries {
            if let Some(name) = &s.secret {
                seen.insert(name.to_string(), Snap::of(&s));
            }
        }
        Ok(())
    }

    /// Reads every summary once and emits what changed since the last look.
    pub async fn poll_once(&self) -> Result<(), rotor_core::StoreError> {
        for s in self.inner.store.summaries().await? {
            if let Some(name) = &s.secret {
                self.observe(name, Snap::of(&s), None);
            }
        }
        Ok(())
    }

    /// Polls every `period` while anyone watches, until `shutdown`.
    pub async fn run_poller(self, period: std::time::Duration, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(period) => {}
            }
            if self.subscribers() == 0 {
                continue;
            }
            if let Err(e) = self.poll_once().await {
                tracing::warn!(error = %e, "watch: cannot read the store");
            }
        }
    }
}

#[async_trait::async_trait]
impl Deliver for WatchHub {
    async fn deliver(&self, secret: &SecretName, change: StageChange) -> Result<(), String> {
        let versions = self
            .inner
            .store
            .versions(secret)
            .await
            .map_err(|e| format!("watch: cannot read versions of {secret}: {e}"))?;
        let snap = Snap {
            current: versions
                .iter()
                .find(|v| v.has(Stage::Current))
                .map(|v| v.id.clone()),
            previous: versions
                .iter()
                .find(|v| v.has(Stage::Previous))
                .map(|v| v.id.clone()),
        };
        self.observe(secret, snap, Some(change));
        Ok(())
    }
}
