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
//! - admin connections are reused per (url, admin user, password); `test` and the
//!   rejection proofs always open a fresh connection.

mod conn;
mod probe;
mod sessions;
mod setup;
pub mod sql;

use std::sync::Arc;

use async_trait::async_trait;
use rotor_core::config::{KindSettings, PgStrategy, PostgresSettings};
use rotor_core::rotator::{Eviction, Generated, PlannedStep, StepContext};
use rotor_core::store::Versioned;
use rotor_core::{Kind, Rotator, RotatorError, SecretName, SecretSpec, Step};
use tokio_postgres::{Client, SimpleQueryMessage};

use conn::{PgFailure, Pool, Target};
/// The stored value's type is rotor-core's (re-exported for callers of this crate).
pub use rotor_core::Credential;
pub use sql::{quote_ident, quote_literal};

/// The PostgreSQL rotator. Cheap to share: one instance serves every postgres secret and
/// keeps one admin connection per (url, admin user) between calls.
#[derive(Debug, Default)]
pub struct PostgresRotator {
    pool: Arc<Pool>,
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

/// Whose credential a connection uses, for error messages.
#[derive(Debug, Clone, Copy)]
enum Who<'a> {
    Admin(&'a SecretName),
    /// The secret's own current value (self-managed single role).
    Current,
    Pending,
    Previous,
}

/// One call of one method on one secret: everything an error message needs.
struct Call<'a> {
    spec: &'a SecretSpec,
    pg: &'a PostgresSettings,
    op: &'static str,
    target: Target,
}

impl<'a> Call<'a> {
    fn new(spec: &'a SecretSpec, op: &'static str) -> Result<Self, RotatorError> {
        let KindSettings::Postgres(pg) = &spec.settings else {
            return Err(RotatorError::permanent(format!(
                "secret {}: {op}: not a postgres secret (kind {})",
                spec.name, spec.kind
            )));
        };
        let target = Target::parse(&pg.url).map_err(|cause| {
            RotatorError::permanent(format!("secret {}: {op}: {cause}", spec.name))
                .with_fix("set url = \"postgres://host:port/dbname\" (no user, no password)")
        })?;
        let call = Self {
            spec,
            pg,
            op,
            target,
        };
        let max = match pg.strategy {
            PgStrategy::Single => sql::MAX_IDENT_BYTES,
            PgStrategy::Alternating => sql::MAX_IDENT_BYTES - 2,
        };
        if let Err(e) = sql::check_ident(&pg.role) {
            return Err(call.permanent(format!("role name {e}")));
        }
        if pg.role.len() > max {
            return Err(call.permanent(format!(
                "role name is {} bytes; with the _a/_b suffix PostgreSQL would truncate it (at most {max})",
                pg.role.len()
            )));
        }
        Ok(call)
    }

    fn name(&self) -> &SecretName {
        &self.spec.name
    }

    fn prefix(&self) -> String {
        format!(
            "secret {}: {} on {}",
            self.spec.name, self.op, self.target.display
        )
    }

    fn permanent(&self, cause: impl std::fmt::Display) -> RotatorError {
        RotatorError::permanent(format!("{}: {cause}", self.prefix()))
    }

    fn transient(&self, cause: impl std::fmt::Display) -> RotatorError {
        RotatorError::transient(format!("{}: {cause}", self.prefix()))
    }

    fn setup_fix(&self) -> String {
        format!("run `rotor setup {}`", self.name())
    }

    /// Parses a stored value handed in by the engine.
    fn cred(&self, v: &Versioned, what: &str) -> Result<Credential, RotatorError> {
        Credential::parse(&v.value).map_err(|e| {
            self.permanent(format!("the {what} value (version {}) {e}", v.meta.id))
                .with_fix(format!(
                    "store a value of the form {{\"username\": \"…\", \"password\": \"…\"}} with `rotor put {}`",
                    v.meta.secret
                ))
        })
    }

    /// A role name this secret manages, as a quoted identifier.
    fn ident(&self, role: &str) -> Result<String, RotatorError> {
        quote_ident(role).map_err(|e| self.permanent(format!("role name {e}")))
    }

