//! Persistence of ACL changes: whether the server has an aclfile, and `ACL SAVE`,
//! group-committed per server.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};

use rotor_core::{Credential, RotatorError};

use crate::RedisRotator;
use crate::call::Call;
use crate::connection::AdminSession;
use crate::resp::Reply;
use crate::url::Target;

/// Group commit of `ACL SAVE` for one server: change `n` is durable once `saved >= n`.
#[derive(Debug, Default)]
pub(crate) struct SaveState {
    /// Changes made so far (each registered after its reply was read).
    changes: AtomicU64,
    /// Every change up to this one is in the aclfile.
    saved: AtomicU64,
    /// Held while one `ACL SAVE` runs; waiters then usually find their change saved.
    lock: tokio::sync::Mutex<()>,
}

#[derive(Debug, Clone)]
pub(crate) enum AclFile {
    /// `CONFIG GET aclfile` (or a successful `ACL SAVE`) says there is one.
    File(String),
    NoFile,
}

impl RedisRotator {
    /// Whether the server has an aclfile (cached per session).
    pub(crate) async fn aclfile(
        &self,
        call: &Call<'_>,
        session: &mut Option<AdminSession>,
        admin: &Credential,
    ) -> Result<AclFile, RotatorError> {
        if let Some(known) = session.as_ref().and_then(|s| s.aclfile.clone()) {
            return Ok(known);
        }
        let reply = Self::run(call, session, &[b"CONFIG", b"GET", b"aclfile"]).await?;
        let found = match reply {
            Reply::Array(Some(items)) => {
                match items.get(1).and_then(Reply::text).filter(|p| !p.is_empty()) {
                    Some(path) => AclFile::File(path),
                    None => AclFile::NoFile,
                }
            }
            // Without CONFIG permission, ACL SAVE itself tells whether there is a file.
            Reply::Error(e) if e.starts_with("NOPERM") => {
                match Self::run(call, session, &[b"ACL", b"SAVE"]).await? {
                    Reply::Status(_) => AclFile::File("(path hidden: no +config|get)".to_owned()),
                    Reply::Error(e) if e.contains("not configured to use an ACL file") => {
                        AclFile::NoFile
                    }
                    Reply::Error(e) => {
                        return Err(
                            Self::reply_err(call, session, admin, "ACL SAVE", "acl", &e).await
                        );
                    }
                    other => return Err(call.permanent(format!("ACL SAVE answered {other:?}"))),
                }
            }
            Reply::Error(e) => {
                return Err(Self::reply_err(
                    call,
                    session,
                    admin,
                    "CONFIG GET aclfile",
                    "config|get",
                    &e,
                )
                .await);
            }
            other => return Err(call.permanent(format!("CONFIG GET answered {other:?}"))),
        };
        if let Some(s) = session.as_mut() {
            s.aclfile = Some(found.clone());
        }
        self.aclfile_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(call.target.to_string(), matches!(found, AclFile::File(_)));
        Ok(found)
    }

    /// Makes a change just made on `session` durable: `ACL SAVE` with an aclfile, else a
    /// warning (logged and returned). Releases the session first: saves are group-committed
    /// per server, so concurrent rotations share one `ACL SAVE` (each costs an fsync).
    pub(crate) async fn persist(
        &self,
        call: &Call<'_>,
        mut session: tokio::sync::OwnedMutexGuard<Option<AdminSession>>,
        admin: &Credential,
    ) -> Result<Option<String>, RotatorError> {
        if let AclFile::NoFile = self.aclfile(call, &mut session, admin).await? {
            drop(session);
            let warning = no_aclfile_warning(&call.target);
            tracing::warn!(secret = call.secret, step = call.step, "{warning}");
            return Ok(Some(warning));
        }
        let saves = {
            let mut map = self.saves.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(map.entry(call.target.to_string()).or_default())
        };
        // The change's reply has been read, so any ACL SAVE sent from now on includes it.
        let change = saves.changes.fetch_add(1, Ordering::SeqCst) + 1;
        drop(session);
        if saves.saved.load(Ordering::SeqCst) >= change {
            return Ok(None);
        }
        let _saving = saves.lock.lock().await;
        if saves.saved.load(Ordering::SeqCst) >= change {
            return Ok(None); // saved by another rotation while this one waited
        }
        let upto = saves.changes.load(Ordering::SeqCst);
        let mut session = self.session(call, admin).await?;
        match Self::run(call, &mut session, &[b"ACL", b"SAVE"]).await? {
            Reply::Status(_) => {
                saves.saved.fetch_max(upto, Ordering::SeqCst);
                Ok(None)
            }
            Reply::Error(e) => {
                let e = Self::reply_err(call, &mut session, admin, "ACL SAVE", "acl", &e).await;
                Err(RotatorError {
                    message: format!(
                        "{} (the change is live, but a restart would lose it)",
                        e.message
                    ),
                    ..e
                }
                .with_fix(
                    "check that redis-server can write its aclfile (see its log); rotor \
                     retries the step",
                ))
            }
            other => Err(call.permanent(format!("ACL SAVE answered {other:?}"))),
        }
    }
}

pub(crate) fn no_aclfile_warning(target: &Target) -> String {
    format!(
        "WARNING: {target} has no aclfile: the password change lives only in memory and a \
         restart of redis-server would lose it; configure `aclfile` (rotor then runs ACL SAVE \
         after each change) or run CONFIG REWRITE after each rotation"
    )
}
