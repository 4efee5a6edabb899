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

mod acl;
mod call;
mod connection;
mod credential;
mod redact;
mod resp;
mod rotator;
mod save;
mod sessions;
mod url;
mod version;

pub use credential::PASSWORD_LEN;
pub use rotator::{DEFAULT_COMMAND_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, RedisRotator};

#[cfg(test)]
mod tests;
