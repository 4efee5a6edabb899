//! rotor's PostgreSQL rotator ([`PostgresRotator`], `kind = "postgres"`).
//!
//! A postgres secret's value is UTF-8 JSON `{"username": "…", "password": "…"}`; its
//! version metadata is `{"username": "…"}`. Two strategies:
//!
//! - **single**: one login role whose password changes (`ALTER ROLE r PASSWORD …`). New
//!   logins need the new value from `set` on: a short window by nature. `retire` proves the
//!   previous password is rejected.
//! - **alternating** (zero downtime, as AWS's alternating-users strategy): a group role `r`
//!   (NOLOGIN, holds the privileges) and two login roles `r_a`, `r_b` in it. Each rotation
//!   gives the login role *not* in use a new password and `LOGIN`; `retire` sets the
//!   previous one `NOLOGIN` with an unknown password and proves it is rejected. `setup`
//!   makes both login roles act as the group role on login (`ALTER ROLE … SET role`), so
//!   what either creates (a migration's tables) is owned by the group and the other login
//!   role can use it after the next rotation (see `setup`).
//!
//! The admin credential (`settings.admin`, another managed secret of the same format) runs
//! the `ALTER ROLE`s; without one, a single-strategy role changes its own password with its
//! current value (alternating needs an admin: one login role cannot alter the other).
//!
//! Invariants:
//! - plaintext passwords never reach the server: `ALTER ROLE` carries a SCRAM-SHA-256
//!   verifier computed here, so neither the server log nor `pg_stat_statements` sees it;
//!   only a login (SCRAM exchange) uses the plaintext;
//! - no error or message carries a password, a verifier or a stored value;
//! - only roles this secret manages are altered: the single role, or `r_a`/`r_b`; a value
//!   naming another role is refused, and retire/rollback refuse to disable the login role
//!   the current value uses;
//! - every method is idempotent (all statements are absolute: `ALTER ROLE … PASSWORD`,
//!   `NOLOGIN`, `CREATE ROLE` only when missing), so the engine may call it again after a
//!   crash. For a self-managed single role, a `set` or `rollback` that already ran is
//!   detected (the current value is rejected but the pending one works) and repeated with
//!   the pending value;
//! - admin connections are reused per (url, admin user, password); `test` opens a fresh
//!   connection (but for an emergency retire's test of a single role's current value, which
//!   its own test step logged in with moments before: see `proven`), and the rejection
//!   proofs always do.

mod call;
mod conn;
mod probe;
mod proven;
mod sessions;
mod setup;
pub mod sql;

use std::sync::Arc;

use async_trait::async_trait;
use rotor_core::config::{KindSettings, PgStrategy};
use rotor_core::rotator::{Eviction, Generated, PlannedStep, StepContext};
use rotor_core::store::Versioned;
use rotor_core::{Kind, Rotator, RotatorError, SecretSpec, Step};
use tokio_postgres::SimpleQueryMessage;

use call::{Call, Who, rng_error};
use conn::{Pool, Target};
/// The stored value's type is rotor-core's (re-exported for callers of this crate).
pub use rotor_core::Credential;
pub use sql::{quote_ident, quote_literal};

/// The PostgreSQL rotator. Cheap to share: one instance serves every postgres secret and
/// keeps one admin connection per (url, admin user) between calls.
#[derive(Debug, Default)]
pub struct PostgresRotator {
    pool: Arc<Pool>,
    /// Single-strategy values whose emergency test step logged in moments ago.
    proven: proven::Proven,
}

impl PostgresRotator {
    pub fn new() -> Self {
        Self::default()
    }
}

/// The two login roles of an alternating group role.
pub fn login_roles(group: &str) -> [String; 2] {
    [format!("{group}_a"), format!("{group}_b")]
}

/// The first value of the first row of a simple query's answer.
fn first_value(rows: &[SimpleQueryMessage]) -> Option<String> {
    rows.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
        _ => None,
    })
}

