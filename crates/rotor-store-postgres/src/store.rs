//! [`rotor_core::Store`] for [`PgStore`]: each method runs its SQL (in `db`) on a pooled
//! connection; writes are run again after a serialization failure or deadlock.

use async_trait::async_trait;
use jiff::Timestamp;
use rotor_core::audit::{AuditEvent, Verified, verify_chain};
use rotor_core::rotation::Lease;
use rotor_core::store::{Change, Dump, SecretSummary, Takeover, Versioned};
use rotor_core::{
    AuditRecord, Rotation, RotationId, SecretName, Stage, Store, StoreError, VersionId, VersionMeta,
};

use crate::db::{self, Fail};
use crate::{PgStore, fail};

#[async_trait]
impl Store for PgStore {
    async fn apply(&self, change: Change) -> Result<Vec<AuditRecord>, StoreError> {
        let mut attempt = 0;
        loop {
            match pooled!(self, |ctx, conn| db::apply(ctx, conn, &change)) {
                Ok(records) => return Ok(records),
                Err(Fail::Store(e)) => return Err(e),
                Err(Fail::Retry) => {
                    attempt += 1;
                    self.backoff(attempt).await?;
                }
            }
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
        let mut attempt = 0;
        loop {
            match pooled!(self, |ctx, conn| db::claim(
                ctx, conn, id, owner, now, expires_at, takeover
            )) {
                Ok(lease) => return Ok(lease),
                Err(Fail::Store(e)) => return Err(e),
                Err(Fail::Retry) => {
                    attempt += 1;
                    self.backoff(attempt).await?;
                }
            }
        }
    }

    async fn versions(&self, secret: &SecretName) -> Result<Vec<VersionMeta>, StoreError> {
        pooled!(self, |ctx, conn| db::versions(ctx, conn, secret)).map_err(fail)
    }

    async fn read_stage(
        &self,
        secret: &SecretName,
        stage: Stage,
    ) -> Result<Option<Versioned>, StoreError> {
        pooled!(self, |ctx, conn| db::read_stage(ctx, conn, secret, stage)).map_err(fail)
    }

    async fn read_version(
        &self,
        secret: &SecretName,
        id: &VersionId,
    ) -> Result<Option<Versioned>, StoreError> {
        pooled!(self, |ctx, conn| db::read_version(ctx, conn, secret, id)).map_err(fail)
    }

    async fn rotation(&self, id: &RotationId) -> Result<Option<Rotation>, StoreError> {
        pooled!(self, |ctx, conn| db::rotation(ctx, conn, id)).map_err(fail)
    }

    async fn rotations(
        &self,
        secret: Option<&SecretName>,
        limit: usize,
    ) -> Result<Vec<Rotation>, StoreError> {
        pooled!(self, |ctx, conn| db::rotations(ctx, conn, secret, limit)).map_err(fail)
    }

    async fn open_rotations(&self) -> Result<Vec<Rotation>, StoreError> {
        pooled!(self, |ctx, conn| db::open_rotations(ctx, conn)).map_err(fail)
    }

    async fn owed_rollbacks(&self) -> Result<Vec<Rotation>, StoreError> {
        pooled!(self, |ctx, conn| db::owed_rollbacks(ctx, conn)).map_err(fail)
    }

    async fn summaries(&self) -> Result<Vec<SecretSummary>, StoreError> {
        pooled!(self, |ctx, conn| db::summaries(ctx, conn)).map_err(fail)
    }

    async fn audit_tail(&self, n: usize) -> Result<Vec<AuditRecord>, StoreError> {
        pooled!(self, |ctx, conn| db::audit_tail(ctx, conn, n)).map_err(fail)
    }

    async fn audit_all(&self) -> Result<Vec<AuditRecord>, StoreError> {
        pooled!(self, |ctx, conn| db::audit_all(ctx, conn)).map_err(fail)
    }

    async fn audit_verify(&self) -> Result<Verified, StoreError> {
        pooled!(self, |ctx, conn| db::audit_verify(ctx, conn)).map_err(fail)
    }

    async fn export(&self) -> Result<Dump, StoreError> {
        pooled!(self, |ctx, conn| db::export(ctx, conn)).map_err(fail)
    }

    async fn import(&self, dump: Dump, event: AuditEvent) -> Result<(), StoreError> {
        // Copied verbatim, a broken chain would stay broken: refuse it before writing.
        verify_chain(&dump.audit).map_err(|err| {
            StoreError::Backend(format!(
                "the audit log to import does not verify ({err}); nothing was imported"
            ))
        })?;
        let mut attempt = 0;
        loop {
            match pooled!(self, |ctx, conn| db::import(ctx, conn, &dump, &event)) {
                Ok(()) => return Ok(()),
                Err(Fail::Store(e)) => return Err(e),
                Err(Fail::Retry) => {
                    attempt += 1;
                    self.backoff(attempt).await?;
                }
            }
        }
    }
}
