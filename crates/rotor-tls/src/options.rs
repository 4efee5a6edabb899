//! The TLS parameters of a connection URL, with libpq's names and meanings: `sslmode`,
//! `sslrootcert`, `sslcert`, `sslkey`, `sslsni`.
//!
//! WHY libpq's names for Redis too: a PostgreSQL URL copied from a provider's console must
//! work unchanged, and one vocabulary for both servers means one set of rules to learn.

use std::path::PathBuf;

use percent_encoding::percent_decode_str;

use crate::TlsError;
use crate::mode::{ModeChoice, SslMode, choose};

/// Where trusted root certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    /// `sslrootcert=PATH`: the PEM certificates in that file.
    File(PathBuf),
    /// `sslrootcert=system`: the operating system's trust store.
    System,
    /// No `sslrootcert`: libpq's default file `~/.postgresql/root.crt` when it exists,
    /// else the system's trust store.
    Default,
}

/// What a URL says about TLS, with the defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// The mode in force.
    pub mode: SslMode,
    /// Why that mode.
    pub choice: ModeChoice,
    /// Trusted roots.
    pub roots: Roots,
    /// The client certificate and its private key (`sslcert` + `sslkey`), both or neither.
    pub client: Option<(PathBuf, PathBuf)>,
    /// Send the host name in the handshake (SNI; `sslsni=0` turns it off).
    pub sni: bool,
}

/// The TLS parameters as written, before defaults.
#[derive(Debug, Default)]
pub(crate) struct Raw {
    mode: Option<SslMode>,
    rootcert: Option<String>,
    cert: Option<String>,
    key: Option<String>,
    sni: Option<bool>,
}

/// The parameter names this module takes out of a query string.
pub(crate) const NAMES: [&str; 5] = ["sslmode", "sslrootcert", "sslcert", "sslkey", "sslsni"];

/// libpq parameters rotor does not implement: refused by name rather than ignored.
/// (`sslnegotiation` is passed on: the driver implements it.)
const UNSUPPORTED: [&str; 5] = [
    "sslpassword",
    "sslcrl",
    "sslcrldir",
    "sslcompression",
    "requiressl",
];

impl Raw {
    /// Takes the TLS parameters out of `query` (the part after `?`, `&`-separated,
    /// percent-encoded) and returns the rest, in order, for the driver.
    pub(crate) fn split_query(query: &str) -> Result<(Raw, Vec<&str>), TlsError> {
        let mut raw = Raw::default();
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let key = decode(k, "a url parameter name")?;
            if UNSUPPORTED.contains(&key.as_str()) {
                return Err(TlsError::Param {
                    param: "url",
                    problem: format!("the libpq parameter {key} is not supported by rotor"),
                    fix: "remove it (rotor reads sslmode, sslrootcert, sslcert, sslkey, sslsni)",
                });
            }
            if !NAMES.contains(&key.as_str()) {
                rest.push(pair);
                continue;
            }
            let value = decode(v, &key)?;
            match key.as_str() {
                "sslmode" => raw.mode = Some(value.parse()?),
                "sslrootcert" => raw.rootcert = Some(value),
                "sslcert" => raw.cert = Some(value),
                "sslkey" => raw.key = Some(value),
                _ => {
                    raw.sni = Some(match value.as_str() {
                        "1" => true,
                        "0" => false,
                        _ => {
                            return Err(TlsError::Param {
                                param: "sslsni",
                                problem: format!("{value:?} is not 0 or 1"),
                                fix: "use sslsni=1 (send the host name, the default) or sslsni=0",
                            });
                        }
                    })
                }
            }
        }
        Ok((raw, rest))
    }

    /// Applies libpq's rules and rotor's defaults for a connection to `hosts`.
    pub(crate) fn resolve(self, hosts: &[&str]) -> Result<TlsOptions, TlsError> {
        let roots = match self.rootcert.as_deref() {
            None | Some("") => Roots::Default,
            Some("system") => Roots::System,
            Some(path) => Roots::File(PathBuf::from(path)),
        };
        let (mode, choice) = match (&roots, self.mode) {
            // libpq 16: the system store is only meaningful with host name checks.
            (Roots::System, None) => (SslMode::VerifyFull, ModeChoice::SystemRoots),
            (Roots::System, Some(m)) if m != SslMode::VerifyFull => {
                return Err(TlsError::Param {
                    param: "sslrootcert",
                    problem: format!(
                        "sslrootcert=system may not be used with the weak sslmode={m}"
                    ),
                    fix: "use sslmode=verify-full, or name a CA file in sslrootcert",
                });
            }
            (_, explicit) => choose(explicit, hosts),
        };
        let client = match (self.cert, self.key) {
            (None, None) => None,
            (Some(c), Some(k)) => Some((PathBuf::from(c), PathBuf::from(k))),
            (Some(_), None) | (None, Some(_)) => {
                return Err(TlsError::Param {
                    param: "sslcert",
                    problem: "sslcert and sslkey come together: one is missing".into(),
                    fix: "give both the client certificate (sslcert=PATH) and its key (sslkey=PATH)",
                });
            }
        };
        Ok(TlsOptions {
            mode,
            choice,
            roots,
            client,
            sni: self.sni.unwrap_or(true),
        })
    }
}

fn decode(s: &str, what: &str) -> Result<String, TlsError> {
    percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| TlsError::Param {
            param: "url",
            problem: format!("{what} is not UTF-8 after percent-decoding"),
            fix: "percent-encode the value as UTF-8",
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_tls_params_from_the_rest() {
        let (raw, rest) = Raw::split_query(
            "connect_timeout=3&sslmode=verify-ca&sslrootcert=%2Fetc%2Fca%20x.pem&application_name=a",
        )
        .unwrap();
        assert_eq!(rest, ["connect_timeout=3", "application_name=a"]);
        let o = raw.resolve(&["db.example.com"]).unwrap();
        assert_eq!(o.mode, SslMode::VerifyCa);
        assert_eq!(o.roots, Roots::File("/etc/ca x.pem".into()));
        assert!(o.sni);
    }

    #[test]
    fn system_roots_imply_verify_full_and_refuse_weaker() {
        let (raw, _) = Raw::split_query("sslrootcert=system").unwrap();
        let o = raw.resolve(&["127.0.0.1"]).unwrap();
        assert_eq!(
            (o.mode, o.choice),
            (SslMode::VerifyFull, ModeChoice::SystemRoots)
        );
        let (raw, _) = Raw::split_query("sslrootcert=system&sslmode=require").unwrap();
        assert!(
            raw.resolve(&["h"])
                .unwrap_err()
                .to_string()
                .contains("weak")
        );
    }

    #[test]
    fn refuses_half_a_client_cert_unsupported_params_and_bad_sni() {
        let (raw, _) = Raw::split_query("sslcert=/c.pem").unwrap();
        assert!(
            raw.resolve(&["h"])
                .unwrap_err()
                .to_string()
                .contains("sslkey")
        );
        let e = Raw::split_query("sslpassword=x").unwrap_err().to_string();
        assert!(e.contains("sslpassword") && !e.contains("=x"), "{e}");
        assert!(Raw::split_query("sslsni=yes").is_err());
    }
}
