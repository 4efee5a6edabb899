//! The audit anchor: the head of the audit chain (`SEQ:HASH`), kept outside the store in a
//! checkpoint file next to the config (`audit.anchor`), rewritten after every change this
//! binary commits, and authenticated with a key derived from the master key
//! ([`rotor_seal::AuditKey`]).
//!
//! What it protects against: someone who can write the store (or replace it with a copy) but
//! not the anchor file or the master key cutting records off the end, emptying the log, or
//! rebuilding the chain; and, with the key missing, forging an anchor. `rotor audit verify`
//! checks the log against it (and against `--expect-head`, e.g. from metrics).
//! What it does not: the holder of the master key and the anchor file can rewrite history
//! and re-anchor it; records other hosts append (PostgreSQL replicas), and those of a rotor
//! killed before it anchored them, show up as records after this host's anchor (noted by
//! `verify`, their MACs checked) until the next change; stores opened with a
//! passphrase or the AWS store keep no anchor.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use jiff::Timestamp;
use rotor_core::Config;
use rotor_core::audit::Head;
use rotor_core::config::StoreConfig;
use rotor_core::rotation::Lease;
use rotor_core::store::{Change, Dump, SecretSummary, Takeover, Versioned};
use rotor_core::{
    AuditEvent, AuditRecord, Rotation, RotationId, SecretName, Stage, Store, StoreError, VersionId,
    VersionMeta,
};
use rotor_seal::AuditKey;
use serde::{Deserialize, Serialize};

/// The checkpoint file of a config.
pub fn path_for(config_source: &Path) -> PathBuf {
    config_source
        .parent()
        .unwrap_or(Path::new("."))
        .join("audit.anchor")
}

/// The audit key of the configured store, when its master key is at hand (key file or
/// `ROTOR_MASTER_KEY`); `None` for passphrase and AWS stores.
pub fn key_for(config: &StoreConfig) -> Option<AuditKey> {
    let file = match config {
        StoreConfig::Sqlite {
            master_key_file,
            passphrase_env,
            ..
        } if passphrase_env.is_none() || std::env::var_os(rotor_seal::MASTER_KEY_ENV).is_some() => {
            master_key_file
        }
        StoreConfig::Postgres {
            master_key_file, ..
        } => master_key_file,
        _ => return None,
    };
    crate::stores::master_key(file)
        .ok()
        .map(|k| AuditKey::derive(&k))
}

#[derive(Debug, Serialize, Deserialize)]
struct File {
    seq: u64,
    hash: String,
    written: Timestamp,
    /// HMAC-SHA256 of `SEQ:HASH` under the audit key.
    tag: String,
}

/// Writes the checkpoint of `head` (0600, atomically: a temp file renamed over it). The
/// caller holds the anchor lock ([`lock`]).
fn write(path: &Path, head: &Head, key: &AuditKey) -> std::io::Result<()> {
    let body = serde_json::to_vec_pretty(&File {
        seq: head.seq,
        hash: head.hash.clone(),
        written: Timestamp::now(),
        tag: key.tag(head.to_string().as_bytes()),
    })
    .map_err(std::io::Error::other)?;
    // Per process: replicas and a CLI beside `rotor serve` may share the directory. Within a
    // process every write holds the anchor lock (`lock`), so one name per process is enough.
    let tmp = path.with_extension(format!("anchor.tmp.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&body)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Moves the checkpoint forward to `head`, never back. Processes sharing a config directory
/// (replicas on one host, a CLI beside `rotor serve`) each anchor their own changes, in any
/// order: an exclusive lock on `audit.anchor.lock` orders them (waited for: only
/// [`Anchored`]'s writer thread calls this), and a head older than the anchored one is left
/// alone (it would read as a cut tail).
pub fn advance(path: &Path, head: &Head, key: &AuditKey) -> std::io::Result<()> {
    let _lock = lock(path)?;
    if let Ok(Some(anchored)) = read(path, key)
        && anchored.seq >= head.seq
    {
        return Ok(());
    }
    write(path, head, key)
}

/// Holds `audit.anchor.lock` (exclusive, waited for) until the returned file is dropped.
fn lock(path: &Path) -> std::io::Result<std::fs::File> {
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path.with_extension("anchor.lock"))?;
    lock.lock()?;
    Ok(lock)
}

/// Reads and authenticates the checkpoint: `Ok(None)` when there is none.
pub fn read(path: &Path, key: &AuditKey) -> Result<Option<Head>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(format!(
                "cannot read the audit anchor {}: {e}",
                path.display()
            ));
        }
    };
    let f: File = serde_json::from_str(&text)
        .map_err(|_| format!("the audit anchor {} is not an anchor file", path.display()))?;
    let head = Head {
        seq: f.seq,
        hash: f.hash,
    };
    if !key.verify(head.to_string().as_bytes(), &f.tag) {
        return Err(format!(
            "the audit anchor {} does not verify under this store's master key: it was forged, or written before a master-key rotation (then check it against a head you trust with --expect-head, and re-anchor with `rotor audit anchor`)",
            path.display()
        ));
    }
    Ok(Some(head))
}

