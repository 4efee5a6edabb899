//! The user/password pair ([`Credential`]) as the rotator needs it: its ACL hash and
//! fingerprint, reading it from a step's values, and making a new password.

use rotor_core::Credential;
use rotor_core::RotatorError;
use rotor_core::rotator::StepContext;
use rotor_core::store::Versioned;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::RedisRotator;
use crate::call::Call;

/// Characters in a generated password (alphanumeric: about 238 bits).
pub const PASSWORD_LEN: usize = 40;

/// What the ACL needs of a [`Credential`] (the stored value, parsed by rotor-core).
pub(crate) trait AclCredential {
    /// The lowercase hex SHA-256 of the password: what `ACL GETUSER` lists and `#`/`!` take.
    fn acl_hash(&self) -> String;
    /// Identifies the whole credential, to know when a cached session is stale.
    fn fingerprint(&self) -> [u8; 32];
}

impl AclCredential for Credential {
    fn acl_hash(&self) -> String {
        hex::encode(Sha256::digest(self.password().expose()))
    }

    fn fingerprint(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.username.as_bytes());
        h.update([0u8]);
        h.update(self.password().expose());
        h.finalize().into()
    }
}

/// Makes a password of [`PASSWORD_LEN`] alphanumeric characters (rotor's one sampler:
/// rejection sampling, so every character is uniform).
pub(crate) fn random_password() -> Result<Zeroizing<String>, getrandom::Error> {
    rotor_rotate::random::alnum_text(PASSWORD_LEN)
}

impl RedisRotator {
    /// The admin credential for this call: `ctx.admin`, or the user's own current value.
    pub(crate) fn admin_cred(
        call: &Call<'_>,
        ctx: &StepContext<'_>,
    ) -> Result<Credential, RotatorError> {
        let (value, which) = match &call.settings.admin {
            Some(admin) => (
                ctx.admin.ok_or_else(|| {
                    call.permanent(format!("the admin secret `{admin}` has no current value"))
                        .with_fix(format!(
                            "`rotor put {admin}` with the admin user's credential as JSON \
                             {{\"username\": ..., \"password\": ...}}"
                        ))
                })?,
                format!("the admin secret `{admin}`"),
            ),
            None => (
                ctx.current.ok_or_else(|| {
                    call.permanent(format!(
                        "no current value to authenticate as `{}` (the user manages itself)",
                        call.user()
                    ))
                    .with_fix(format!(
                        "`rotor put {}` with the user's present password, or set `admin` to a \
                         managed admin secret",
                        call.secret
                    ))
                })?,
                format!("the current value of `{}`", call.secret),
            ),
        };
        Credential::parse(&value.value).map_err(|why| {
            call.permanent(format!("{which} {why}")).with_fix(format!(
                "`rotor put {}` with JSON {{\"username\": ..., \"password\": ...}}",
                call.admin_secret()
            ))
        })
    }

    /// Reads a value given to a step and checks it belongs to the secret's user.
    pub(crate) fn value_cred(
        &self,
        call: &Call<'_>,
        v: &Versioned,
        which: &str,
    ) -> Result<Credential, RotatorError> {
        let cred = Credential::parse(&v.value).map_err(|why| {
            call.permanent(format!(
                "the {which} value (version {}) {why}",
                v.meta.id.short()
            ))
        })?;
        if cred.username != call.user() {
            return Err(call
                .permanent(format!(
                    "the {which} value (version {}) is for user `{}`, but the secret's user is `{}`",
                    v.meta.id.short(),
                    cred.username,
                    call.user()
                ))
                .with_fix("check the `user` setting, or `rotor put` a value for that user"));
        }
        Ok(cred)
    }
}
