//! Connection settings: pool size, lock and statement timeouts, serialization retries.

use std::time::Duration;

/// Connection settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Connections per handle (at most).
    pub pool_size: usize,
    /// How long a statement waits for a lock before the change fails with
    /// [`rotor_core::StoreError::Locked`] (PostgreSQL's `lock_timeout`).
    pub lock_timeout: Duration,
    /// How many times a transaction that hit a serialization failure or deadlock is run
    /// again before [`rotor_core::StoreError::Locked`].
    pub retries: u32,
    /// How long one of rotor's sessions may sit idle inside a transaction before the server
    /// ends it (PostgreSQL's `idle_in_transaction_session_timeout`). rotor's transactions
    /// never wait on anything but their own statements (no target call, no sleep), so only
    /// a stalled process (SIGSTOP, a frozen VM) is ever idle in one; ending its session
    /// releases its locks (the audit head) so the other replicas keep rotating.
    pub idle_in_transaction_timeout: Duration,
    /// The longest one statement may run (`statement_timeout`).
    pub statement_timeout: Duration,
    /// `application_name`, shown in `pg_stat_activity`.
    pub application_name: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            pool_size: 4,
            lock_timeout: Duration::from_secs(5),
            // Enough for a head-lock wait (250 ms a try) to outlast a stalled holder's
            // idle-in-transaction timeout.
            retries: 20,
            idle_in_transaction_timeout: Duration::from_secs(2),
            statement_timeout: Duration::from_secs(30),
            application_name: "rotor".to_owned(),
        }
    }
}
