//! The [`RedisRotator`] itself: its caches, and the [`Rotator`] steps built from the
//! other modules (see the crate docs for how each step maps onto Redis).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rotor_core::rotator::{Eviction, Generated, PlannedStep, StepContext};
use rotor_core::store::Versioned;
use rotor_core::{Credential, Kind, Rotator, RotatorError, SecretSpec, Step};

use crate::call::Call;
use crate::connection::{Auth, SessionSlot};
use crate::credential::{AclCredential, PASSWORD_LEN, random_password};
use crate::redact::redact;
use crate::resp::Reply;
use crate::save::{AclFile, SaveState, no_aclfile_warning};
use crate::version::{major_version, parse_redis_version};

/// How long connecting to a server may take by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one command's round trip may take by default.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// The rotator for `kind = "redis"`. Cheap to share (`Arc`); it caches admin connections.
pub struct RedisRotator {
    pub(crate) connect_timeout: Duration,
    pub(crate) command_timeout: Duration,
    /// (host:port, admin user) → the reusable admin connection.
    pub(crate) sessions: Mutex<HashMap<(String, String), SessionSlot>>,
    /// host:port → whether it has an aclfile, as last seen (for `plan`).
    pub(crate) aclfile_seen: Mutex<HashMap<String, bool>>,
    /// host:port → its `ACL SAVE` group commit.
    pub(crate) saves: Mutex<HashMap<String, Arc<SaveState>>>,
}

impl fmt::Debug for RedisRotator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRotator")
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .finish_non_exhaustive()
    }
}

impl Default for RedisRotator {
    fn default() -> Self {
        Self::new()
    }
}

impl RedisRotator {
    /// A rotator with the default timeouts (connect 3 s, each command 5 s).
    pub fn new() -> Self {
        Self::with_timeouts(DEFAULT_CONNECT_TIMEOUT, DEFAULT_COMMAND_TIMEOUT)
    }

