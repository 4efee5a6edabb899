//! One call of one rotator method on one secret ([`Call`]): the checks every method makes
//! first (a postgres secret, a parseable url, a role name PostgreSQL keeps as is, a value
//! naming a role this secret manages), the credential that runs `ALTER ROLE`, and the
//! mapping of a server failure to an error naming secret, step, target and cause (never a
//! password, a verifier or a stored value).

use std::sync::Arc;

use rotor_core::config::{KindSettings, PgStrategy, PostgresSettings};
use rotor_core::rotator::StepContext;
use rotor_core::store::Versioned;
use rotor_core::{Credential, RotatorError, SecretName, SecretSpec};
use tokio_postgres::Client;

use crate::conn::{self, PgFailure, Pool, Target};
use crate::{login_roles, quote_ident, sql};

/// Whose credential a connection uses, for error messages.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Who<'a> {
    Admin(&'a SecretName),
    /// The secret's own current value (self-managed single role).
    Current,
    Pending,
    Previous,
}

/// One call of one method on one secret: everything an error message needs.
pub(crate) struct Call<'a> {
    pub(crate) spec: &'a SecretSpec,
    pub(crate) pg: &'a PostgresSettings,
    op: &'static str,
    pub(crate) target: Target,
}

impl<'a> Call<'a> {
    pub(crate) fn new(spec: &'a SecretSpec, op: &'static str) -> Result<Self, RotatorError> {
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

    pub(crate) fn name(&self) -> &SecretName {
        &self.spec.name
    }

    pub(crate) fn prefix(&self) -> String {
        format!(
            "secret {}: {} on {}",
            self.spec.name, self.op, self.target.display
        )
    }

    pub(crate) fn permanent(&self, cause: impl std::fmt::Display) -> RotatorError {
        RotatorError::permanent(format!("{}: {cause}", self.prefix()))
    }

    pub(crate) fn transient(&self, cause: impl std::fmt::Display) -> RotatorError {
        RotatorError::transient(format!("{}: {cause}", self.prefix()))
    }

    pub(crate) fn setup_fix(&self) -> String {
        format!("run `rotor setup {}`", self.name())
    }

    /// Parses a stored value handed in by the engine.
    pub(crate) fn cred(&self, v: &Versioned, what: &str) -> Result<Credential, RotatorError> {
        Credential::parse(&v.value).map_err(|e| {
            self.permanent(format!("the {what} value (version {}) {e}", v.meta.id))
                .with_fix(format!(
                    "store a value of the form {{\"username\": \"…\", \"password\": \"…\"}} with `rotor put {}`",
                    v.meta.secret
                ))
        })
    }

    /// A role name this secret manages, as a quoted identifier.
    pub(crate) fn ident(&self, role: &str) -> Result<String, RotatorError> {
        quote_ident(role).map_err(|e| self.permanent(format!("role name {e}")))
    }

    /// Refuses a value whose username is not a role this secret manages.
    pub(crate) fn check_managed(&self, cred: &Credential, what: &str) -> Result<(), RotatorError> {
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
    pub(crate) fn actor<'c>(
        &self,
        ctx: &'c StepContext<'_>,
    ) -> Result<(Credential, Who<'a>), RotatorError> {
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
    pub(crate) fn fail(&self, who: Who<'_>, f: PgFailure) -> RotatorError {
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
    pub(crate) async fn admin<T, F, Fut>(
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
    pub(crate) async fn prove_rejected(&self, cred: &Credential) -> Result<(), RotatorError> {
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

pub(crate) fn rng_error(call: &Call<'_>, e: getrandom::Error) -> RotatorError {
    call.transient(format!("the OS random generator failed ({e})"))
}
