//! Connections to a server: fresh ones (`AUTH` as a user, the TLS preflight of `probe`) and
//! the cached admin session that runs commands, whose error replies it classifies.

use std::sync::{Arc, PoisonError};

use rotor_core::{Credential, RotatorError};

use crate::RedisRotator;
use crate::call::Call;
use crate::credential::AclCredential;
use crate::redact::redact;
use crate::resp::{Conn, ConnError, Reply};
use crate::save::AclFile;
use crate::version::{major_version, parse_redis_version};

/// One cached admin connection (empty until first used, or after it failed).
pub(crate) type SessionSlot = Arc<tokio::sync::Mutex<Option<AdminSession>>>;

/// A reusable admin connection.
pub(crate) struct AdminSession {
    /// SHA-256 of the admin credential it authenticated with.
    fingerprint: [u8; 32],
    conn: Conn,
    pub(crate) aclfile: Option<AclFile>,
}

/// The outcome of `AUTH` on a fresh connection.
pub(crate) enum Auth {
    Ok(Conn),
    /// An error reply (the connection is dropped: a failed AUTH would leave it open).
    Refused(String),
}

impl RedisRotator {
    /// TLS as the probe's own check, for a `rediss://` url: one handshake (and a `PING`,
    /// since under TLS 1.3 a refused client certificate shows only on the first read) whose
    /// failure is looked at directly. A refused certificate is `TLS: …` with its fix. A
    /// handshake that never completes is told apart from a slow TLS server by asking the
    /// port in plaintext: a Redis that answers `PING` there speaks no TLS, for certain.
    /// Other failures (unreachable) are left to the session that follows, which names
    /// them. `Ok(None)`: a `redis://` url.
    pub(crate) async fn tls_preflight(
        &self,
        call: &Call<'_>,
    ) -> Result<Option<String>, RotatorError> {
        let Some(tls) = &call.target.tls else {
            return Ok(None);
        };
        let tls_err = |why: rotor_tls::TlsFailure| {
            call.permanent(format!("TLS: {}", why.message))
                .with_fix(why.fix)
        };
        let (host, port) = (&call.target.host, call.target.port);
        let connected = Conn::connect(
            host,
            port,
            Some(Arc::clone(&tls.config)),
            self.connect_timeout,
            self.command_timeout,
        )
        .await;
        let err = match connected {
            Ok(mut conn) => match conn.call(&[b"PING"]).await {
                Ok(_) => return Ok(rotor_tls::verified_check(&tls.opts, host)),
                Err(e) => e,
            },
            Err(e) => e,
        };
        match &err {
            ConnError::Tls(io) | ConnError::Io(io) => {
                match rotor_tls::explain_rustls(io, &tls.opts, host) {
                    Some(why) => Err(tls_err(why)),
                    None => Ok(None),
                }
            }
            ConnError::TlsTimeout(_) => {
                let plain =
                    Conn::connect(host, port, None, self.connect_timeout, self.command_timeout)
                        .await;
                let speaks_plaintext = match plain {
                    Ok(mut c) => matches!(
                        c.call(&[b"PING"]).await,
                        Ok(Reply::Status(_) | Reply::Error(_))
                    ),
                    Err(_) => false,
                };
                if speaks_plaintext {
                    Err(tls_err(rotor_tls::TlsFailure {
                        message: format!(
                            "{host}:{port} speaks plaintext Redis, not TLS, and the rediss:// url \
                             ({}) requires TLS",
                            tls.opts.choice.describe(tls.opts.mode)
                        ),
                        fix: "point the url at the server's TLS port (redis-server --tls-port), \
                              or, on a trusted network only, use redis://"
                            .to_owned(),
                    }))
                } else {
                    Err(call.conn_error("the TLS handshake", &err))
                }
            }
            _ => Ok(None),
        }
    }

