//! A minimal rotation driver over the `Store` trait, standing in for the daemon: the same
//! five transactions a real rotation makes (begin; create pending; set+test; promote;
//! complete), every one after the first fenced with the rotation's lease. Used by the
//! replica tests and by `examples/pg_store_bench.rs`.
#![allow(dead_code)]

use jiff::{SignedDuration, Timestamp};
use rotor_core::audit::AuditEvent;
use rotor_core::rotation::{Lease, Trigger};
use rotor_core::store::{Change, Fence, NewVersion, Op, Takeover};
use rotor_core::{
    Rotation, RotationId, RotationStatus, SecretName, SecretValue, Stage, Step, Store, StoreError,
    VersionId,
};

/// Audit actions of this driver (its own names, so tests can count them).
pub const BEGIN: &str = "test.rotation.begin";
pub const CREATE: &str = "test.rotation.create";
pub const PROMOTE: &str = "test.rotation.promote";
pub const FINISH: &str = "test.rotation.finish";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Rotated,
    /// Its current version is newer than `due_before`: rotated already.
    NotDue,
    /// Another replica holds it (or just rotated it).
    Busy,
    /// Another replica took the lease over; this one stopped.
    LostLease,
}

/// Where a driver pauses for ever (a replica "killed" mid-rotation): after the create step
/// of the next rotation it begins, it sends the rotation id and never returns.
pub type Park = tokio::sync::oneshot::Sender<RotationId>;

/// Rotates `secret` if its current version is older than `due_before`.
pub async fn rotate_if_due<S: Store + ?Sized>(
    store: &S,
    secret: &SecretName,
    owner: &str,
    due_before: Timestamp,
    lease_for: SignedDuration,
    park: &mut Option<Park>,
) -> Result<Outcome, StoreError> {
    let current = store.read_stage(secret, Stage::Current).await?;
    if current
        .as_ref()
        .is_some_and(|c| c.meta.created_at >= due_before)
    {
        return Ok(Outcome::NotDue);
    }
    let now = Timestamp::now();
    let lease = Lease {
        owner: owner.to_owned(),
        token: 1,
        expires_at: now + lease_for,
    };
    let r = Rotation {
        id: RotationId::generate(),
        secret: secret.clone(),
        trigger: Trigger::Schedule,
        actor: owner.to_owned(),
        reason: None,
        emergency: false,
        evict: true,
        status: RotationStatus::Running,
        step: Step::Create,
        step_done: false,
        attempts: 0,
        error: None,
        pending_version: None,
        previous_version: current.map(|c| c.meta.id),
        started_at: now,
        updated_at: now,
        activate_after: None,
        rollback_owed: false,
        retire_after: None,
        lease: Some(lease.clone()),
    };
    let begin = Change::new()
        .op(Op::BeginRotation(Box::new(r.clone())))
        .audit(AuditEvent::new(owner, BEGIN).secret(secret).rotation(&r.id));
    match store.apply(begin).await {
        Ok(_) => {}
        Err(StoreError::Busy { .. } | StoreError::Stale { .. }) => return Ok(Outcome::Busy),
        Err(e) => return Err(e),
    }
    drive(store, r, lease, park).await
}

/// Takes over every running rotation whose lease expired and finishes it. Returns how
/// many it finished; loops until none is left running.
pub async fn take_over_expired<S: Store + ?Sized>(
    store: &S,
    owner: &str,
    lease_for: SignedDuration,
) -> Result<usize, StoreError> {
    let mut finished = 0;
    loop {
        let running: Vec<Rotation> = store
            .open_rotations()
            .await?
            .into_iter()
            .filter(|r| r.status == RotationStatus::Running)
            .collect();
        if running.is_empty() {
            return Ok(finished);
        }
        let mut waiting = false;
        for r in running {
            let now = Timestamp::now();
            match store
                .claim(&r.id, owner, now, now + lease_for, Takeover::IfExpired)
                .await
            {
                Ok(lease) => {
                    // Re-read under our lease: the record is what the dead holder left.
                    let Some(r) = store.rotation(&r.id).await? else {
                        continue;
                    };
                    if drive(store, r, lease, &mut None).await? == Outcome::Rotated {
                        finished += 1;
                    }
                }
                Err(StoreError::Busy { .. }) => waiting = true,
                // Another survivor finished it since the list was read: no lease on an
                // ended rotation.
                Err(StoreError::Ended { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        if waiting {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

/// Runs the remaining steps of `r` under `lease`, from where its record says it stands
/// (each step is its own fenced transaction, as in the engine).
pub async fn drive<S: Store + ?Sized>(
    store: &S,
    mut r: Rotation,
    lease: Lease,
    park: &mut Option<Park>,
) -> Result<Outcome, StoreError> {
    let fence = Fence {
        rotation: r.id.clone(),
        token: lease.token,
    };
    r.lease = Some(lease.clone());
    let owner = lease.owner.clone();
    let secret = r.secret.clone();
    loop {
        let mut change = Change::fenced(fence.clone());
        r.updated_at = Timestamp::now();
        match (r.status, r.step, r.step_done) {
            (RotationStatus::Running, Step::Create, false) => {
                let id = VersionId::generate();
                // A random value (a fresh UUID's text is as random as it needs to be here).
                let value = SecretValue::new(VersionId::generate().to_string().into_bytes());
                r.pending_version = Some(id.clone());
                r.step_done = true;
                change = change
                    .op(Op::InsertVersion {
                        version: NewVersion {
                            secret: secret.clone(),
                            id: id.clone(),
                            created_by: owner.clone(),
                            created_at: Timestamp::now(),
                            metadata: serde_json::json!({}),
                            value,
                        },
                        stage: Some(Stage::Pending),
                    })
                    .audit(
                        AuditEvent::new(&owner, CREATE)
                            .secret(&secret)
                            .version(&id)
                            .rotation(&r.id),
                    );
            }
            (RotationStatus::Running, Step::Create, true)
            | (RotationStatus::Running, Step::Set | Step::Test, false) => {
                r.step = Step::Test;
                r.step_done = true;
            }
            (RotationStatus::Running, Step::Test | Step::Activate, true)
            | (RotationStatus::Running, Step::Activate | Step::Finish, false) => {
                let Some(pending) = r.pending_version.clone() else {
                    return Err(StoreError::Backend(format!(
                        "rotation {} has no pending version",
                        r.id
                    )));
                };
                r.step = Step::Finish;
                r.step_done = true;
                change = change
                    .op(Op::Promote {
                        secret: secret.clone(),
                        version: pending.clone(),
                    })
                    .audit(
                        AuditEvent::new(&owner, PROMOTE)
                            .secret(&secret)
                            .version(&pending)
                            .rotation(&r.id),
                    );
            }
            (RotationStatus::Running, Step::Finish, true) => {
                r.status = RotationStatus::Completed;
                r.step = Step::Retire;
                r.step_done = true;
                change = change.audit(
                    AuditEvent::new(&owner, FINISH)
                        .secret(&secret)
                        .rotation(&r.id),
                );
            }
            _ => return Ok(Outcome::Rotated),
        }
        let created = r.step == Step::Create;
        change = change.op(Op::SaveRotation(Box::new(r.clone())));
        match store.apply(change).await {
            Ok(_) => {}
            Err(StoreError::LeaseLost { .. }) => return Ok(Outcome::LostLease),
            Err(e) => return Err(e),
        }
        if r.status == RotationStatus::Completed {
            return Ok(Outcome::Rotated);
        }
        if created && let Some(p) = park.take() {
            let _ = p.send(r.id.clone());
            std::future::pending::<()>().await;
        }
    }
}
