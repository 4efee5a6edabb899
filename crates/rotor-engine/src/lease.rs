//! Leases with fencing tokens: claiming a rotation, letting go of it, and the fenced commit
//! every step ends with (a process that lost its lease cannot write).

use jiff::Timestamp;
use rotor_core::rotation::Lease;
use rotor_core::store::{Change, Fence, Op, Takeover};
use rotor_core::{AuditEvent, Rotation, RotationId, StoreError};

use crate::{Engine, EngineError};

impl Engine {
    pub(crate) fn lease_until(&self, now: Timestamp) -> Timestamp {
        now.checked_add(
            jiff::SignedDuration::try_from(self.opts.lease_for)
                .unwrap_or(jiff::SignedDuration::from_secs(300)),
        )
        .unwrap_or(now)
    }

    /// Takes the lease of `rot` (as read earlier) and returns it with the rotation as stored
    /// now. The lease is taken after expiry, or at once when its holder is a dead process on
    /// this host (a crashed `rotor rotate`) or this engine itself (a job that ended: jobs of
    /// one engine take the secret's turn, so none is live while the caller holds it). Either
    /// way the store takes it only by compare-and-set on the token judged here, refuses a
    /// rotation that has ended, and the record is read again after the claim: the previous
    /// holder can no longer write (its token is stale), so a step it finished is never run
    /// or audited again.
    pub(crate) async fn claim(&self, rot: &Rotation) -> Result<(Lease, Rotation), EngineError> {
        let now = self.clock.now();
        let takeover = match &rot.lease {
            Some(l)
                if l.owner != self.opts.owner.as_str()
                    && !self.opts.owner.holder_is_dead(&l.owner) =>
            {
                Takeover::IfExpired
            }
            held => Takeover::of(held.as_ref()),
        };
        let lease = self
            .store
            .claim(
                &rot.id,
                self.opts.owner.as_str(),
                now,
                self.lease_until(now),
                takeover,
            )
            .await?;
        let mut fresh =
            self.store
                .rotation(&rot.id)
                .await?
                .ok_or_else(|| StoreError::RotationNotFound {
                    rotation: rot.id.to_string(),
                })?;
        fresh.lease = Some(lease.clone());
        Ok((lease, fresh))
    }

    /// Lets go of the lease of a rotation whose job just failed and that is still open (a
    /// retire that failed, a store error mid-step), so the next try (the scheduler's backoff,
    /// another replica, `rotor resume`) need not wait for it to expire. Best effort: a lost
    /// lease or an ended rotation has nothing to release.
    pub(crate) async fn release(&self, id: &RotationId, lease: &Lease) {
        let Ok(Some(mut stored)) = self.store.rotation(id).await else {
            return;
        };
        let has_work = stored.status.is_open() || stored.rollback_owed;
        if !has_work || stored.lease.as_ref().map(|l| l.token) != Some(lease.token) {
            return;
        }
        let now = self.clock.now();
        stored.lease = Some(Lease {
            expires_at: now,
            ..lease.clone()
        });
        let change = Change::fenced(fence(&stored, lease)).op(Op::SaveRotation(Box::new(stored)));
        if let Err(e) = self.store.apply(change).await {
            tracing::debug!(rotation = %id, error = %e, "could not release the lease; it expires by itself");
        }
    }

    /// Saves `rot` (renewing its lease) with `ops` and `event`, fenced by `lease`.
    pub(crate) async fn commit(
        &self,
        rot: &mut Rotation,
        lease: &Lease,
        ops: Vec<Op>,
        event: AuditEvent,
    ) -> Result<(), EngineError> {
        let now = self.clock.now();
        rot.updated_at = now;
        rot.lease = Some(Lease {
            expires_at: self.lease_until(now),
            ..lease.clone()
        });
        let mut change = Change::fenced(fence(rot, lease));
        change.ops = ops;
        change.ops.push(Op::SaveRotation(Box::new(rot.clone())));
        change.audit.push(event);
        self.store.apply(change).await?;
        Ok(())
    }
}

pub(crate) fn fence(rot: &Rotation, lease: &Lease) -> Fence {
    Fence {
        rotation: rot.id.clone(),
        token: lease.token,
    }
}
