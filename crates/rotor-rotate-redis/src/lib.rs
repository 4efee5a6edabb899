//! [`RedisRotator`]: rotates a Redis ACL user's password (`kind = "redis"`).
//!
//! A value is UTF-8 JSON `{"username": "...", "password": "..."}`; the admin credential
//! (`admin = "<secret>"`, another managed redis secret) has the same format. Without `admin`
//! the user manages itself with its current password and then needs `+acl`.
//!
//! How a rotation maps onto Redis (7.x; ACLs exist since 6.0):
//! - `create`: 40 alphanumeric characters from the OS CSPRNG; touches nothing.
//! - `set`: `ACL SETUSER u #<sha256hex>` adds the new password *next to* the old one, by
//!   hash, so the plaintext never reaches Redis' slowlog, `MONITOR` or an error reply.
//! - `test`: `AUTH u <new>` then `PING` on a **fresh** connection (a failed `AUTH` does not
//!   close a Redis connection, and an old session would prove nothing).
//! - `retire` / `rollback`: `ACL SETUSER u !<sha256hex>`, then proves on a fresh connection
//!   that `AUTH u <old>` gets `WRONGPASS`.
//! - `evict` (emergency): `CLIENT KILL USER u SKIPME yes` ends every session of the user
//!   except rotor's own: a session authenticated with a removed password **stays
//!   authenticated**, and Redis does not record which password a session used, so all of
//!   them go; clients reconnect with the current password.
//! - After each change, `ACL SAVE` when the server has an aclfile (`CONFIG GET aclfile`),
//!   group-committed per server (a step returns only after a save that began after its
//!   change; concurrent rotations share saves, each an fsync); otherwise a warning (logged with `tracing::warn!`, shown by `setup` and `plan`) says a
//!   restart of redis-server would lose the change.
//!
//! Invariants:
//! - no password (and no password hash) ever appears in an error, a log line or a plan; error
//!   replies from Redis are passed through `redact` because some of them echo arguments;
//! - every step is idempotent: adding a hash already present and removing a hash already
//!   absent are skipped after reading `ACL GETUSER` (Redis itself refuses to remove a missing
//!   password);
//! - `retire` never removes the previous password while the current one is missing on the
//!   server (that would lock the user out);
//! - every network operation is bounded (connect 3 s, each round trip 5 s by default);
//!   unreachable servers and lost connections are transient errors, everything else permanent;
//! - one admin connection is reused per rotator, per (server, admin user), and only while
//!   the admin password it was opened with is still the stored one.

mod resp;
mod sessions;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rotor_core::config::{KindSettings, RedisSettings};
use rotor_core::rotator::{Eviction, Generated, PlannedStep, StepContext};
use rotor_core::store::Versioned;
use rotor_core::{Credential, Kind, Rotator, RotatorError, SecretSpec, SecretValue, Step};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use resp::{Conn, ConnError, Reply};

/// How long connecting to a server may take by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one command's round trip may take by default.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// Characters in a generated password (alphanumeric: about 238 bits).
pub const PASSWORD_LEN: usize = 40;

const ALNUM: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// The rotator for `kind = "redis"`. Cheap to share (`Arc`); it caches admin connections.
pub struct RedisRotator {
    connect_timeout: Duration,
    command_timeout: Duration,
    /// (host:port, admin user) → the reusable admin connection.
    sessions: Mutex<HashMap<(String, String), SessionSlot>>,
    /// host:port → whether it has an aclfile, as last seen (for `plan`).
    aclfile_seen: Mutex<HashMap<String, bool>>,
    /// host:port → its `ACL SAVE` group commit.
    saves: Mutex<HashMap<String, Arc<SaveState>>>,
}