    /// Opens a fresh connection and sends `AUTH user password`.
    pub(crate) async fn fresh_auth(
        &self,
        call: &Call<'_>,
        cred: &Credential,
    ) -> Result<Auth, RotatorError> {
        let mut conn = Conn::connect(
            &call.target.host,
            call.target.port,
            call.target.tls.as_ref().map(|t| Arc::clone(&t.config)),
            self.connect_timeout,
            self.command_timeout,
        )
        .await
        .map_err(|e| call.conn_error("connecting", &e))?;
        let reply = conn
            .call(&[b"AUTH", cred.username.as_bytes(), cred.password().expose()])
            .await
            .map_err(|e| call.conn_error("AUTH", &e))?;
        match reply {
            Reply::Status(s) if s == "OK" => Ok(Auth::Ok(conn)),
            Reply::Error(e) => Ok(Auth::Refused(redact(&e))),
            other => Err(call.permanent(format!("AUTH answered {other:?}"))),
        }
    }

    /// The cached admin session for this server and admin user, (re)connected when needed.
    pub(crate) async fn session(
        &self,
        call: &Call<'_>,
        admin: &Credential,
    ) -> Result<tokio::sync::OwnedMutexGuard<Option<AdminSession>>, RotatorError> {
        let slot = {
            let mut map = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(
                map.entry((call.target.to_string(), admin.username.clone()))
                    .or_default(),
            )
        };
        let mut guard = slot.lock_owned().await;
        let fingerprint = admin.fingerprint();
        if let Some(session) = guard.as_mut() {
            let alive = session.fingerprint == fingerprint
                && matches!(session.conn.call(&[b"PING"]).await, Ok(Reply::Status(p)) if p == "PONG");
            if alive {
                return Ok(guard);
            }
            *guard = None;
        }
        match self.fresh_auth(call, admin).await? {
            Auth::Ok(conn) => {
                *guard = Some(AdminSession {
                    fingerprint,
                    conn,
                    aclfile: None,
                });
                Ok(guard)
            }
            Auth::Refused(e) if e.starts_with("WRONGPASS") => Err(call
                .permanent(format!(
                    "the admin credential for `{}` was refused ({e})",
                    admin.username
                ))
                .with_fix(format!(
                    "`rotor put {}` with the admin user's present password (and check the user \
                     is `on`)",
                    call.admin_secret()
                ))),
            Auth::Refused(e) if e.contains("wrong number of arguments") => {
                Err(call.no_acl(Some("< 6: AUTH takes no username")))
            }
            Auth::Refused(e) => Err(call.reply_error("AUTH", "", &admin.username, &e)),
        }
    }

    /// Runs one command on the admin session; a lost connection is dropped (transient).
    pub(crate) async fn run(
        call: &Call<'_>,
        session: &mut Option<AdminSession>,
        args: &[&[u8]],
    ) -> Result<Reply, RotatorError> {
        let what = String::from_utf8_lossy(args.first().copied().unwrap_or_default()).into_owned();
        let Some(s) = session.as_mut() else {
            return Err(call.transient(format!("{what}: no admin connection")));
        };
        match s.conn.call(args).await {
            Ok(reply) => Ok(reply),
            Err(e) => {
                *session = None;
                Err(call.conn_error(&what, &e))
            }
        }
    }

    /// On an unknown-command error, asks `INFO server` for the version for a precise error.
    async fn no_acl_error(call: &Call<'_>, session: &mut Option<AdminSession>) -> RotatorError {
        let version = match Self::run(call, session, &[b"INFO", b"server"]).await {
            Ok(reply) => reply.text().and_then(|t| parse_redis_version(&t)),
            Err(_) => None,
        };
        match version {
            Some(v) if major_version(&v).is_some_and(|m| m < 6) => call.no_acl(Some(&v)),
            Some(v) => call.no_acl(Some(&format!("{v}, ACL disabled or renamed"))),
            None => call.no_acl(None),
        }
    }

    /// Turns an error reply into the right error (NOPERM, no ACL, ...).
    pub(crate) async fn reply_err(
        call: &Call<'_>,
        session: &mut Option<AdminSession>,
        admin: &Credential,
        what: &str,
        perm: &str,
        err: &str,
    ) -> RotatorError {
        if err.starts_with("ERR unknown command") {
            return Self::no_acl_error(call, session).await;
        }
        call.reply_error(what, perm, &admin.username, err)
    }
}