/// Verifies the chain of `store` and anchors its head (`rotor audit anchor`, `rotor init`).
pub async fn anchor_now(store: &Arc<dyn Store>, config: &Config) -> anyhow::Result<Head> {
    let Some(key) = key_for(&config.store) else {
        anyhow::bail!(
            "this store keeps no anchor (a passphrase or AWS store): pass --expect-head to `rotor audit verify` instead"
        );
    };
    // Chain and MACs: anchoring a log rebuilt without the key would bless it.
    let verified = store.audit_verify().await?;
    if let Err(e) = &verified.outcome {
        anyhow::bail!("the log does not verify, so it is not anchored: {e}");
    }
    let records = verified.records;
    let Some(head) = Head::of(&records) else {
        anyhow::bail!("the audit log is empty: nothing to anchor");
    };
    let path = path_for(&config.source);
    let _lock = lock(&path)?;
    write(&path, &head, &key)?;
    Ok(head)
}

/// A store that moves the checkpoint forward after every change it commits.
///
/// The heads go to a writer thread, which writes the newest head it was handed, waiting for
/// the anchor lock when another process holds it. WHY a thread:
/// - the holder of the lock may be stopped (SIGSTOP, a frozen VM); a wait inside `apply`
///   blocked the runtime thread, so one paused replica froze every other replica sharing
///   its config directory for as long as it stayed stopped (issue 15.2);
/// - each write is an fsync'd file and a rename: written inside `apply`, an emergency over
///   1,000 secrets (about 6,000 changes) spent thousands of fsyncs on the runtime's threads.
///   The thread writes one head per fsync, however many changes committed meanwhile.
///
/// The anchor therefore trails the store by the changes of the last write or so, which
/// reads as records appended after it (as another replica's are), never as a cut tail.
/// Dropping the store waits for the thread, so a CLI command's last head is anchored before
/// it exits.
#[derive(Debug)]
pub struct Anchored {
    inner: Arc<dyn Store>,
    writer: Arc<Writer>,
}

/// The anchor file, its key, and the head waiting for the lock.
#[derive(Debug)]
struct Writer {
    path: PathBuf,
    key: AuditKey,
    state: Mutex<Deferred>,
}

#[derive(Debug, Default)]
struct Deferred {
    /// The newest head not yet written because the lock was held.
    head: Option<Head>,
    /// The thread waiting for the lock, while one runs.
    thread: Option<std::thread::JoinHandle<()>>,
    running: bool,
}

impl Writer {
    fn state(&self) -> std::sync::MutexGuard<'_, Deferred> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn report(&self, result: std::io::Result<()>, head: &Head) {
        if let Err(e) = result {
            tracing::error!(error = %e, anchor = %self.path.display(), seq = head.seq, "cannot write the audit anchor");
        }
    }

    /// Waits for the background thread, if one runs.
    fn flush(&self) {
        let thread = self.state().thread.take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }

    /// Hands `head` to the writer thread (starting it if none runs); never blocks on the
    /// lock or the disk.
    fn anchor(self: &Arc<Self>, head: Head) {
        let mut state = self.state();
        if state.head.as_ref().is_none_or(|h| h.seq < head.seq) {
            state.head = Some(head);
        }
        if state.running {
            return;
        }
        state.running = true;
        let writer = Arc::clone(self);
        state.thread = Some(std::thread::spawn(move || {
            loop {
                let head = {
                    let mut state = writer.state();
                    match state.head.take() {
                        Some(h) => h,
                        None => {
                            state.running = false;
                            return;
                        }
                    }
                };
                let result = advance(&writer.path, &head, &writer.key);
                writer.report(result, &head);
            }
        }));
    }
}

impl Anchored {
    pub fn wrap(inner: Arc<dyn Store>, path: PathBuf, key: AuditKey) -> Arc<dyn Store> {
        Arc::new(Self {
            inner,
            writer: Arc::new(Writer {
                path,
                key,
                state: Mutex::new(Deferred::default()),
            }),
        })
    }

