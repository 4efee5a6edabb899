//! The ACL user: `ACL GETUSER` (its flags and password hashes), `ACL SETUSER`, and removing
//! a password with the proof that it is refused afterwards.

use rotor_core::rotator::StepContext;
use rotor_core::store::Versioned;
use rotor_core::{Credential, RotatorError};

use crate::RedisRotator;
use crate::call::Call;
use crate::connection::{AdminSession, Auth};
use crate::credential::AclCredential;
use crate::resp::Reply;

/// An ACL user as `ACL GETUSER` shows it.
#[derive(Debug, Default)]
pub(crate) struct UserInfo {
    flags: Vec<String>,
    /// Lowercase hex SHA-256 of each password.
    pub(crate) passwords: Vec<String>,
}

impl UserInfo {
    fn from_reply(items: &[Reply]) -> UserInfo {
        let mut info = UserInfo::default();
        for pair in items.chunks(2) {
            let [key, value] = pair else { continue };
            let list = || match value {
                Reply::Array(Some(v)) => v.iter().filter_map(Reply::text).collect(),
                _ => Vec::new(),
            };
            match key.text().as_deref() {
                Some("flags") => info.flags = list(),
                Some("passwords") => info.passwords = list(),
                _ => {}
            }
        }
        info
    }

    pub(crate) fn has(&self, hash: &str) -> bool {
        self.passwords.iter().any(|p| p.eq_ignore_ascii_case(hash))
    }

    pub(crate) fn is_on(&self) -> bool {
        self.flags.iter().any(|f| f == "on")
    }
}

impl RedisRotator {
    /// `ACL GETUSER user`: `None` when the user does not exist.
    pub(crate) async fn get_user(
        call: &Call<'_>,
        session: &mut Option<AdminSession>,
        admin: &Credential,
    ) -> Result<Option<UserInfo>, RotatorError> {
        let reply = Self::run(call, session, &[b"ACL", b"GETUSER", call.user().as_bytes()]).await?;
        match reply {
            Reply::Array(None) | Reply::Bulk(None) => Ok(None),
            Reply::Array(Some(items)) => Ok(Some(UserInfo::from_reply(&items))),
            Reply::Error(e) => {
                Err(Self::reply_err(call, session, admin, "ACL GETUSER", "acl", &e).await)
            }
            other => Err(call.permanent(format!("ACL GETUSER answered {other:?}"))),
        }
    }

    /// `ACL SETUSER user <rule>`.
    pub(crate) async fn set_user(
        call: &Call<'_>,
        session: &mut Option<AdminSession>,
        admin: &Credential,
        rule: &str,
    ) -> Result<(), RotatorError> {
        let reply = Self::run(
            call,
            session,
            &[b"ACL", b"SETUSER", call.user().as_bytes(), rule.as_bytes()],
        )
        .await?;
        match reply {
            Reply::Status(s) if s == "OK" => Ok(()),
            Reply::Error(e) => {
                Err(Self::reply_err(call, session, admin, "ACL SETUSER", "acl", &e).await)
            }
            other => Err(call.permanent(format!("ACL SETUSER answered {other:?}"))),
        }
    }

    /// Proves `AUTH` with `cred` is refused on a fresh connection.
    pub(crate) async fn prove_rejected(
        &self,
        call: &Call<'_>,
        cred: &Credential,
        which: &str,
    ) -> Result<(), RotatorError> {
        match self.fresh_auth(call, cred).await? {
            Auth::Refused(e) if e.starts_with("WRONGPASS") => Ok(()),
            Auth::Refused(e) => Err(call.permanent(format!(
                "proving the {which} password of `{}` is refused: AUTH answered {e} instead of \
                 WRONGPASS",
                cred.username
            ))),
            Auth::Ok(_) => Err(call
                .permanent(format!(
                    "the {which} password of `{}` is still accepted after its removal",
                    cred.username
                ))
                .with_fix(format!(
                    "check `ACL GETUSER {}` on {} (is `url` a proxy in front of several \
                     servers?); rotor retries the step",
                    cred.username, call.target
                ))),
        }
    }

    /// Removes `cred`'s password from the user (if present) and proves it is refused.
    /// With `keep`, refuses to remove it unless `keep`'s password is on the server.
    pub(crate) async fn remove_password(
        &self,
        call: &Call<'_>,
        ctx: &StepContext<'_>,
        gone: &Versioned,
        which: &str,
        keep: Option<&Versioned>,
    ) -> Result<(), RotatorError> {
        let cred = self.value_cred(call, gone, which)?;
        let hash = cred.acl_hash();
        let keep_hash = match keep {
            Some(v) => Some(self.value_cred(call, v, "current")?.acl_hash()),
            None => None,
        };
        if keep_hash.as_deref() == Some(hash.as_str()) {
            return Err(call.permanent(format!(
                "the {which} value equals the current one: refusing to remove it"
            )));
        }
        let admin = Self::admin_cred(call, ctx)?;
        let mut session = self.session(call, &admin).await?;
        match Self::get_user(call, &mut session, &admin).await? {
            None => {
                drop(session);
                tracing::warn!(
                    secret = call.secret,
                    step = call.step,
                    target = %call.target,
                    user = call.user(),
                    "the ACL user no longer exists: nothing to remove"
                );
            }
            Some(info) if info.has(&hash) => {
                if let Some(keep_hash) = &keep_hash
                    && !info.has(keep_hash)
                {
                    return Err(call
                        .permanent(format!(
                            "the current password of `{}` is not on the server: removing the \
                             {which} one would lock the user out",
                            call.user()
                        ))
                        .with_fix(
                            "find out who changed the user's passwords (`ACL LOG`, the aclfile); \
                             then `rotor rotate` it again before retiring",
                        ));
                }
                Self::set_user(call, &mut session, &admin, &format!("!{hash}")).await?;
                self.persist(call, session, &admin).await?;
            }
            Some(_) => drop(session),
        }
        self.prove_rejected(call, &cred, which).await
    }
}