#[async_trait]
impl Rotator for PostgresRotator {
    fn kind(&self) -> Kind {
        Kind::Postgres
    }

    fn plan(&self, spec: &SecretSpec) -> Vec<PlannedStep> {
        let KindSettings::Postgres(pg) = &spec.settings else {
            return Vec::new();
        };
        let at = Target::parse(&pg.url).map_or_else(|_| "<invalid url>".to_owned(), |t| t.display);
        let actor = match (&pg.admin, pg.strategy) {
            (Some(a), _) => format!("as admin secret {a}"),
            (None, PgStrategy::Single) => format!("as {} itself", pg.role),
            (None, PgStrategy::Alternating) => "no admin secret: will fail".to_owned(),
        };
        let line = |step, touches: String| PlannedStep { step, touches };
        match pg.strategy {
            PgStrategy::Single => vec![
                line(
                    Step::Create,
                    format!("new random password for role {} (touches nothing)", pg.role),
                ),
                line(
                    Step::Set,
                    format!("ALTER ROLE {} PASSWORD <scram> on {at} ({actor})", pg.role),
                ),
                line(
                    Step::Test,
                    format!("connect as {} with the pending password on {at}", pg.role),
                ),
                line(
                    Step::Retire,
                    format!(
                        "prove the previous password of {} is rejected on {at}",
                        pg.role
                    ),
                ),
            ],
            PgStrategy::Alternating => {
                let [a, b] = login_roles(&pg.role);
                let g = &pg.role;
                vec![
                    line(
                        Step::Create,
                        format!(
                            "new random password for whichever of {a}/{b} is not in use (touches nothing)"
                        ),
                    ),
                    line(
                        Step::Set,
                        format!(
                            "ALTER ROLE {a}|{b} (the one not in use) LOGIN PASSWORD <scram> on {at} ({actor})"
                        ),
                    ),
                    line(
                        Step::Test,
                        format!(
                            "connect as the pending login role on {at}; check it is a member of {g}"
                        ),
                    ),
                    line(
                        Step::Retire,
                        format!(
                            "ALTER ROLE <previous login role> NOLOGIN PASSWORD <unknown scram> on {at} ({actor}); prove the previous value is rejected"
                        ),
                    ),
                ]
            }
        }
    }

    async fn create(&self, ctx: &StepContext<'_>) -> Result<Generated, RotatorError> {
        let call = Call::new(ctx.spec, "create")?;
        let username = match call.pg.strategy {
            PgStrategy::Single => call.pg.role.clone(),
            PgStrategy::Alternating => {
                let [a, b] = login_roles(&call.pg.role);
                let in_use = match ctx.current {
                    Some(v) => Some(call.cred(v, "current")?.username),
                    None => None,
                };
                if in_use.as_deref() == Some(a.as_str()) {
                    b
                } else {
                    a
                }
            }
        };
        let password = sql::random_password().map_err(|e| rng_error(&call, e))?;
        let value = Credential::new(username.clone(), password)
            .to_value()
            .map_err(|e| call.permanent(format!("the new value {e}")))?;
        Ok(Generated {
            value,
            metadata: serde_json::json!({ "username": username }),
        })
    }

    async fn set(&self, ctx: &StepContext<'_>, pending: &Versioned) -> Result<(), RotatorError> {
        let call = Call::new(ctx.spec, "set")?;
        let new = call.cred(pending, "pending")?;
        call.check_managed(&new, "pending")?;
        let current = ctx.current.map(|v| call.cred(v, "current")).transpose()?;
        if call.pg.strategy == PgStrategy::Alternating
            && current.as_ref().is_some_and(|c| c.username == new.username)
        {
            return Err(call.permanent(format!(
                "the pending and current values both use login role {}; alternating needs the other one",
                new.username
            )));
        }
        let role = call.ident(&new.username)?;
        let verifier = quote_literal(&sql::scram_verifier(new.password().expose()))
            .map_err(|e| call.permanent(format!("verifier {e}")))?;
        let stmt = match call.pg.strategy {
            PgStrategy::Single => format!("ALTER ROLE {role} PASSWORD {verifier}"),
            PgStrategy::Alternating => format!("ALTER ROLE {role} WITH LOGIN PASSWORD {verifier}"),
        };
        let actor = call.actor(ctx)?;
        let stmt = Arc::new(stmt);
        call.admin(&self.pool, &actor, Some(&new), |c| {
            let stmt = Arc::clone(&stmt);
            async move { c.batch_execute(&stmt).await }
        })
        .await
    }

