//! The [`Store`] trait: where versions, stages, rotation records and the audit log live.
//!
//! Every change goes through [`Store::apply`] as one [`Change`]: a list of operations plus the
//! audit events that describe them, committed atomically. So a stage never moves without its
//! audit record, and a rotation's step is never marked done without the stage move it made.
//! A change that carries a [`Fence`] is refused when another process has since taken the
//! rotation's lease: a stalled process can never overwrite the work of the one that took over.

use std::fmt;

use async_trait::async_trait;
use jiff::Timestamp;
use serde::Serialize;

use crate::{
    AuditEvent, AuditRecord, Rotation, RotationId, RotationStatus, SecretName, SecretValue, Stage,
    Step, VersionId, VersionMeta, rotation::Lease,
};

/// A value to store as a new version. The value is sealed by the store before it is written.
#[derive(Debug)]
pub struct NewVersion {
    pub secret: SecretName,
    pub id: VersionId,
    pub created_by: String,
    pub created_at: Timestamp,
    pub metadata: serde_json::Value,
    pub value: SecretValue,
}

/// A version with its value, read back from the store.
#[derive(Debug, Clone)]
pub struct Versioned {
    pub meta: VersionMeta,
    pub value: SecretValue,
}

/// One operation inside a [`Change`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Op {
    /// Insert a version, optionally labelled. Labelling `pending` fails with
    /// [`StoreError::StageTaken`] while another version holds it.
    InsertVersion {
        version: NewVersion,
        stage: Option<Stage>,
    },
    /// The atomic stage move of `finish`: `version` becomes current, the old current becomes
    /// previous, the old previous loses its label; `version` loses `pending`. Idempotent: when
    /// `version` is already current, nothing moves.
    Promote {
        secret: SecretName,
        version: VersionId,
    },
    /// Removes `stage` from `version` if it holds it (retire drops `previous`; abort drops
    /// `pending`). Idempotent.
    ClearStage {
        secret: SecretName,
        stage: Stage,
        version: VersionId,
    },
    /// Inserts a new rotation. Fails with [`StoreError::Busy`] while another rotation of the
    /// same secret is `running`: at most one rotation per secret is in progress.
    BeginRotation(Box<Rotation>),
    /// Overwrites a rotation record (step, status, error, lease expiry).
    SaveRotation(Box<Rotation>),
}

/// A fencing check: the rotation's stored lease token must still be `token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub rotation: RotationId,
    pub token: u64,
}

/// An atomic unit of work.
#[derive(Debug, Default)]
pub struct Change {
    pub fence: Option<Fence>,
    pub ops: Vec<Op>,
    pub audit: Vec<AuditEvent>,
}

impl Change {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn fenced(fence: Fence) -> Self {
        Self {
            fence: Some(fence),
            ..Self::default()
        }
    }
    pub fn op(mut self, op: Op) -> Self {
        self.ops.push(op);
        self
    }
    pub fn audit(mut self, event: AuditEvent) -> Self {
        self.audit.push(event);
        self
    }
}

/// How a lease may be taken from its holder.
///
/// A takeover is always a compare-and-set: the caller judged the lease from an earlier read,
/// and the store takes it only while its row still shows what was judged. So a lease is never
/// taken from a holder that renewed it (or from another process that took it in between).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takeover {
    /// Only when nobody holds a live lease (none, expired, or our own).
    IfExpired,
    /// Only while the stored lease still carries token `token` (0: no lease yet): the caller
    /// judged that holder gone (a dead process on this host, or an ended job of this
    /// process). Any other token means someone took it since: [`StoreError::Busy`].
    IfStill { token: u64 },
}

impl Takeover {
    /// The compare-and-set takeover of `lease` as read (`None`: nobody held it).
    pub fn of(lease: Option<&Lease>) -> Self {
        Takeover::IfStill {
            token: lease.map_or(0, |l| l.token),
        }
    }
}