/// Group commit of `ACL SAVE` for one server: change `n` is durable once `saved >= n`.
#[derive(Debug, Default)]
struct SaveState {
    /// Changes made so far (each registered after its reply was read).
    changes: AtomicU64,
    /// Every change up to this one is in the aclfile.
    saved: AtomicU64,
    /// Held while one `ACL SAVE` runs; waiters then usually find their change saved.
    lock: tokio::sync::Mutex<()>,
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

/// One cached admin connection (empty until first used, or after it failed).
type SessionSlot = Arc<tokio::sync::Mutex<Option<AdminSession>>>;

/// A reusable admin connection.
struct AdminSession {
    /// SHA-256 of the admin credential it authenticated with.
    fingerprint: [u8; 32],
    conn: Conn,
    aclfile: Option<AclFile>,
}

#[derive(Debug, Clone)]
enum AclFile {
    /// `CONFIG GET aclfile` (or a successful `ACL SAVE`) says there is one.
    File(String),
    NoFile,
}

/// Where a server is, and how to secure the connection.
#[derive(Debug, Clone)]
struct Target {
    host: String,
    port: u16,
    tls: Option<TargetTls>,
}

/// `rediss://`: the TLS options from the url and the rustls configuration they make.
#[derive(Clone)]
struct TargetTls {
    opts: rotor_tls::TlsOptions,
    config: Arc<rotor_tls::ClientConfig>,
}

impl fmt::Debug for TargetTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TargetTls")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)?;
        } else {
            write!(f, "{}:{}", self.host, self.port)?;
        }
        if self.tls.is_some() {
            f.write_str(" (TLS)")?;
        }
        Ok(())
    }
}

/// Parses `redis://host[:port][/db]` or `rediss://host[:port][/db][?sslmode=..&sslrootcert=..
/// &sslcert=..&sslkey=..&sslsni=0]` (no credentials). The TLS parameters have libpq's names
/// and meanings (see `rotor_tls`); `rediss://` always uses TLS, so only `require`,
/// `verify-ca` and `verify-full` apply, and `verify-full` is the default for a host that is
/// not loopback.
fn parse_url(url: &str) -> Result<Target, String> {
    let lower = url.to_ascii_lowercase();
    let tls = lower.starts_with("rediss://");
    let Some(rest) = url
        .get(
            if tls {
                "rediss://".len()
            } else {
                "redis://".len()
            }..,
        )
        .filter(|_| tls || lower.starts_with("redis://"))
    else {
        return Err("the url must look like redis://host:port or rediss://host:port".to_owned());
    };
    let query = rest.split_once('?').map_or("", |(_, q)| q);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(
            "the url must not carry credentials: they come from the managed secrets".to_owned(),
        );
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| "unclosed '[' in the url's host".to_owned())?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("the url has no host".to_owned());
    }
    let port = match port {
        None => 6379,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("bad port {p:?} in the url"))?,
    };
    let tls = if tls {
        Some(target_tls(query, host)?)
    } else {
        if query.split('&').any(|p| p.starts_with("ssl")) {
            return Err("TLS parameters (ssl...) need a rediss:// url".to_owned());
        }
        None
    };
    Ok(Target {
        host: host.to_owned(),
        port,
        tls,
    })
}

/// The TLS settings of a `rediss://` url's query for `host`.
fn target_tls(query: &str, host: &str) -> Result<TargetTls, String> {
    let (mut opts, rest) =
        rotor_tls::options_from_query(query, &[host]).map_err(|e| e.to_string())?;
    if let Some(other) = rest.first() {
        let name = other.split('=').next().unwrap_or_default();
        return Err(format!(
            "unknown url parameter {name:?} (a rediss:// url takes sslmode, sslrootcert, sslcert, \
             sslkey, sslsni)"
        ));
    }
    match (opts.mode, opts.choice) {
        (
            rotor_tls::SslMode::Disable | rotor_tls::SslMode::Prefer,
            rotor_tls::ModeChoice::Explicit,
        ) => {
            return Err(format!(
                "sslmode={} does not apply to rediss://, which always uses TLS (use redis:// \
                 for a plaintext connection on a trusted network)",
                opts.mode
            ));
        }
        // Redis has no TLS negotiation: on loopback the default is TLS without an
        // identity check, libpq's `prefer` as far as a rediss:// url can go.
        (rotor_tls::SslMode::Prefer, _) => opts.mode = rotor_tls::SslMode::Require,
        _ => {}
    }
    let config = rotor_tls::client_config(&opts)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "rediss:// needs TLS".to_owned())?;
    Ok(TargetTls { opts, config })
}