    async fn test(&self, ctx: &StepContext<'_>, pending: &Versioned) -> Result<(), RotatorError> {
        let call = Call::new(ctx.spec, "test")?;
        let new = call.cred(pending, "pending")?;
        call.check_managed(&new, "pending")?;
        // An emergency's retire tests the current value right after its own test step
        // logged in with it: that login stands (see `proven`). Only for single roles, whose
        // retire changes nothing on the server; an alternating retire disables a login
        // role, so it logs in again first.
        let is_current = ctx.current.is_some_and(|c| c.meta.id == pending.meta.id);
        let remember = ctx.emergency && call.pg.strategy == PgStrategy::Single;
        if remember && is_current && self.proven.take(&call.target, &new) {
            return Ok(());
        }
        let client = conn::connect(&call.target, &new)
            .await
            .map_err(|e| call.fail(Who::Pending, e))?;
        match call.pg.strategy {
            PgStrategy::Single => {
                let rows = conn::deadline(client.simple_query("SELECT 1"))
                    .await
                    .map_err(|e| call.fail(Who::Pending, e))?;
                if first_value(&rows).as_deref() != Some("1") {
                    return Err(call.permanent("SELECT 1 as the pending value did not return 1"));
                }
                if remember && !is_current {
                    self.proven.remember(&call.target, &new);
                }
            }
            PgStrategy::Alternating => {
                let group = quote_literal(&call.pg.role).map_err(|e| call.permanent(e))?;
                let q = format!("SELECT pg_has_role(current_user, {group}, 'member')");
                let rows = conn::deadline(client.simple_query(&q))
                    .await
                    .map_err(|e| call.fail(Who::Pending, e))?;
                if first_value(&rows).as_deref() != Some("t") {
                    return Err(call
                        .permanent(format!(
                            "login role {} is not a member of group role {}",
                            new.username, call.pg.role
                        ))
                        .with_fix(call.setup_fix()));
                }
            }
        }
        Ok(())
    }

    async fn retire(
        &self,
        ctx: &StepContext<'_>,
        previous: &Versioned,
    ) -> Result<(), RotatorError> {
        let call = Call::new(ctx.spec, "retire")?;
        let old = call.cred(previous, "previous")?;
        call.check_managed(&old, "previous")?;
        let current = ctx.current.map(|v| call.cred(v, "current")).transpose()?;
        match call.pg.strategy {
            PgStrategy::Single => {
                // The password already changed at set: only the proof is left.
                if current
                    .as_ref()
                    .is_some_and(|c| c.password().ct_eq(old.password()))
                {
                    return Err(call.permanent(
                        "the previous and current values have the same password; it cannot be retired without locking out the current value",
                    ));
                }
            }
            PgStrategy::Alternating => {
                if current.as_ref().is_some_and(|c| c.username == old.username) {
                    return Err(call.permanent(format!(
                        "the previous and current values both use login role {}; retiring it would lock out the current value",
                        old.username
                    )));
                }
                let role = call.ident(&old.username)?;
                let verifier = sql::unknown_verifier().map_err(|e| rng_error(&call, e))?;
                let verifier = quote_literal(&verifier).map_err(|e| call.permanent(e))?;
                let stmt = Arc::new(format!(
                    "ALTER ROLE {role} WITH NOLOGIN PASSWORD {verifier}"
                ));
                let actor = call.actor(ctx)?;
                call.admin(&self.pool, &actor, None, |c| {
                    let stmt = Arc::clone(&stmt);
                    async move { c.batch_execute(&stmt).await }
                })
                .await?;
            }
        }
        call.prove_rejected(&old).await
    }

