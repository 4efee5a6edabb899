//! A shared, reloadable keyring for long-running services.
//!
//! Verification reads the current snapshot through [`arc_swap::ArcSwap`] and never
//! blocks. When a token names a kid the snapshot does not know (typically: the signer
//! rotated and this process has not reloaded yet), the handle refreshes from its
//! [`Source`] — once, however many requests hit the unknown kid at the same time, and
//! no more often than the cooldown allows, so a flood of garbage kids cannot turn
//! into a flood of fetches. A failed refresh keeps the keys already loaded.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use serde::Serialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::{Claims, Keyring, SignError, SourceError, VerifyError, VerifyOptions};

/// Where a [`KeyringHandle`] gets its keys from.
#[async_trait::async_trait]
pub trait Source: Send + Sync + 'static {
    /// Fetches and parses the latest keyring. Called at most once at a time per handle.
    async fn fetch(&self) -> Result<Keyring, SourceError>;

    /// A short description for logs (path or URL, never credentials).
    fn describe(&self) -> String;
}

/// Largest keyring file/response accepted (1 MiB): far above any real keyring, and
/// bounds memory if a path or URL points at the wrong thing.
pub const MAX_SOURCE_BYTES: usize = 1024 * 1024;

/// Reads a keyring document or a JWKS from a file on every fetch.
#[derive(Debug, Clone)]
pub struct FileSource {
    path: PathBuf,
}

impl FileSource {
    /// A source reading `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

#[async_trait::async_trait]
impl Source for FileSource {
    async fn fetch(&self) -> Result<Keyring, SourceError> {
        let io = |source| SourceError::Io {
            path: self.path.display().to_string(),
            source,
        };
        let meta = tokio::fs::metadata(&self.path).await.map_err(io)?;
        if meta.len() > MAX_SOURCE_BYTES as u64 {
            return Err(SourceError::TooLarge(
                usize::try_from(meta.len()).unwrap_or(usize::MAX),
            ));
        }
        // The document may hold secrets: keep the raw bytes in a zeroizing buffer.
        let bytes = zeroize::Zeroizing::new(tokio::fs::read(&self.path).await.map_err(io)?);
        if bytes.len() > MAX_SOURCE_BYTES {
            return Err(SourceError::TooLarge(bytes.len()));
        }
        Ok(Keyring::from_slice(&bytes)?)
    }

    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }
}

/// Refresh behaviour of a [`KeyringHandle`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HandleOptions {
    /// Minimum time between two fetches triggered by unknown kids (or by
    /// [`KeyringHandle::refresh`]). Default 30 s.
    pub refresh_cooldown: Duration,
    /// Claim validation applied to every loaded snapshot.
    pub verify: VerifyOptions,
}

impl Default for HandleOptions {
    fn default() -> Self {
        Self {
            refresh_cooldown: Duration::from_secs(30),
            verify: VerifyOptions::default(),
        }
    }
}

impl HandleOptions {
    /// Sets the cooldown (builder style).
    pub fn with_cooldown(mut self, d: Duration) -> Self {
        self.refresh_cooldown = d;
        self
    }
    /// Sets the verification options (builder style).
    pub fn with_verify(mut self, v: VerifyOptions) -> Self {
        self.verify = v;
        self
    }
}

/// What a call to [`KeyringHandle::refresh`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefreshOutcome {
    /// This call fetched and installed a new snapshot.
    Reloaded,
    /// Another caller refreshed while this one waited; its result is in place.
    Coalesced,
    /// Skipped: the last attempt was less than the cooldown ago.
    CoolingDown,
}

struct Inner {
    current: ArcSwap<Keyring>,
    source: Box<dyn Source>,
    options: HandleOptions,
    /// Serializes refreshes; holds the time of the last fetch attempt.
    refresh: Mutex<Option<Instant>>,
    /// Bumped after every completed fetch attempt (success or failure), so waiters
    /// can tell that the attempt they queued behind has happened.
    attempts: AtomicU64,
    fetches_ok: AtomicU64,
    fetches_failed: AtomicU64,
}

/// Shared, cheaply clonable, reloadable keyring.
#[derive(Clone)]
pub struct KeyringHandle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for KeyringHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyringHandle")
            .field("source", &self.inner.source.describe())
            .field("keys", &**self.inner.current.load())
            .finish()
    }
}

