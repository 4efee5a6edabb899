//! Credentials that passed a real login moments ago, so an emergency's retire need not log
//! in with the same credential again.
//!
//! Why: the engine retires the previous value only while the current one tests good, so an
//! emergency's retire calls `test` on the value whose own `test` step logged in a few
//! milliseconds before (only `finish`'s commit lies between). For a single-strategy role
//! that second login (a backend fork and a 4096-iteration SCRAM exchange) proves nothing
//! new, and it was a quarter of every PostgreSQL rotation's time in an emergency
//! (`scripts/bench-emergency`). The retire still proves the previous value rejected with a
//! real login, and the test step still logs in for real with every new value.
//!
//! What is kept: per (url, username), the password that logged in (compared in constant
//! time, zeroized when dropped) and when. An entry serves one retire, within
//! [`PROVEN_FOR`]; anything else (another password, an older login, a restarted process)
//! logs in again.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rotor_core::{Credential, SecretValue};

use crate::conn::Target;

/// How long a passed login stands for the same credential. A test step and its emergency's
/// retire are milliseconds apart; a retire later than this logs in again.
pub const PROVEN_FOR: Duration = Duration::from_secs(5);

/// Recent passed logins, per (url, username).
#[derive(Default)]
pub struct Proven {
    logins: Mutex<HashMap<(String, String), (SecretValue, Instant)>>,
}

impl std::fmt::Debug for Proven {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self
            .logins
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("Proven").field("logins", &n).finish()
    }
}

impl Proven {
    /// Notes that `cred` just logged in on `target` (and forgets logins too old to use).
    pub fn remember(&self, target: &Target, cred: &Credential) {
        let mut logins = self.logins.lock().unwrap_or_else(PoisonError::into_inner);
        logins.retain(|_, (_, at)| at.elapsed() < PROVEN_FOR);
        logins.insert(
            (target.url().to_owned(), cred.username.clone()),
            (cred.password().clone(), Instant::now()),
        );
    }

    /// Whether `cred` itself (same password) logged in on `target` within [`PROVEN_FOR`].
    /// The entry is used up either way.
    pub fn take(&self, target: &Target, cred: &Credential) -> bool {
        let mut logins = self.logins.lock().unwrap_or_else(PoisonError::into_inner);
        // Drop what is too old to use, so no password outlives its window here.
        logins.retain(|_, (_, at)| at.elapsed() < PROVEN_FOR);
        logins
            .remove(&(target.url().to_owned(), cred.username.clone()))
            .is_some_and(|(password, at)| {
                at.elapsed() < PROVEN_FOR && password.ct_eq(cred.password())
            })
    }
}