    async fn rollback(
        &self,
        ctx: &StepContext<'_>,
        pending: &Versioned,
    ) -> Result<(), RotatorError> {
        let call = Call::new(ctx.spec, "rollback")?;
        let new = call.cred(pending, "pending")?;
        call.check_managed(&new, "pending")?;
        let current = ctx.current.map(|v| call.cred(v, "current")).transpose()?;
        let role = call.ident(&new.username)?;
        let stmt = match call.pg.strategy {
            PgStrategy::Alternating => {
                if current.as_ref().is_some_and(|c| c.username == new.username) {
                    return Err(call.permanent(format!(
                        "the pending and current values both use login role {}; disabling it would lock out the current value",
                        new.username
                    )));
                }
                let verifier = sql::unknown_verifier().map_err(|e| rng_error(&call, e))?;
                let verifier = quote_literal(&verifier).map_err(|e| call.permanent(e))?;
                format!("ALTER ROLE {role} WITH NOLOGIN PASSWORD {verifier}")
            }
            PgStrategy::Single => {
                let Some(current) = current else {
                    return Err(call
                        .permanent("no current value to restore: the role's password before this rotation is unknown")
                        .with_fix(format!(
                            "keep the pending value (finish the rotation) or `rotor put {}` with a password you set on the role",
                            call.name()
                        )));
                };
                let verifier = quote_literal(&sql::scram_verifier(current.password().expose()))
                    .map_err(|e| call.permanent(e))?;
                format!("ALTER ROLE {role} PASSWORD {verifier}")
            }
        };
        let actor = call.actor(ctx)?;
        let stmt = Arc::new(stmt);
        call.admin(&self.pool, &actor, Some(&new), |c| {
            let stmt = Arc::clone(&stmt);
            async move { c.batch_execute(&stmt).await }
        })
        .await
    }

    async fn probe(&self, ctx: &StepContext<'_>) -> Result<Vec<String>, RotatorError> {
        self.probe_target(ctx).await
    }

    async fn setup(&self, ctx: &StepContext<'_>) -> Result<Vec<String>, RotatorError> {
        let call = Call::new(ctx.spec, "setup")?;
        let actor = call.actor(ctx)?;
        setup::run(&self.pool, &call, &actor).await
    }

    async fn evict(
        &self,
        ctx: &StepContext<'_>,
        previous: &Versioned,
    ) -> Result<Eviction, RotatorError> {
        let call = Call::new(ctx.spec, "evict")?;
        let old = call.cred(previous, "previous")?;
        call.check_managed(&old, "previous")?;
        let users: Vec<String> = match call.pg.strategy {
            PgStrategy::Alternating => {
                if let Some(v) = ctx.current
                    && call.cred(v, "current")?.username == old.username
                {
                    return Err(call.permanent(format!(
                        "the previous and current values both use login role {}; evicting would cut the current value's sessions",
                        old.username
                    )));
                }
                // Both login roles: the previous one, and the one that now holds the new
                // password but until `set` held an older one (the in-grace previous of the
                // rotation before, which may be the leaked value). A session cannot be told
                // apart by the password it logged in with, so every session of the pair
                // ends; applications reconnect with the current value.
                login_roles(&call.pg.role).into()
            }
            // Single: the role is the same before and after; every session of it but ours
            // ends.
            PgStrategy::Single => vec![old.username.clone()],
        };
        let actor = call.actor(ctx)?;
        let users = Arc::new(users);
        call.admin(&self.pool, &actor, None, |c| {
            let users = Arc::clone(&users);
            async move { sessions::evict(&c, &users).await }
        })
        .await
    }
}
