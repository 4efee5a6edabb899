//! [`rotor_core::Store`] for [`AwsStore`]: the ledger commits first, then AWS is synced
//! for every secret the change touched; reads check AWS serves the ledger's value as
//! [`crate::ReadPolicy`] says.

use std::collections::BTreeSet;

use async_trait::async_trait;
use jiff::Timestamp;
use rotor_core::rotation::Lease;
use rotor_core::store::{Change, Op, SecretSummary, Takeover, Versioned};
use rotor_core::{
    AuditRecord, Rotation, RotationId, SecretName, Stage, Store, StoreError, VersionId, VersionMeta,
};

use crate::failure::AwsFailure;
use crate::format::Payload;
use crate::{AwsStore, ReadPolicy, aws_label};

impl AwsStore {
    /// Drops `InsertVersion`s the ledger already has with the same value (retries of a
    /// committed change); refuses one whose id the ledger has with another value.
    async fn drop_replays(&self, mut change: Change) -> Result<Change, StoreError> {
        let mut kept = Vec::with_capacity(change.ops.len());
        for op in change.ops {
            if let Op::InsertVersion { version, .. } = &op
                && let Some(existing) = self
                    .ledger
                    .read_version(&version.secret, &version.id)
                    .await?
            {
                if existing.value.ct_eq(&version.value) {
                    tracing::debug!(secret = %version.secret, version = %version.id, "insert retried: already in the ledger");
                    continue;
                }
                return Err(StoreError::Backend(format!(
                    "secret {}: version {} already exists with a different value; version ids (AWS ClientRequestTokens) are never reused",
                    version.secret, version.id
                )));
            }
            kept.push(op);
        }
        change.ops = kept;
        Ok(change)
    }

    /// Returns the ledger's version after checking AWS serves it under its stage label.
    async fn verified(
        &self,
        secret: &SecretName,
        v: Versioned,
        stage: Option<Stage>,
    ) -> Result<Option<Versioned>, StoreError> {
        if self.settings.reads == ReadPolicy::LedgerOnly {
            return Ok(Some(v));
        }
        let stage = stage.or_else(|| {
            [Stage::Current, Stage::Pending, Stage::Previous]
                .into_iter()
                .find(|s| v.meta.has(*s))
        });
        // A version without a stage is retired: AWS may already have deleted it.
        let Some(stage) = stage else {
            return Ok(Some(v));
        };
        let label = aws_label(stage);
        let id = v.meta.id.as_str();
        let problem = match self
            .client
            .get_secret_value()
            .secret_id(self.aws_secret_id(secret))
            .version_id(id)
            .version_stage(label)
            .send()
            .await
        {
            Ok(out) => {
                let expected = self.format_of(secret).encode(secret, id, &v.value)?;
                let served = match (&expected, out.secret_string(), out.secret_binary()) {
                    (Payload::String(_), Some(s), _) => {
                        rotor_core::SecretValue::from_slice(s.as_bytes())
                    }
                    (Payload::Binary(_), _, Some(b)) => {
                        rotor_core::SecretValue::from_slice(b.as_ref())
                    }
                    _ => rotor_core::SecretValue::new(Vec::new()),
                };
                if served.ct_eq(expected.bytes()) {
                    return Ok(Some(v));
                }
                "AWS serves a different value under this version id (changed outside rotor?)"
                    .to_owned()
            }
            Err(e) => match AwsFailure::from_sdk(&e) {
                AwsFailure::Unavailable(d) => format!("AWS is unreachable: {d}"),
                f => format!(
                    "AWS does not have this version labelled {label} yet ({}); the next apply or `sync` uploads it",
                    f.detail()
                ),
            },
        };
        if self.settings.reads == ReadPolicy::RequireAws {
            return Err(StoreError::Backend(format!(
                "secret {secret}, version {id} ({stage}): {problem}"
            )));
        }
        tracing::warn!(secret = %secret, version = %id, stage = %stage, problem = %problem, "returning the ledger's copy of the value");
        Ok(Some(v))
    }
}

/// The secrets whose AWS mirror a change can affect (and which a resumed rotation repairs).
fn touched(change: &Change) -> BTreeSet<SecretName> {
    change
        .ops
        .iter()
        .filter_map(|op| match op {
            Op::InsertVersion { version, .. } => Some(version.secret.clone()),
            Op::Promote { secret, .. } | Op::ClearStage { secret, .. } => Some(secret.clone()),
            Op::BeginRotation(r) | Op::SaveRotation(r) => Some(r.secret.clone()),
            _ => None,
        })
        .collect()
}