/// What the ACL needs of a [`Credential`] (the stored value, parsed by rotor-core).
trait AclCredential {
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

/// Makes a password of [`PASSWORD_LEN`] alphanumeric characters (rejection sampling, so
/// every character is uniform).
fn random_password() -> Result<Zeroizing<String>, getrandom::Error> {
    let mut out = Zeroizing::new(String::with_capacity(PASSWORD_LEN));
    let mut buf = Zeroizing::new([0u8; 64]);
    while out.len() < PASSWORD_LEN {
        getrandom::fill(&mut buf[..])?;
        for &b in buf.iter() {
            // 248 = 4 * 62: bytes above it would bias the first characters.
            if b < 248 && out.len() < PASSWORD_LEN {
                out.push(char::from(ALNUM[usize::from(b % 62)]));
            }
        }
    }
    Ok(out)
}

/// Replaces every run of 24+ alphanumeric characters (a password or a hash that an error
/// reply echoes, e.g. `ACL SETUSER u <pw` → "modifier '<pw'") with `<redacted>`.
fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 24 {
            out.push_str("<redacted>");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// The `redis_version` line of `INFO server`.
fn parse_redis_version(info: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .map(|v| v.trim().to_owned())
}

/// The major version of a `redis_version` string.
fn major_version(version: &str) -> Option<u32> {
    version.split('.').next()?.parse().ok()
}

/// An ACL user as `ACL GETUSER` shows it.
#[derive(Debug, Default)]
struct UserInfo {
    flags: Vec<String>,
    /// Lowercase hex SHA-256 of each password.
    passwords: Vec<String>,
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

    fn has(&self, hash: &str) -> bool {
        self.passwords.iter().any(|p| p.eq_ignore_ascii_case(hash))
    }

    fn is_on(&self) -> bool {
        self.flags.iter().any(|f| f == "on")
    }
}

/// One call of one step: names everything an error message needs.
struct Call<'a> {
    secret: &'a str,
    step: &'static str,
    settings: &'a RedisSettings,
    target: Target,
}

impl<'a> Call<'a> {
    fn new(spec: &'a SecretSpec, step: &'static str) -> Result<Call<'a>, RotatorError> {
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

    fn user(&self) -> &str {
        &self.settings.user
    }

    fn msg(&self, cause: impl fmt::Display) -> String {
        format!(
            "redis secret `{}`: {} on {}: {cause}",
            self.secret, self.step, self.target
        )
    }

    fn permanent(&self, cause: impl fmt::Display) -> RotatorError {
        RotatorError::permanent(self.msg(cause))
    }

    fn transient(&self, cause: impl fmt::Display) -> RotatorError {
        RotatorError::transient(self.msg(cause))
    }

    /// The secret whose value authenticates rotor's admin connection.
    fn admin_secret(&self) -> &str {
        self.settings
            .admin
            .as_ref()
            .map_or(self.secret, |a| a.as_str())
    }