/// What `rotor status` needs about one secret, read for all secrets in one query.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SecretSummary {
    pub secret: Option<SecretName>,
    pub current: Option<VersionStamp>,
    pub previous: Option<VersionStamp>,
    pub pending: Option<VersionStamp>,
    /// The newest rotation, if any.
    pub last_rotation: Option<RotationStamp>,
}

/// A version's id and creation time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionStamp {
    pub id: VersionId,
    pub created_at: Timestamp,
}

/// The newest rotation's headline. Its fields carry [`Rotation`]'s names, so a store that
/// keeps rotation records as JSON can read the headline out of one without decoding the rest.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct RotationStamp {
    pub id: RotationId,
    pub status: RotationStatus,
    pub step: Step,
    pub started_at: Timestamp,
    pub error: Option<String>,
    pub retire_after: Option<Timestamp>,
}

/// Everything a store holds, for `rotor store migrate`. Values are plaintext in memory only
/// (inside [`SecretValue`]) and are sealed again by the target store.
#[derive(Debug, Default)]
pub struct Dump {
    /// Every version with its value and stages, oldest first.
    pub versions: Vec<Versioned>,
    /// Every rotation record, oldest first.
    pub rotations: Vec<Rotation>,
    /// The whole audit log in stored order; copied verbatim so the chain still verifies.
    pub audit: Vec<AuditRecord>,
}