    /// A rotator with its own connect and per-command timeouts.
    pub fn with_timeouts(connect_timeout: Duration, command_timeout: Duration) -> Self {
        Self {
            connect_timeout,
            command_timeout,
            sessions: Mutex::new(HashMap::new()),
            aclfile_seen: Mutex::new(HashMap::new()),
            saves: Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait]
impl Rotator for RedisRotator {
    fn kind(&self) -> Kind {
        Kind::Redis
    }

    fn plan(&self, spec: &SecretSpec) -> Vec<PlannedStep> {
        let call = match Call::new(spec, "plan") {
            Ok(call) => call,
            Err(e) => {
                return vec![PlannedStep {
                    step: Step::Set,
                    touches: format!("nothing: {e}"),
                }];
            }
        };
        let (t, u) = (&call.target, call.user());
        let who = match &call.settings.admin {
            Some(a) => format!("as {a}"),
            None => format!("as {u} itself"),
        };
        let seen = self
            .aclfile_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&t.to_string())
            .copied();
        let persist = match seen {
            Some(true) => format!("ACL SAVE on {t} after each change (it has an aclfile)"),
            Some(false) => no_aclfile_warning(t),
            None => format!(
                "ACL SAVE on {t} after each change if it has an aclfile (CONFIG GET aclfile); \
                 otherwise a warning that a restart would lose the change"
            ),
        };
        vec![
            PlannedStep {
                step: Step::Create,
                touches: format!(
                    "new random {PASSWORD_LEN}-character password for ACL user {u} (nothing on the server)"
                ),
            },
            PlannedStep {
                step: Step::Set,
                touches: format!("ACL SETUSER {u} #<sha256 of new> on {t} ({who})"),
            },
            PlannedStep {
                step: Step::Set,
                touches: persist,
            },
            PlannedStep {
                step: Step::Test,
                touches: format!("AUTH {u} <new> + PING on a fresh connection to {t}"),
            },
            PlannedStep {
                step: Step::Retire,
                touches: format!(
                    "ACL SETUSER {u} !<sha256 of previous> on {t} ({who}); AUTH {u} <previous> must then get WRONGPASS"
                ),
            },
        ]
    }

    async fn create(&self, ctx: &StepContext<'_>) -> Result<Generated, RotatorError> {
        let call = Call::new(ctx.spec, "create")?;
        let password = random_password()
            .map_err(|e| call.transient(format!("the OS random number generator failed: {e}")))?;
        let value = Credential::new(call.user(), rotor_rotate::random::into_value(password))
            .to_value()
            .map_err(|e| call.permanent(format!("the new value {e}")))?;
        Ok(Generated {
            value,
            metadata: serde_json::json!({ "username": call.user() }),
        })
    }

    async fn set(&self, ctx: &StepContext<'_>, pending: &Versioned) -> Result<(), RotatorError> {
        let call = Call::new(ctx.spec, "set")?;
        let hash = self.value_cred(&call, pending, "pending")?.acl_hash();
        let admin = Self::admin_cred(&call, ctx)?;
        let mut session = self.session(&call, &admin).await?;
        let Some(info) = Self::get_user(&call, &mut session, &admin).await? else {
            return Err(call.user_missing());
        };
        if !info.has(&hash) {
            Self::set_user(&call, &mut session, &admin, &format!("#{hash}")).await?;
        }
        // Also when the hash was there: a previous attempt may have stopped before ACL SAVE.
        self.persist(&call, session, &admin).await?;
        tracing::debug!(secret = call.secret, target = %call.target, "redis: pending password added");
        Ok(())
    }

    async fn test(&self, ctx: &StepContext<'_>, pending: &Versioned) -> Result<(), RotatorError> {
        let call = Call::new(ctx.spec, "test")?;
        let cred = self.value_cred(&call, pending, "pending")?;
        match self.fresh_auth(&call, &cred).await? {
            Auth::Ok(mut conn) => match conn.call(&[b"PING"]).await {
                Ok(Reply::Status(p)) if p == "PONG" => Ok(()),
                Ok(Reply::Error(e)) => Err(call.reply_error("PING", "ping", call.user(), &e)),
                Ok(other) => Err(call.permanent(format!("PING answered {other:?}"))),
                Err(e) => Err(call.conn_error("PING", &e)),
            },
            Auth::Refused(e) if e.starts_with("WRONGPASS") => Err(call
                .permanent(format!(
                    "the pending password of `{}` is refused ({e})",
                    call.user()
                ))
                .with_fix(format!(
                    "check `ACL GETUSER {}` (is the user `on`? was it changed meanwhile?); \
                     `rotor abort` then rotate again",
                    call.user()
                ))),
            Auth::Refused(e) if e.contains("wrong number of arguments") => {
                Err(call.no_acl(Some("< 6: AUTH takes no username")))
            }
            Auth::Refused(e) => Err(call.reply_error("AUTH", "", call.user(), &e)),
        }
    }

    async fn retire(
        &self,
        ctx: &StepContext<'_>,
        previous: &Versioned,
    ) -> Result<(), RotatorError> {
        let call = Call::new(ctx.spec, "retire")?;
        self.remove_password(&call, ctx, previous, "previous", ctx.current)
            .await
    }

    async fn rollback(
        &self,
        ctx: &StepContext<'_>,
        pending: &Versioned,
    ) -> Result<(), RotatorError> {
        let call = Call::new(ctx.spec, "rollback")?;
        // The keep check does not apply: the current value's password is what clients use,
        // and it was never touched by this rotation.
        if let Some(current) = ctx.current
            && current.meta.id == pending.meta.id
        {
            return Err(
                call.permanent("the pending version is the current one: refusing to remove it")
            );
        }
        self.remove_password(&call, ctx, pending, "pending", None)
            .await
    }

    /// Reachable, the admin authenticates, it may read and change ACLs (`+acl`), the user
    /// exists and is `on`, and the current value still logs in. Changes nothing.
    async fn probe(&self, ctx: &StepContext<'_>) -> Result<Vec<String>, RotatorError> {
        let call = Call::new(ctx.spec, "probe")?;
        let admin = Self::admin_cred(&call, ctx)?;
        let mut checks = Vec::new();
        let tls_check = self.tls_preflight(&call).await?;
        let mut session = self.session(&call, &admin).await?;
        checks.push(format!(
            "{} reachable; admin `{}` authenticated",
            call.target, admin.username
        ));
        checks.extend(tls_check);
        let Some(info) = Self::get_user(&call, &mut session, &admin).await? else {
            return Err(call.user_missing());
        };
        if !info.is_on() {
            return Err(call
                .permanent(format!("ACL user `{}` is off", call.user()))
                .with_fix(format!("`ACL SETUSER {} on`", call.user())));
        }
        checks.push(format!("ACL user `{}` exists and is on", call.user()));
        // ACL DRYRUN (Redis 7) asks the server whether the admin could run ACL SETUSER.
        let dry = Self::run(
            &call,
            &mut session,
            &[
                b"ACL",
                b"DRYRUN",
                admin.username.as_bytes(),
                b"ACL",
                b"SETUSER",
                call.user().as_bytes(),
            ],
        )
        .await?;
        match dry {
            Reply::Status(ok) if ok == "OK" => {
                checks.push(format!("admin `{}` may run ACL SETUSER", admin.username));
            }
            Reply::Bulk(Some(why)) => {
                return Err(call
                    .permanent(format!(
                        "admin `{}` may not run ACL SETUSER ({})",
                        admin.username,
                        redact(&String::from_utf8_lossy(&why))
                    ))
                    .with_fix(format!("grant it: `ACL SETUSER {} +acl`", admin.username)));
            }
            Reply::Error(e) if e.starts_with("ERR unknown subcommand") => {
                checks.push("ACL DRYRUN unavailable (Redis < 7): ACL SETUSER not checked".into());
            }
            Reply::Error(e) => {
                return Err(
                    Self::reply_err(&call, &mut session, &admin, "ACL DRYRUN", "acl", &e).await,
                );
            }
            other => return Err(call.permanent(format!("ACL DRYRUN answered {other:?}"))),
        }
        drop(session);
        if call.settings.admin.is_some()
            && let Some(current) = ctx.current
        {
            let cred = self.value_cred(&call, current, "current")?;
            match self.fresh_auth(&call, &cred).await? {
                Auth::Ok(_) => {
                    checks.push(format!("the current value of `{}` logs in", call.user()))
                }
                Auth::Refused(e) => {
                    return Err(call
                        .permanent(format!(
                            "the current value of `{}` is refused ({e})",
                            call.user()
                        ))
                        .with_fix(format!(
                            "someone changed the password outside rotor: `rotor put {}` with the \
                             present one, or rotate with --emergency",
                            call.secret
                        )));
                }
            }
        }
        Ok(checks)
    }

    async fn setup(&self, ctx: &StepContext<'_>) -> Result<Vec<String>, RotatorError> {
        let call = Call::new(ctx.spec, "setup")?;
        let admin = Self::admin_cred(&call, ctx)?;
        let mut session = self.session(&call, &admin).await?;
        let mut lines = Vec::new();
        let version = match Self::run(&call, &mut session, &[b"INFO", b"server"]).await? {
            Reply::Bulk(Some(b)) => parse_redis_version(&String::from_utf8_lossy(&b)),
            _ => None,
        };
        lines.push(format!(
            "connected to {} as `{}`{}",
            call.target,
            admin.username,
            version
                .as_deref()
                .map(|v| format!(" (redis_version {v})"))
                .unwrap_or_default()
        ));
        if let Some(v) = &version
            && major_version(v).is_some_and(|m| m < 6)
        {
            return Err(call.no_acl(Some(v)));
        }
        let Some(info) = Self::get_user(&call, &mut session, &admin).await? else {
            return Err(call.user_missing());
        };
        lines.push(format!(
            "ACL user `{}` exists ({}, {} password{})",
            call.user(),
            if info.is_on() { "on" } else { "off" },
            info.passwords.len(),
            if info.passwords.len() == 1 { "" } else { "s" }
        ));
        if !info.is_on() {
            lines.push(format!(
                "WARNING: ACL user `{0}` is off: nobody can AUTH as it until `ACL SETUSER {0} on`",
                call.user()
            ));
        }
        if let Some(current) = ctx.current {
            let cred = self.value_cred(&call, current, "current")?;
            if info.has(&cred.acl_hash()) {
                lines.push(format!(
                    "the current value of `{}` is one of the user's passwords",
                    call.secret
                ));
            } else {
                lines.push(format!(
                    "WARNING: the current value of `{}` is not one of the user's passwords: \
                     `rotor put` the password the application uses, or rotate to add a new one",
                    call.secret
                ));
            }
        }
        match self.aclfile(&call, &mut session, &admin).await? {
            AclFile::File(path) => lines.push(format!(
                "ACL SAVE applies: {} has aclfile {path}; rotor saves after each change",
                call.target
            )),
            AclFile::NoFile => {
                let warning = no_aclfile_warning(&call.target);
                tracing::warn!(secret = call.secret, step = call.step, "{warning}");
                lines.push(warning);
            }
        }
        let dryrun = Self::run(
            &call,
            &mut session,
            &[
                b"ACL",
                b"DRYRUN",
                admin.username.as_bytes(),
                b"CLIENT",
                b"KILL",
                b"USER",
                call.user().as_bytes(),
            ],
        )
        .await?;
        match dryrun {
            Reply::Status(s) if s == "OK" => lines.push(format!(
                "`{}` may end sessions (CLIENT KILL) for emergency rotations",
                admin.username
            )),
            Reply::Error(e) if e.contains("no permissions") => lines.push(format!(
                "WARNING: `{0}` may not run CLIENT KILL: an emergency rotation could not end \
                 old sessions (`ACL SETUSER {0} +client|kill`)",
                admin.username
            )),
            // ACL DRYRUN is Redis >= 7.0: nothing to report on 6.x.
            _ => {}
        }
        Ok(lines)
    }

    async fn evict(
        &self,
        ctx: &StepContext<'_>,
        _previous: &Versioned,
    ) -> Result<Eviction, RotatorError> {
        self.end_sessions(ctx).await
    }
}
