//! Crash points for tests (feature `failpoints` only).
//!
//! With `ROTOR_FAILPOINT=<name>` set, reaching the point named `<name>` prints
//! `rotor-failpoint: <name>` on stderr and stops the process (it sleeps until killed), so a test
//! can deliver a real SIGKILL at exactly that step boundary. Without the feature this compiles
//! to nothing.

/// Stops here when the test asked for it.
#[inline]
pub(crate) fn hit(_name: &str) {
    #[cfg(feature = "failpoints")]
    if std::env::var("ROTOR_FAILPOINT").is_ok_and(|v| v == _name) {
        use std::io::Write as _;
        let mut err = std::io::stderr();
        let _ = writeln!(err, "rotor-failpoint: {_name}");
        let _ = err.flush();
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}