/// Where versions live. Implementations: the embedded SQLite store (default), PostgreSQL,
/// AWS Secrets Manager. Called by the engine and the CLI; never by a rotator.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// Commits `change` atomically, appending its audit events to the chain. Returns the
    /// appended audit records.
    async fn apply(&self, change: Change) -> Result<Vec<AuditRecord>, StoreError>;

    /// Takes the lease of rotation `id` for `owner` until `expires_at`, incrementing its token.
    /// Fails with [`StoreError::Busy`] when another owner holds an unexpired lease and
    /// `takeover` is [`Takeover::IfExpired`].
    async fn claim(
        &self,
        id: &RotationId,
        owner: &str,
        now: Timestamp,
        expires_at: Timestamp,
        takeover: Takeover,
    ) -> Result<Lease, StoreError>;

    /// All versions of a secret, newest first, without values.
    async fn versions(&self, secret: &SecretName) -> Result<Vec<VersionMeta>, StoreError>;

    /// The version holding `stage`, with its value.
    async fn read_stage(
        &self,
        secret: &SecretName,
        stage: Stage,
    ) -> Result<Option<Versioned>, StoreError>;

    /// One version by id, with its value.
    async fn read_version(
        &self,
        secret: &SecretName,
        id: &VersionId,
    ) -> Result<Option<Versioned>, StoreError>;

    /// The versions holding `pending`, `current` and `previous` (in that order, each stage
    /// that is held), as one snapshot of the stages.
    ///
    /// Reading the stages one [`read_stage`](Store::read_stage) at a time races with a
    /// rotation's finish: `pending` read before it and `current` after it are the same
    /// version, and a keyring built from the two holds one key twice (and no previous).
    /// The stage set here comes from one [`versions`](Store::versions) read; versions never
    /// change once written, so reading their values by id afterwards keeps the snapshot.
    async fn read_staged(
        &self,
        secret: &SecretName,
    ) -> Result<Vec<(Stage, Versioned)>, StoreError> {
        let metas = self.versions(secret).await?;
        let mut staged = Vec::new();
        for stage in [Stage::Pending, Stage::Current, Stage::Previous] {
            let Some(meta) = metas.iter().find(|m| m.has(stage)) else {
                continue;
            };
            // Deleted since the snapshot (a concurrent retire): the stage is gone too.
            if let Some(v) = self.read_version(secret, &meta.id).await? {
                staged.push((stage, v));
            }
        }
        Ok(staged)
    }

    async fn rotation(&self, id: &RotationId) -> Result<Option<Rotation>, StoreError>;

    /// Rotations of one secret (or all), newest first.
    async fn rotations(
        &self,
        secret: Option<&SecretName>,
        limit: usize,
    ) -> Result<Vec<Rotation>, StoreError>;

    /// Rotations that still have work: `running`, or `grace` waiting for retire.
    async fn open_rotations(&self) -> Result<Vec<Rotation>, StoreError>;

    /// Rotations that ended `failed` with a rollback still owed on their target
    /// ([`Rotation::rollback_owed`]), oldest first.
    async fn owed_rollbacks(&self) -> Result<Vec<Rotation>, StoreError>;

    /// One summary per secret that has a stage or a rotation, sorted by name. (A version
    /// without a stage is history: `versions` lists it.)
    ///
    /// Contract: what a summary holds changes only in a change that also appends an audit
    /// record, so a reader may keep summaries while the newest audit record stays the same
    /// (the engine's status cache does).
    async fn summaries(&self) -> Result<Vec<SecretSummary>, StoreError>;

    /// The newest `n` audit records, oldest first.
    async fn audit_tail(&self, n: usize) -> Result<Vec<AuditRecord>, StoreError>;

    /// The whole audit log in stored order, for `rotor audit verify`.
    async fn audit_all(&self) -> Result<Vec<AuditRecord>, StoreError>;

    /// The whole audit log and the check of its chain and MACs under this store's record key
    /// ([`crate::audit::verify_keyed`]), for `rotor audit verify`. Only the store holds the
    /// key (derived from its master key), so only the store can check the MACs.
    async fn audit_verify(&self) -> Result<crate::audit::Verified, StoreError> {
        Err(StoreError::Unsupported {
            what: "audit verification".into(),
        })
    }

    /// Everything in the store (for `rotor store migrate`).
    async fn export(&self) -> Result<Dump, StoreError> {
        Err(StoreError::Unsupported {
            what: "export (rotor store migrate)".into(),
        })
    }

    /// Loads `dump` into this store, which must hold nothing yet (no versions, no rotations,
    /// no audit records besides its own `store.init`; else [`StoreError::NotEmpty`]):
    /// versions with their ids, times, stages and values (sealed with this store's key),
    /// rotations, and the audit log verbatim, replacing the target's lone `store.init` record
    /// so the copied chain still verifies from its first record; then appends `event` (a
    /// `store.migrate` record) to the chain, authenticated under this store's key: the
    /// copied MACs are under the source's key, and MACs apply again from `event`
    /// ([`crate::audit::MIGRATE`]). One transaction: all or nothing.
    async fn import(&self, _dump: Dump, _event: AuditEvent) -> Result<(), StoreError> {
        Err(StoreError::Unsupported {
            what: "import (rotor store migrate)".into(),
        })
    }
}

/// The lease decision every store makes inside its `claim` transaction (with the rotation's
/// row locked), kept here so the stores cannot disagree:
/// - a rotation that has ended (completed, failed, aborted) has no lease to take:
///   [`StoreError::Ended`], unless a rollback is still owed on its target;
/// - [`Takeover::IfStill`] takes the lease only while the stored token is the judged one;
/// - [`Takeover::IfExpired`] takes it when it expired, nobody holds it, or `owner` holds it;
/// - the token always grows.
///
/// Returns the new lease and, when it was taken from another owner, the reason the audit
/// record gives.
pub fn take_lease(
    rotation: &Rotation,
    owner: &str,
    now: Timestamp,
    expires_at: Timestamp,
    takeover: Takeover,
) -> Result<(Lease, Option<String>), StoreError> {
    if !rotation.status.is_open() && !rotation.rollback_owed {
        return Err(StoreError::Ended {
            secret: rotation.secret.to_string(),
            rotation: rotation.id.to_string(),
            status: rotation.status,
        });
    }
    let stored = rotation.lease.as_ref().map_or(0, |l| l.token);
    let mut reason = None;
    if let Some(held) = &rotation.lease
        && held.owner != owner
    {
        let live = held.expires_at > now;
        reason = Some(match takeover {
            Takeover::IfStill { .. } if live => format!(
                "took over from {} (holder gone, lease token {stored})",
                held.owner
            ),
            _ if live => return Err(StoreError::busy(rotation)),
            _ => format!(
                "took over from {} (lease expired {})",
                held.owner, held.expires_at
            ),
        });
    }
    if let Takeover::IfStill { token } = takeover
        && token != stored
    {
        return Err(StoreError::busy(rotation));
    }
    let lease = Lease {
        owner: owner.to_owned(),
        token: stored + 1,
        expires_at,
    };
    Ok((lease, reason))
}