    /// A network failure: transient; a refused TLS handshake: permanent, explained.
    fn conn_error(&self, what: &str, e: &ConnError) -> RotatorError {
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
    fn user_missing(&self) -> RotatorError {
        self.permanent(format!("ACL user `{}` does not exist", self.user()))
            .with_fix(format!(
                "create it first, e.g. `ACL SETUSER {} on ~* +@all` (narrow keys and commands to \
                 what the application needs; add it to the aclfile), then retry: rotor adds the \
                 password",
                self.user()
            ))
    }

    /// The error for a server without ACL commands.
    fn no_acl(&self, version: Option<&str>) -> RotatorError {
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
    fn reply_error(&self, what: &str, perm: &str, who: &str, err: &str) -> RotatorError {
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

/// The outcome of `AUTH` on a fresh connection.
enum Auth {
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
    async fn tls_preflight(&self, call: &Call<'_>) -> Result<Option<String>, RotatorError> {
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
    async fn fresh_auth(&self, call: &Call<'_>, cred: &Credential) -> Result<Auth, RotatorError> {
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

    /// The admin credential for this call: `ctx.admin`, or the user's own current value.
    fn admin_cred(call: &Call<'_>, ctx: &StepContext<'_>) -> Result<Credential, RotatorError> {
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

    /// The cached admin session for this server and admin user, (re)connected when needed.
    async fn session(
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
    async fn run(
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
    async fn reply_err(
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

    /// `ACL GETUSER user`: `None` when the user does not exist.
    async fn get_user(
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
    async fn set_user(
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

    /// Whether the server has an aclfile (cached per session).
    async fn aclfile(
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
    async fn persist(
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

    /// Proves `AUTH` with `cred` is refused on a fresh connection.
    async fn prove_rejected(
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
    async fn remove_password(
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

    /// Reads a value given to a step and checks it belongs to the secret's user.
    fn value_cred(
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

fn no_aclfile_warning(target: &Target) -> String {
    format!(
        "WARNING: {target} has no aclfile: the password change lives only in memory and a \
         restart of redis-server would lose it; configure `aclfile` (rotor then runs ACL SAVE \
         after each change) or run CONFIG REWRITE after each rotation"
    )
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
        let value = Credential::new(call.user(), SecretValue::from_slice(password.as_bytes()))
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
        let call = Call::new(ctx.spec, "evict")?;
        let admin = Self::admin_cred(&call, ctx)?;
        let mut session = self.session(&call, &admin).await?;
        // The sessions there before the kill, to prove afterwards that none survived (client
        // ids are never reused by a running server). Our own connection is spared.
        let own = match Self::run(&call, &mut session, &[b"CLIENT", b"ID"]).await? {
            Reply::Int(id) => u64::try_from(id).ok(),
            _ => None,
        };
        let before: Vec<u64> = self
            .client_list(&call, &mut session, &admin)
            .await?
            .into_iter()
            .filter(|id| Some(*id) != own)
            .collect();
        // SKIPME yes: rotor's own admin connection survives even when it is the same user.
        let reply = Self::run(
            &call,
            &mut session,
            &[
                b"CLIENT",
                b"KILL",
                b"USER",
                call.user().as_bytes(),
                b"SKIPME",
                b"yes",
            ],
        )
        .await?;
        let ended = match reply {
            Reply::Int(n) => u64::try_from(n).unwrap_or(0),
            Reply::Error(e) if e.starts_with("ERR No such user") => return Ok(Eviction::default()),
            Reply::Error(e) => {
                return Err(Self::reply_err(
                    &call,
                    &mut session,
                    &admin,
                    "CLIENT KILL",
                    "client|kill",
                    &e,
                )
                .await);
            }
            other => return Err(call.permanent(format!("CLIENT KILL answered {other:?}"))),
        };
        let after = self.client_list(&call, &mut session, &admin).await?;
        let surviving = sessions::surviving(&before, &after);
        tracing::warn!(
            secret = call.secret,
            target = %call.target,
            user = call.user(),
            sessions = ended,
            surviving,
            "redis: ended every session of the user; clients reconnect with the current password"
        );
        Ok(Eviction { ended, surviving })
    }
}

impl RedisRotator {
    /// The ids of the sessions of the secret's user (`CLIENT LIST`).
    async fn client_list(
        &self,
        call: &Call<'_>,
        session: &mut Option<AdminSession>,
        admin: &Credential,
    ) -> Result<Vec<u64>, RotatorError> {
        match Self::run(call, session, &[b"CLIENT", b"LIST"]).await? {
            Reply::Bulk(Some(text)) => Ok(sessions::ids_of(
                &String::from_utf8_lossy(&text),
                call.user(),
            )),
            Reply::Error(e) => {
                Err(Self::reply_err(call, session, admin, "CLIENT LIST", "client|list", &e).await)
            }
            other => Err(call.permanent(format!("CLIENT LIST answered {other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = |u: &str| parse_url(u).map(|t| t.to_string());
        assert_eq!(t("redis://127.0.0.1:6380").unwrap(), "127.0.0.1:6380");
        assert_eq!(t("redis://cache").unwrap(), "cache:6379");
        assert_eq!(t("redis://cache:7000/0").unwrap(), "cache:7000");
        assert_eq!(t("redis://[::1]:7000").unwrap(), "[::1]:7000");
        assert!(
            t("redis://u:pw@cache:6379")
                .unwrap_err()
                .contains("credentials")
        );
        assert_eq!(
            t("rediss://127.0.0.1:6380?sslmode=require").unwrap(),
            "127.0.0.1:6380 (TLS)"
        );
        assert!(
            t("rediss://cache:6379?sslmode=disable")
                .unwrap_err()
                .contains("always uses TLS")
        );
        assert!(
            t("rediss://cache?sslcert=/c.pem")
                .unwrap_err()
                .contains("sslkey")
        );
        assert!(
            t("rediss://cache?db=1")
                .unwrap_err()
                .contains("unknown url parameter")
        );
        assert!(
            t("redis://cache?sslmode=require")
                .unwrap_err()
                .contains("rediss://")
        );
        let remote = parse_url("rediss://cache.example.com").unwrap();
        let opts = &remote.tls.unwrap().opts;
        assert_eq!(opts.mode, rotor_tls::SslMode::VerifyFull);
        let local = parse_url("rediss://127.0.0.1:6380").unwrap();
        assert_eq!(local.tls.unwrap().opts.mode, rotor_tls::SslMode::Require);
        assert!(t("http://cache").is_err());
        assert!(t("redis://cache:0").is_err());
        assert!(t("redis://:6379").is_err());
    }

    #[test]
    fn passwords_are_long_alnum_and_differ() {
        let a = random_password().unwrap();
        let b = random_password().unwrap();
        assert_eq!(a.len(), PASSWORD_LEN);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(*a, *b);
    }

    #[test]
    fn redacts_echoed_secrets() {
        let e = "ERR Error in ACL SETUSER modifier '<Zk3lq9XbYc81mPq0aaaaaaaa2': The password you are trying to remove from the user does not exist";
        let r = redact(e);
        assert!(!r.contains("Zk3lq9"), "{r}");
        assert!(r.contains("'<<redacted>'"), "{r}");
        assert!(r.contains("The password you are trying"), "{r}");
    }

    #[test]
    fn versions() {
        let info = "# Server\r\nredis_version:5.0.14\r\nredis_git_sha1:0\r\n";
        let v = parse_redis_version(info).unwrap();
        assert_eq!(v, "5.0.14");
        assert_eq!(major_version(&v), Some(5));
        assert_eq!(major_version("7.0.15"), Some(7));
    }

    #[test]
    fn cred_errors_never_quote_the_value() {
        let v = SecretValue::from_slice(br#"{"username": "app", "pasword": "s3cr3t-value"}"#);
        let e = Credential::parse(&v).err().unwrap().to_string();
        assert!(!e.contains("s3cr3t"), "{e}");
        let v = SecretValue::from_slice(b"s3cr3t-value");
        let e = Credential::parse(&v).err().unwrap().to_string();
        assert!(!e.contains("s3cr3t"), "{e}");
    }
}