    fn anchor(&self, records: &[AuditRecord]) {
        if let Some(head) = Head::of(records) {
            self.writer.anchor(head);
        }
    }
}

impl Drop for Anchored {
    fn drop(&mut self) {
        self.writer.flush();
    }
}

#[async_trait]
impl Store for Anchored {
    async fn apply(&self, change: Change) -> Result<Vec<AuditRecord>, StoreError> {
        let records = self.inner.apply(change).await?;
        self.anchor(&records);
        Ok(records)
    }
    async fn claim(
        &self,
        id: &RotationId,
        owner: &str,
        now: Timestamp,
        expires_at: Timestamp,
        takeover: Takeover,
    ) -> Result<Lease, StoreError> {
        self.inner.claim(id, owner, now, expires_at, takeover).await
    }
    async fn versions(&self, secret: &SecretName) -> Result<Vec<VersionMeta>, StoreError> {
        self.inner.versions(secret).await
    }
    async fn read_stage(
        &self,
        secret: &SecretName,
        stage: Stage,
    ) -> Result<Option<Versioned>, StoreError> {
        self.inner.read_stage(secret, stage).await
    }
    async fn read_version(
        &self,
        secret: &SecretName,
        id: &VersionId,
    ) -> Result<Option<Versioned>, StoreError> {
        self.inner.read_version(secret, id).await
    }
    async fn rotation(&self, id: &RotationId) -> Result<Option<Rotation>, StoreError> {
        self.inner.rotation(id).await
    }
    async fn rotations(
        &self,
        secret: Option<&SecretName>,
        limit: usize,
    ) -> Result<Vec<Rotation>, StoreError> {
        self.inner.rotations(secret, limit).await
    }
    async fn open_rotations(&self) -> Result<Vec<Rotation>, StoreError> {
        self.inner.open_rotations().await
    }
    async fn owed_rollbacks(&self) -> Result<Vec<Rotation>, StoreError> {
        self.inner.owed_rollbacks().await
    }
    async fn summaries(&self) -> Result<Vec<SecretSummary>, StoreError> {
        self.inner.summaries().await
    }
    async fn audit_tail(&self, n: usize) -> Result<Vec<AuditRecord>, StoreError> {
        self.inner.audit_tail(n).await
    }
    async fn audit_all(&self) -> Result<Vec<AuditRecord>, StoreError> {
        self.inner.audit_all().await
    }
    async fn audit_verify(&self) -> Result<rotor_core::audit::Verified, StoreError> {
        self.inner.audit_verify().await
    }
    async fn export(&self) -> Result<Dump, StoreError> {
        self.inner.export().await
    }
    async fn import(&self, dump: Dump, event: AuditEvent) -> Result<(), StoreError> {
        self.inner.import(dump, event).await?;
        let all = self.inner.audit_all().await?;
        self.anchor(&all);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use rotor_seal::MasterKey;

    use super::*;

    /// Issue 15.2: a process holding the anchor lock (here another open of the lock file, as a
    /// stopped replica would) must not block the anchoring of a change: before, `advance`
    /// waited on the lock for as long as the holder kept it, inside the caller's async runtime
    /// thread. The head is written once the lock is free.
    #[test]
    fn anchoring_does_not_wait_for_a_held_lock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.anchor");
        let master = MasterKey::generate().expect("key");
        let head = |seq: u64, c: &str| Head {
            seq,
            hash: c.repeat(64),
        };
        let writer = Arc::new(Writer {
            path: path.clone(),
            key: AuditKey::derive(&master),
            state: Mutex::new(Deferred::default()),
        });
        writer.anchor(head(1, "a"));
        writer.flush();
        let key = AuditKey::derive(&master);
        assert_eq!(read(&path, &key).expect("read"), Some(head(1, "a")));

        let held = std::fs::OpenOptions::new()
            .write(true)
            .open(path.with_extension("anchor.lock"))
            .expect("open the lock");
        held.lock().expect("hold the lock");
        let (tx, rx) = mpsc::channel();
        let w = Arc::clone(&writer);
        std::thread::spawn(move || {
            w.anchor(head(2, "b"));
            w.anchor(head(3, "c"));
            let _ = tx.send(());
        });
        rx.recv_timeout(Duration::from_secs(5))
            .expect("anchoring waited on the lock another process holds");
        assert_eq!(read(&path, &key).expect("read"), Some(head(1, "a")));

        drop(held);
        writer.flush();
        assert_eq!(
            read(&path, &key).expect("read"),
            Some(head(3, "c")),
            "the newest deferred head is written once the lock is free"
        );
    }
}