/// Refuses to begin a running rotation planned against a `current` other than the one that
/// holds the stage now (`current_now`): another process rotated the secret in between, and
/// beginning this one would rotate it twice.
pub fn check_plan(rotation: &Rotation, current_now: Option<&str>) -> Result<(), StoreError> {
    if rotation.status != RotationStatus::Running {
        return Ok(());
    }
    let expected = rotation.previous_version.as_ref().map(VersionId::as_str);
    if current_now == expected {
        return Ok(());
    }
    Err(StoreError::Stale {
        secret: rotation.secret.to_string(),
        expected: expected.unwrap_or("none").to_owned(),
        found: current_now.unwrap_or("none").to_owned(),
    })
}

/// Store errors. Messages name the secret, version or file, and say what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error(
        "secret {secret} is busy: rotation {rotation} is in progress (held by {owner} until {until}); wait for it, or run `rotor resume {secret}` / `rotor abort {secret}`"
    )]
    Busy {
        secret: String,
        rotation: String,
        owner: String,
        until: String,
    },
    #[error(
        "rotation {rotation} of secret {secret} has already ended ({status}); there is nothing left to do for it"
    )]
    Ended {
        secret: String,
        rotation: String,
        status: RotationStatus,
    },
    #[error("secret {secret}: stage {stage} is already held by version {version}")]
    StageTaken {
        secret: String,
        stage: Stage,
        version: String,
    },
    #[error(
        "secret {secret} was rotated by another process since this rotation was planned (current is now {found}); nothing was done"
    )]
    Stale {
        secret: String,
        expected: String,
        found: String,
    },
    #[error("secret {secret}: version {version} not found")]
    VersionNotFound { secret: String, version: String },
    #[error("rotation {rotation} not found")]
    RotationNotFound { rotation: String },
    #[error(
        "rotation {rotation} was taken over by another process (lease token {current} is newer than ours, {ours}); this process stops touching it"
    )]
    LeaseLost {
        rotation: String,
        ours: u64,
        current: u64,
    },
    #[error(
        "the master key does not open this store: {detail}. Use the key this store was created with (ROTOR_MASTER_KEY, or the key file named in the config)"
    )]
    WrongMasterKey { detail: String },
    #[error("no master key: {detail}")]
    MissingMasterKey { detail: String },
    #[error(
        "secret {secret}, version {version}: the sealed value does not open (tampered, or copied from another row)"
    )]
    Tampered { secret: String, version: String },
    #[error(
        "store {path} is corrupt: {detail}. Restore it from a backup; rotor will not recreate it"
    )]
    Corrupt { path: String, detail: String },
    #[error(
        "store {path} has schema version {found}, newer than this rotor understands ({supported}); upgrade rotor"
    )]
    TooNew {
        path: String,
        found: i64,
        supported: i64,
    },
    #[error("store {path} does not exist; run `rotor init` first")]
    NotInitialized { path: String },
    #[error("store {path} already exists; rotor init never overwrites a store")]
    AlreadyExists { path: String },
    #[error("this store does not support {what}")]
    Unsupported { what: String },
    #[error("the target store is not empty ({detail}); migrate into a new, initialised store")]
    NotEmpty { detail: String },
    #[error("the store is locked by another process; try again")]
    Locked,
    /// The backend is unreachable, throttling or failing server-side (AWS 5xx, a throttle
    /// past the SDK's retries): nothing is wrong with the request, so it is worth retrying.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store error: {0}")]
    Backend(String),
}

