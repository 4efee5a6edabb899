//! libpq's `sslmode`: what each mode promises, and which one applies when the URL names none.

use std::fmt;
use std::str::FromStr;

use crate::TlsError;

/// libpq's `sslmode` values that rotor supports (`allow` is refused: see [`FromStr`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP, never TLS.
    Disable,
    /// TLS when the server offers it, else plain TCP; the server's identity is not checked
    /// (unless a root certificate is given, as in libpq).
    Prefer,
    /// TLS or nothing; the server's identity is not checked (unless a root certificate is
    /// given: then its chain is, as libpq does for backward compatibility).
    Require,
    /// TLS, and the server's certificate chains to a trusted root; any host name.
    VerifyCa,
    /// TLS, a trusted chain, and the certificate names the host connected to.
    VerifyFull,
}

impl SslMode {
    /// The libpq spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Whether a connection without TLS is acceptable.
    pub fn allows_plaintext(self) -> bool {
        matches!(self, SslMode::Disable | SslMode::Prefer)
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = TlsError;

    fn from_str(s: &str) -> Result<Self, TlsError> {
        match s {
            "disable" => Ok(SslMode::Disable),
            "prefer" => Ok(SslMode::Prefer),
            "require" => Ok(SslMode::Require),
            "verify-ca" => Ok(SslMode::VerifyCa),
            "verify-full" => Ok(SslMode::VerifyFull),
            // WHY refused: `allow` tries plaintext first and TLS only when the server
            // insists, which no driver rotor uses can do; `prefer` or `disable` say what
            // the operator most likely means.
            "allow" => Err(TlsError::Param {
                param: "sslmode",
                problem: "allow (plaintext first) is not supported".into(),
                fix: "use sslmode=prefer (TLS when offered) or sslmode=disable",
            }),
            other => Err(TlsError::Param {
                param: "sslmode",
                problem: format!("{other:?} is not a libpq sslmode"),
                fix: "use one of disable, prefer, require, verify-ca, verify-full",
            }),
        }
    }
}

/// Why a connection uses the mode it does (for messages that explain a refusal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeChoice {
    /// `sslmode=` in the URL.
    Explicit,
    /// No `sslmode=`, every host is loopback: libpq's default, `prefer`.
    LoopbackDefault,
    /// No `sslmode=`, a host is not loopback: rotor's secure default, `verify-full`.
    RemoteDefault,
    /// `sslrootcert=system` (libpq 16): `verify-full`, as libpq insists.
    SystemRoots,
}

impl ModeChoice {
    /// A phrase for messages: "sslmode=verify-full, rotor's default for a host that is not
    /// loopback".
    pub fn describe(self, mode: SslMode) -> String {
        match self {
            ModeChoice::Explicit => format!("sslmode={mode} from the url"),
            ModeChoice::LoopbackDefault => {
                format!("sslmode={mode}, the default for a loopback host (no identity check)")
            }
            ModeChoice::RemoteDefault => format!(
                "sslmode={mode}, rotor's default for a host that is not loopback (a secret \
                 crossing a network must reach the server it was meant for)"
            ),
            ModeChoice::SystemRoots => format!("sslmode={mode}, implied by sslrootcert=system"),
        }
    }
}

/// Loopback hosts (the rule lives in rotor-core, shared with the config's URL checks).
pub use rotor_core::host::is_loopback;

/// The mode for `explicit` (from the URL) or the default for `hosts`.
pub fn choose(explicit: Option<SslMode>, hosts: &[&str]) -> (SslMode, ModeChoice) {
    match explicit {
        Some(mode) => (mode, ModeChoice::Explicit),
        None if !hosts.is_empty() && hosts.iter().all(|h| is_loopback(h)) => {
            (SslMode::Prefer, ModeChoice::LoopbackDefault)
        }
        None => (SslMode::VerifyFull, ModeChoice::RemoteDefault),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "LOCALHOST",
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
            "/tmp",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "db.example.com",
            "10.0.0.1",
            "192.168.1.1",
            "::2",
            "localhost.evil",
            "",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn defaults_by_host() {
        assert_eq!(choose(None, &["127.0.0.1"]).0, SslMode::Prefer);
        assert_eq!(
            choose(None, &["127.0.0.1", "db.internal"]).0,
            SslMode::VerifyFull
        );
        assert_eq!(choose(None, &[]).0, SslMode::VerifyFull);
        assert_eq!(
            choose(Some(SslMode::Disable), &["db.internal"]),
            (SslMode::Disable, ModeChoice::Explicit)
        );
    }

    #[test]
    fn parses_libpq_spellings() {
        for m in ["disable", "prefer", "require", "verify-ca", "verify-full"] {
            assert_eq!(m.parse::<SslMode>().unwrap().as_str(), m);
        }
        assert!(format!("{}", "allow".parse::<SslMode>().unwrap_err()).contains("prefer"));
        assert!(format!("{}", "strict".parse::<SslMode>().unwrap_err()).contains("verify-full"));
    }
}
