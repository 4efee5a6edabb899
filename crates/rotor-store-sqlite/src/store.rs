//! [`rotor_core::Store`] for [`SqliteStore`]: each method runs its SQL (in `db`) on the
//! handle's connection.

use async_trait::async_trait;
use jiff::Timestamp;
use rotor_core::audit::{AuditEvent, Verified};
use rotor_core::rotation::Lease;
use rotor_core::store::{Change, Dump, SecretSummary, Takeover, Versioned};
use rotor_core::{
    AuditRecord, Rotation, RotationId, SecretName, Stage, Store, StoreError, VersionId, VersionMeta,
};

use crate::{SqliteStore, db};

#[async_trait]
impl Store for SqliteStore {
    async fn apply(&self, change: Change) -> Result<Vec<AuditRecord>, StoreError> {
        self.run_write(move |ctx, conn| db::apply(ctx, conn, change))
            .await
    }

    async fn claim(
        &self,
        id: &RotationId,
        owner: &str,
        now: Timestamp,
        expires_at: Timestamp,
        takeover: Takeover,
    ) -> Result<Lease, StoreError> {
        let id = id.clone();
        let owner = owner.to_owned();
        self.run_write(move |ctx, conn| {
            db::claim(ctx, conn, &id, &owner, now, expires_at, takeover)
        })
        .await
    }

    async fn versions(&self, secret: &SecretName) -> Result<Vec<VersionMeta>, StoreError> {
        let secret = secret.clone();
        self.run(move |ctx, conn| db::versions(ctx, conn, &secret))
            .await
    }

    async fn read_stage(
        &self,
        secret: &SecretName,
        stage: Stage,
    ) -> Result<Option<Versioned>, StoreError> {
        let secret = secret.clone();
        self.run(move |ctx, conn| db::read_stage(ctx, conn, &secret, stage))
            .await
    }

    async fn read_version(
        &self,
        secret: &SecretName,
        id: &VersionId,
    ) -> Result<Option<Versioned>, StoreError> {
        let secret = secret.clone();
        let id = id.clone();
        self.run(move |ctx, conn| db::read_version(ctx, conn, &secret, &id))
            .await
    }

    async fn rotation(&self, id: &RotationId) -> Result<Option<Rotation>, StoreError> {
        let id = id.clone();
        self.run(move |ctx, conn| db::rotation(ctx, conn, &id))
            .await
    }

    async fn rotations(
        &self,
        secret: Option<&SecretName>,
        limit: usize,
    ) -> Result<Vec<Rotation>, StoreError> {
        let secret = secret.cloned();
        self.run(move |ctx, conn| db::rotations(ctx, conn, secret.as_ref(), limit))
            .await
    }

    async fn open_rotations(&self) -> Result<Vec<Rotation>, StoreError> {
        self.run(db::open_rotations).await
    }

    async fn owed_rollbacks(&self) -> Result<Vec<Rotation>, StoreError> {
        self.run(db::owed_rollbacks).await
    }

    async fn summaries(&self) -> Result<Vec<SecretSummary>, StoreError> {
        self.run(db::summaries).await
    }

    async fn audit_tail(&self, n: usize) -> Result<Vec<AuditRecord>, StoreError> {
        self.run(move |ctx, conn| db::audit_tail(ctx, conn, n))
            .await
    }

    async fn audit_all(&self) -> Result<Vec<AuditRecord>, StoreError> {
        self.run(db::audit_all).await
    }

    async fn audit_verify(&self) -> Result<Verified, StoreError> {
        self.run(db::audit_verify).await
    }

    async fn export(&self) -> Result<Dump, StoreError> {
        self.run(db::export).await
    }

    async fn import(&self, dump: Dump, event: AuditEvent) -> Result<(), StoreError> {
        self.run_write(move |ctx, conn| db::import(ctx, conn, dump, event))
            .await
    }
}