    /// Refuses a value whose username is not a role this secret manages.
    fn check_managed(&self, cred: &Credential, what: &str) -> Result<(), RotatorError> {
        let ok = match self.pg.strategy {
            PgStrategy::Single => cred.username == self.pg.role,
            PgStrategy::Alternating => login_roles(&self.pg.role).contains(&cred.username),
        };
        if ok {
            Ok(())
        } else {
            let expected = match self.pg.strategy {
                PgStrategy::Single => self.pg.role.clone(),
                PgStrategy::Alternating => login_roles(&self.pg.role).join(" or "),
            };
            Err(self.permanent(format!(
                "the {what} value is for role {:?}, not {expected}; rotor only alters the roles a secret manages",
                cred.username
            )))
        }
    }

    /// The credential that runs `ALTER ROLE`: the admin secret, or (single, no admin) the
    /// secret's current value.
    fn actor<'c>(&self, ctx: &'c StepContext<'_>) -> Result<(Credential, Who<'a>), RotatorError> {
        if let Some(admin) = &self.pg.admin {
            let Some(v) = ctx.admin else {
                return Err(self
                    .permanent(format!("the admin secret {admin} has no current value"))
                    .with_fix(format!("`rotor put {admin}`")));
            };
            let cred = Credential::parse(&v.value).map_err(|e| {
                self.permanent(format!("the admin secret {admin}'s current value {e}"))
                    .with_fix(format!("`rotor put {admin}`"))
            })?;
            return Ok((cred, Who::Admin(admin)));
        }
        if self.pg.strategy == PgStrategy::Alternating {
            return Err(self
                .permanent("the alternating strategy needs an admin secret: one login role cannot change the other's password")
                .with_fix("set admin = \"<a postgres secret whose role has CREATEROLE>\""));
        }
        let Some(v) = ctx.current else {
            return Err(self
                .permanent("no current value and no admin secret: nothing can log in to change the password")
                .with_fix(format!(
                    "`rotor put {}` with the role's present password, or set an admin secret",
                    self.name()
                )));
        };
        Ok((self.cred(v, "current")?, Who::Current))
    }

    /// Turns a server failure into an error naming secret, step, target and cause.
    fn fail(&self, who: Who<'_>, f: PgFailure) -> RotatorError {
        let e = match f {
            PgFailure::Timeout(what) => {
                return self
                    .transient(format!(
                        "timed out {what} (after {:?})",
                        if what == "connecting" {
                            conn::CONNECT_TIMEOUT
                        } else {
                            conn::STATEMENT_TIMEOUT
                        }
                    ))
                    .with_fix("check the server is up and reachable; rotor retries");
            }
            PgFailure::Tls(t) => return self.permanent(t.message).with_fix(t.fix),
            PgFailure::Pg(e) => e,
        };
        let Some(db) = e.as_db_error() else {
            // No answer from the server: refused, reset, closed, DNS. Worth retrying.
            let cause = io_cause(&e);
            return self
                .transient(format!("cannot reach the server: {cause}"))
                .with_fix("check the server is up and reachable; rotor retries");
        };
        let code = db.code().code();
        let msg = db.message();
        match code {
            "28P01" | "28000" => match who {
                Who::Admin(admin) => self
                    .permanent(format!(
                        "the admin secret {admin}'s current value is rejected by the server ({code}: {msg})"
                    ))
                    .with_fix(format!("`rotor put {admin}` with the admin role's real password")),
                Who::Current => self
                    .permanent(format!(
                        "the current value of {} is rejected by the server ({code}: {msg})",
                        self.name()
                    ))
                    .with_fix(format!(
                        "`rotor put {}` with the role's real password, or set an admin secret",
                        self.name()
                    )),
                Who::Pending => self
                    .permanent(format!("the pending value is rejected by the server ({code}: {msg})"))
                    .with_fix("run set again (it is idempotent); check pg_hba.conf allows password logins for the role"),
                Who::Previous => self.permanent(format!(
                    "the previous value is rejected by the server ({code}: {msg})"
                )),
            },
            "42501" => {
                let actor = match who {
                    Who::Admin(admin) => format!("the admin secret {admin}'s role"),
                    _ => format!("role {}", self.pg.role),
                };
                self.permanent(format!("{actor} lacks a privilege ({code}: {msg})"))
                    .with_fix(format!(
                        "as a superuser: `ALTER ROLE <admin role> CREATEROLE` (PostgreSQL 16+ also: `GRANT {} TO <admin role> WITH ADMIN OPTION`)",
                        self.pg.role
                    ))
            }
            "42704" => self
                .permanent(format!("a role is missing ({code}: {msg})"))
                .with_fix(self.setup_fix()),
            "3D000" => self
                .permanent(format!("the database does not exist ({code}: {msg})"))
                .with_fix("fix the database name in url"),
            _ if is_transient_code(code) => self.transient(format!("server error {code}: {msg}")),
            _ => self.permanent(format!("server error {code}: {msg}")),
        }
    }

    /// Runs `f` on an admin connection as `actor`. For a self-managed single role, when the
    /// current value is rejected and `fallback` (the pending value) works, runs `f` as
    /// `fallback`: the password was already changed by an earlier, interrupted call.
    async fn admin<T, F, Fut>(
        &self,
        pool: &Pool,
        actor: &(Credential, Who<'_>),
        fallback: Option<&Credential>,
        f: F,
    ) -> Result<T, RotatorError>
    where
        F: Fn(Arc<Client>) -> Fut,
        Fut: Future<Output = Result<T, tokio_postgres::Error>>,
    {
        match pool.run(&self.target, &actor.0, &f).await {
            Ok(v) => Ok(v),
            Err(e) if e.is_auth() && matches!(actor.1, Who::Current) && fallback.is_some() => {
                let Some(fb) = fallback else {
                    return Err(self.fail(actor.1, e));
                };
                match pool.run(&self.target, fb, &f).await {
                    Ok(v) => Ok(v),
                    Err(e2) if e2.is_auth() => Err(self.fail(actor.1, e)),
                    Err(e2) => Err(self.fail(Who::Pending, e2)),
                }
            }
            Err(e) => Err(self.fail(actor.1, e)),
        }
    }

    /// Proves `cred` no longer logs in: a fresh connection must fail with an authentication
    /// error. Success, or any other failure, is an error.
    async fn prove_rejected(&self, cred: &Credential) -> Result<(), RotatorError> {
        match conn::connect(&self.target, cred).await {
            Ok(client) => {
                drop(client);
                Err(self
                    .permanent(format!(
                        "the previous value of role {} still logs in",
                        cred.username
                    ))
                    .with_fix("someone set the password back; rotate again, then retire"))
            }
            Err(e) if e.is_auth() => Ok(()),
            Err(e) => {
                let err = self.fail(Who::Previous, e);
                Err(RotatorError {
                    message: format!(
                        "{} (could not prove the previous value is rejected)",
                        err.message
                    ),
                    ..err
                })
            }
        }
    }
}

/// SQLSTATEs worth retrying: connection exceptions, resource shortages, shutdowns,
/// serialization failures and lock timeouts.
fn is_transient_code(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("57P")
        || matches!(code, "40001" | "40P01" | "55P03" | "57014")
}

/// A connection failure's cause, from the innermost error (e.g. `Connection refused`).
fn io_cause(e: &tokio_postgres::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
                std::io::ErrorKind::UnexpectedEof => "the server closed the connection".to_owned(),
                _ => io.to_string(),
            };
        }
        source = s.source();
    }
    if e.is_closed() {
        "the connection was closed".to_owned()
    } else {
        e.to_string()
    }
}

/// The first value of the first row of a simple query's answer.
fn first_value(rows: &[SimpleQueryMessage]) -> Option<String> {
    rows.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
        _ => None,
    })
}

fn rng_error(call: &Call<'_>, e: getrandom::Error) -> RotatorError {
    call.transient(format!("the OS random generator failed ({e})"))
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