impl KeyringHandle {
    /// Loads the initial keyring from `source`; fails if that first fetch fails (a
    /// service should not start without keys).
    pub async fn load(source: impl Source, options: HandleOptions) -> Result<Self, SourceError> {
        let ring = source.fetch().await?.with_options(options.verify.clone());
        let h = Self::new(ring, source, options);
        *h.inner.refresh.lock().await = Some(Instant::now());
        h.inner.fetches_ok.fetch_add(1, Ordering::Relaxed);
        Ok(h)
    }

    /// Wraps an already loaded keyring; later refreshes go to `source`.
    pub fn new(initial: Keyring, source: impl Source, options: HandleOptions) -> Self {
        let initial = initial.with_options(options.verify.clone());
        Self {
            inner: Arc::new(Inner {
                current: ArcSwap::from_pointee(initial),
                source: Box::new(source),
                options,
                refresh: Mutex::new(None),
                attempts: AtomicU64::new(0),
                fetches_ok: AtomicU64::new(0),
                fetches_failed: AtomicU64::new(0),
            }),
        }
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Keyring> {
        self.inner.current.load_full()
    }

    /// Installs a snapshot directly (e.g. pushed by a config watcher).
    pub fn store(&self, ring: Keyring) {
        self.inner.current.store(Arc::new(
            ring.with_options(self.inner.options.verify.clone()),
        ));
    }

    /// Verifies against the current snapshot only; never refreshes, never blocks.
    pub fn verify_cached(&self, token: &str) -> Result<Claims, VerifyError> {
        self.inner.current.load().verify(token)
    }

    /// Verifies; if the token's kid is unknown, refreshes once (coalesced, subject to
    /// the cooldown) and retries against the new snapshot.
    pub async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        let seen = self.inner.attempts.load(Ordering::Acquire);
        match self.verify_cached(token) {
            Err(VerifyError::UnknownKid(kid)) => {
                self.refresh_after(seen).await;
                let ring = self.inner.current.load();
                match ring.verify(token) {
                    Err(VerifyError::UnknownKid(_)) => Err(VerifyError::UnknownKid(kid)),
                    other => other,
                }
            }
            other => other,
        }
    }

    /// Signs with the current snapshot's `current` key.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, SignError> {
        self.inner.current.load().sign(claims)
    }

    /// Refreshes now unless another refresh just happened or the cooldown has not
    /// elapsed. A failed fetch is returned as an error and the old keys stay.
    pub async fn refresh(&self) -> Result<RefreshOutcome, SourceError> {
        let seen = self.inner.attempts.load(Ordering::Acquire);
        self.refresh_inner(seen).await
    }

    /// Number of successful and failed fetches so far (for metrics and tests).
    pub fn fetch_counts(&self) -> (u64, u64) {
        (
            self.inner.fetches_ok.load(Ordering::Relaxed),
            self.inner.fetches_failed.load(Ordering::Relaxed),
        )
    }

    /// Spawns a task that refreshes every `period` (errors are logged; old keys stay).
    /// Abort the returned handle to stop it.
    pub fn spawn_periodic_refresh(&self, period: Duration) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = this.refresh().await {
                    tracing::warn!(source = %this.inner.source.describe(), error = %e, "keyring refresh failed; keeping old keys");
                }
            }
        })
    }

    async fn refresh_after(&self, seen: u64) {
        if let Err(e) = self.refresh_inner(seen).await {
            tracing::warn!(source = %self.inner.source.describe(), error = %e, "keyring refresh failed; keeping old keys");
        }
    }

    async fn refresh_inner(&self, seen: u64) -> Result<RefreshOutcome, SourceError> {
        let inner = &*self.inner;
        let mut last = inner.refresh.lock().await;
        // Someone completed an attempt while we waited for the lock: use its result
        // instead of fetching again.
        if inner.attempts.load(Ordering::Acquire) != seen {
            return Ok(RefreshOutcome::Coalesced);
        }
        if let Some(t) = *last
            && t.elapsed() < inner.options.refresh_cooldown
        {
            return Ok(RefreshOutcome::CoolingDown);
        }
        *last = Some(Instant::now());
        let result = inner.source.fetch().await;
        let outcome = match result {
            Ok(ring) => {
                inner
                    .current
                    .store(Arc::new(ring.with_options(inner.options.verify.clone())));
                inner.fetches_ok.fetch_add(1, Ordering::Relaxed);
                Ok(RefreshOutcome::Reloaded)
            }
            Err(e) => {
                inner.fetches_failed.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        };
        inner.attempts.fetch_add(1, Ordering::AcqRel);
        drop(last);
        outcome
    }
}