impl StoreError {
    /// `Busy`, naming the rotation `other` that holds the secret and its lease.
    pub fn busy(other: &Rotation) -> StoreError {
        StoreError::Busy {
            secret: other.secret.to_string(),
            rotation: other.id.to_string(),
            owner: other
                .lease
                .as_ref()
                .map_or_else(|| "nobody (no lease taken)".to_owned(), |l| l.owner.clone()),
            until: other
                .lease
                .as_ref()
                .map_or_else(|| "-".to_owned(), |l| l.expires_at.to_string()),
        }
    }

    /// Worth retrying as is (lock contention, a dropped connection, an outage).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Locked | StoreError::Unavailable(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Step, Trigger};

    fn rotation(status: RotationStatus, lease: Option<Lease>) -> Rotation {
        let t = Timestamp::from_second(1_000).expect("valid");
        Rotation {
            id: RotationId::generate(),
            secret: SecretName::new("s").expect("valid"),
            trigger: Trigger::Manual,
            actor: "t".into(),
            reason: None,
            emergency: false,
            evict: true,
            status,
            step: Step::Set,
            step_done: false,
            attempts: 0,
            error: None,
            pending_version: None,
            previous_version: None,
            started_at: t,
            updated_at: t,
            activate_after: None,
            retire_after: None,
            lease,
            rollback_owed: false,
        }
    }

    fn lease(owner: &str, token: u64, expires: i64) -> Option<Lease> {
        Some(Lease {
            owner: owner.into(),
            token,
            expires_at: Timestamp::from_second(expires).expect("valid"),
        })
    }

    #[test]
    fn takeover_is_compare_and_set_on_open_rotations() {
        let now = Timestamp::from_second(1_000).expect("valid");
        let until = Timestamp::from_second(1_030).expect("valid");
        let live = rotation(RotationStatus::Running, lease("h:1:a", 3, 1_010));
        // Another owner's live lease: not without a judgement.
        assert!(matches!(
            take_lease(&live, "h:2:b", now, until, Takeover::IfExpired),
            Err(StoreError::Busy { .. })
        ));
        // Judged on an older token: refused, the holder renewed since.
        assert!(matches!(
            take_lease(&live, "h:2:b", now, until, Takeover::IfStill { token: 2 }),
            Err(StoreError::Busy { .. })
        ));
        let (l, reason) = take_lease(&live, "h:2:b", now, until, Takeover::IfStill { token: 3 })
            .expect("judged gone");
        assert_eq!(l.token, 4);
        assert!(reason.is_some_and(|r| r.contains("holder gone")));
        // Expired: taken either way, the reason says so.
        let expired = rotation(RotationStatus::Grace, lease("h:1:a", 3, 900));
        let (_, reason) =
            take_lease(&expired, "h:2:b", now, until, Takeover::IfExpired).expect("expired");
        assert!(reason.is_some_and(|r| r.contains("expired")));
        // An ended rotation has no lease to take, unless it still owes a rollback.
        for status in [
            RotationStatus::Completed,
            RotationStatus::Failed,
            RotationStatus::Aborted,
        ] {
            let ended = rotation(status, lease("h:1:a", 3, 900));
            assert!(matches!(
                take_lease(
                    &ended,
                    "h:2:b",
                    now,
                    until,
                    Takeover::of(ended.lease.as_ref())
                ),
                Err(StoreError::Ended { .. })
            ));
        }
        let owed = Rotation {
            rollback_owed: true,
            ..rotation(RotationStatus::Failed, None)
        };
        let (l, _) = take_lease(&owed, "h:2:b", now, until, Takeover::of(None)).expect("owed");
        assert_eq!(l.token, 1);
    }
}
