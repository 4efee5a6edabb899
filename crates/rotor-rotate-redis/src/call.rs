//! [`Call`]: one call of one step, and the error messages it makes.

use std::fmt;

use rotor_core::config::{KindSettings, RedisSettings};
use rotor_core::{RotatorError, SecretSpec};

use crate::redact::redact;
use crate::resp::ConnError;
use crate::url::{Target, parse_url};

/// One call of one step: names everything an error message needs.
pub(crate) struct Call<'a> {
    pub(crate) secret: &'a str,
    pub(crate) step: &'static str,
    pub(crate) settings: &'a RedisSettings,
    pub(crate) target: Target,
}

impl<'a> Call<'a> {
    pub(crate) fn new(spec: &'a SecretSpec, step: &'static str) -> Result<Call<'a>, RotatorError> {
        let KindSettings::Redis(settings) = &spec.settings else {
            return Err(RotatorError::permanent(format!(
                "secret `{}`: the redis rotator got a `{}` secret",
                spec.name, spec.kind
            )));
        };
        let target = parse_url(&settings.url).map_err(|cause| {
            RotatorError::permanent(format!(
                "redis secret `{}`: {step}: bad url {:?}: {cause}",
                spec.name,
                redact(&settings.url)
            ))
            .with_fix("set `url = \"redis://host:port\"` in the inventory")
        })?;
        Ok(Call {
            secret: spec.name.as_str(),
            step,
            settings,
            target,
        })
    }

    pub(crate) fn user(&self) -> &str {
        &self.settings.user
    }

    fn msg(&self, cause: impl fmt::Display) -> String {
        format!(
            "redis secret `{}`: {} on {}: {cause}",
            self.secret, self.step, self.target
        )
    }

    pub(crate) fn permanent(&self, cause: impl fmt::Display) -> RotatorError {
        RotatorError::permanent(self.msg(cause))
    }

    pub(crate) fn transient(&self, cause: impl fmt::Display) -> RotatorError {
        RotatorError::transient(self.msg(cause))
    }

    /// The secret whose value authenticates rotor's admin connection.
    pub(crate) fn admin_secret(&self) -> &str {
        self.settings
            .admin
            .as_ref()
            .map_or(self.secret, |a| a.as_str())
    }

    /// A network failure: transient; a refused TLS handshake: permanent, explained.
    pub(crate) fn conn_error(&self, what: &str, e: &ConnError) -> RotatorError {
        // With TLS 1.3 a refused client certificate surfaces on the first read, so a lost
        // connection is checked for a TLS cause too.
        if let (ConnError::Tls(io) | ConnError::Io(io), Some(tls)) = (e, &self.target.tls)
            && let Some(why) = rotor_tls::explain_rustls(io, &tls.opts, &self.target.host)
        {
            return self.permanent(why.message).with_fix(why.fix);
        }
        if let ConnError::TlsTimeout(_) = e {
            // Transient: an overloaded TLS server looks the same for a while.
            return self.transient(format!("{what}: {e}")).with_fix(
                "point the url at the server's TLS port (redis-server --tls-port), or use \
                 redis:// on a trusted network; rotor retries",
            );
        }
        self.transient(format!("{what}: {e}")).with_fix(format!(
            "check that redis-server is running and reachable at {}; rotor retries",
            self.target
        ))
    }

    /// The error for a user missing on the server.
    pub(crate) fn user_missing(&self) -> RotatorError {
        self.permanent(format!("ACL user `{}` does not exist", self.user()))
            .with_fix(format!(
                "create it first, e.g. `ACL SETUSER {} on ~* +@all` (narrow keys and commands to \
                 what the application needs; add it to the aclfile), then retry: rotor adds the \
                 password",
                self.user()
            ))
    }

    /// The error for a server without ACL commands.
    pub(crate) fn no_acl(&self, version: Option<&str>) -> RotatorError {
        let seen = match version {
            Some(v) => format!("redis_version {v}"),
            None => "ACL commands unavailable".to_owned(),
        };
        self.permanent(format!(
            "the server has no usable ACL commands ({seen}): a requirepass-only password \
             cannot be rotated without downtime"
        ))
        .with_fix(format!(
            "migrate to Redis >= 6 ACL users: create an ACL user for the application \
             (`ACL SETUSER {} on >... ~* +@all`, narrowed to what it needs) and an admin user \
             with +acl, store both with `rotor put` and set `user`/`admin`; if ACL was \
             disabled with rename-command, enable it",
            if self.user() == "default" {
                "app"
            } else {
                self.user()
            }
        ))
    }

    /// Classifies an error reply to `what`; `perm` is the permission the caller needs.
    pub(crate) fn reply_error(&self, what: &str, perm: &str, who: &str, err: &str) -> RotatorError {
        let err = redact(err);
        if err.starts_with("NOPERM") {
            let mut fix = format!("grant it: `ACL SETUSER {who} +{perm}`");
            if self.settings.admin.is_none() {
                fix.push_str(
                    ", or set `admin` to a managed secret of an admin user (without `admin` \
                     the user manages itself and needs +acl)",
                );
            }
            return self
                .permanent(format!("user `{who}` may not run {what} ({err})"))
                .with_fix(fix);
        }
        if err.starts_with("ERR unknown command") {
            return self.no_acl(None);
        }
        if ["LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN"]
            .iter()
            .any(|p| err.starts_with(p))
        {
            return self.transient(format!("{what}: {err}"));
        }
        if err.starts_with("READONLY") {
            return self
                .permanent(format!("{what}: {err}"))
                .with_fix("point `url` at the primary, not a replica");
        }
        self.permanent(format!("{what} failed: {err}"))
    }
}