#[async_trait]
impl Store for AwsStore {
    async fn apply(&self, change: Change) -> Result<Vec<AuditRecord>, StoreError> {
        let secrets = touched(&change);
        let begins = change
            .ops
            .iter()
            .any(|op| matches!(op, Op::BeginRotation(_)));
        let moves_stages = change
            .ops
            .iter()
            .any(|op| !matches!(op, Op::BeginRotation(_) | Op::SaveRotation(_)));
        if begins {
            // Do not start a rotation AWS cannot follow; repair an old gap first.
            for s in &secrets {
                self.sync(s).await?;
            }
        }
        let change = self.drop_replays(change).await?;
        // A fenced change goes to the ledger even when nothing is left to write: its fence
        // is still checked, so a writer that lost its lease hears so (store contract).
        let records = if change.ops.is_empty() && change.audit.is_empty() && change.fence.is_none()
        {
            Vec::new()
        } else {
            self.ledger.apply(change).await?
        };
        if begins && !moves_stages {
            // Synced just before, and the change moved no stage.
            return Ok(records);
        }
        let mut first_err = None;
        for s in &secrets {
            if let Err(e) = self.sync(s).await {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(records),
        }
    }

    async fn claim(
        &self,
        id: &RotationId,
        owner: &str,
        now: Timestamp,
        expires_at: Timestamp,
        takeover: Takeover,
    ) -> Result<Lease, StoreError> {
        self.ledger
            .claim(id, owner, now, expires_at, takeover)
            .await
    }

    async fn versions(&self, secret: &SecretName) -> Result<Vec<VersionMeta>, StoreError> {
        self.ledger.versions(secret).await
    }

    async fn read_stage(
        &self,
        secret: &SecretName,
        stage: Stage,
    ) -> Result<Option<Versioned>, StoreError> {
        match self.ledger.read_stage(secret, stage).await? {
            Some(v) => self.verified(secret, v, Some(stage)).await,
            None => Ok(None),
        }
    }

    async fn read_version(
        &self,
        secret: &SecretName,
        id: &VersionId,
    ) -> Result<Option<Versioned>, StoreError> {
        match self.ledger.read_version(secret, id).await? {
            Some(v) => self.verified(secret, v, None).await,
            None => Ok(None),
        }
    }

    async fn rotation(&self, id: &RotationId) -> Result<Option<Rotation>, StoreError> {
        self.ledger.rotation(id).await
    }

    async fn rotations(
        &self,
        secret: Option<&SecretName>,
        limit: usize,
    ) -> Result<Vec<Rotation>, StoreError> {
        self.ledger.rotations(secret, limit).await
    }

    async fn open_rotations(&self) -> Result<Vec<Rotation>, StoreError> {
        self.ledger.open_rotations().await
    }

    async fn owed_rollbacks(&self) -> Result<Vec<Rotation>, StoreError> {
        self.ledger.owed_rollbacks().await
    }

    async fn summaries(&self) -> Result<Vec<SecretSummary>, StoreError> {
        self.ledger.summaries().await
    }

    async fn audit_tail(&self, n: usize) -> Result<Vec<AuditRecord>, StoreError> {
        self.ledger.audit_tail(n).await
    }

    async fn audit_all(&self) -> Result<Vec<AuditRecord>, StoreError> {
        self.ledger.audit_all().await
    }

    /// The ledger writes and authenticates the audit log (its master key derives the key).
    async fn audit_verify(&self) -> Result<rotor_core::audit::Verified, StoreError> {
        self.ledger.audit_verify().await
    }

    /// The ledger holds every value (sealed), so an export needs no AWS call.
    async fn export(&self) -> Result<rotor_core::store::Dump, StoreError> {
        self.ledger.export().await
    }

    /// Imports into the ledger, then mirrors every secret's stages and values into AWS. If
    /// AWS fails part way, the ledger has everything and `sync_all` (or the next change of
    /// each secret) completes the mirror.
    async fn import(
        &self,
        dump: rotor_core::store::Dump,
        event: rotor_core::AuditEvent,
    ) -> Result<(), StoreError> {
        self.ledger.import(dump, event).await?;
        self.sync_all().await.map(drop)
    }
}
