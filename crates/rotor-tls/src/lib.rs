//! TLS for rotor's connections to PostgreSQL (targets and the store) and Redis.
//!
//! One reading of a URL's TLS parameters for every server, with libpq's names and
//! semantics (`sslmode` = disable, prefer, require, verify-ca, verify-full; `sslrootcert`
//! = a PEM file or `system`; `sslcert` + `sslkey`; `sslsni`), turned into a rustls client
//! configuration (aws-lc-rs provider). PostgreSQL connections go through
//! `tokio-postgres-rustls`; Redis through `tokio-rustls`. No TLS is hand-written here: this
//! crate only decides *which* certificates are acceptable, as libpq would.
//!
//! Secure by default: a URL without `sslmode` whose host is not loopback gets
//! `verify-full` (libpq would use `prefer`, which a man in the middle defeats); loopback
//! hosts keep libpq's `prefer`. Every refusal is explained ([`TlsFailure`]) with the mode,
//! why that mode applies, and what to change.
//!
//! Differences from libpq, on purpose: a `sslrootcert` file that does not exist is an
//! error in every mode (libpq ignores it under `require`); without `sslrootcert` the
//! verifying modes use `~/.postgresql/root.crt` when present, else the system trust store
//! (libpq fails); `sslcert`/`sslkey` have no default files; the `PGSSL*` environment
//! variables are not read (the config is the one source).

mod client;
mod explain;
mod mode;
mod options;
pub mod postgres;
mod stream;
mod verify;

use std::path::Path;

pub use client::client_config;
pub use explain::{TlsFailure, explain_rustls, no_tls_on_server, verified_check};
pub use mode::{ModeChoice, SslMode, is_loopback};
pub use options::{Roots, TlsOptions};
pub use rustls::ClientConfig;
pub use stream::connect as connect_stream;
pub use tokio_rustls::client::TlsStream;

/// A URL's TLS settings are unusable. Messages name the parameter and the fix, and never
/// quote the URL (it may carry a password).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A parameter has a bad value or conflicts with another.
    #[error("{param}: {problem}; {fix}")]
    Param {
        /// The URL parameter.
        param: &'static str,
        /// What is wrong.
        problem: String,
        /// What to do.
        fix: &'static str,
    },
    /// A file named by a parameter cannot be read or parsed.
    #[error("{param}: cannot read {path}: {detail}")]
    File {
        /// The URL parameter.
        param: &'static str,
        /// The file.
        path: String,
        /// Why.
        detail: String,
    },
    /// The URL itself does not parse.
    #[error("not a PostgreSQL connection URL ({0})")]
    Url(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(String),
}

impl TlsError {
    pub(crate) fn file(param: &'static str, path: &Path, e: impl std::fmt::Display) -> Self {
        TlsError::File {
            param,
            path: path.display().to_string(),
            detail: e.to_string(),
        }
    }

    pub(crate) fn io(param: &'static str, path: &Path, e: std::io::Error) -> Self {
        Self::file(param, path, e)
    }
}

/// Reads the TLS parameters out of a URL's query string (`a=b&c=d`, percent-encoded) for a
/// connection to `hosts`, and returns the options with defaults applied, plus the
/// parameters that are not TLS's (still encoded) for the caller to handle or refuse.
pub fn options_from_query<'q>(
    query: &'q str,
    hosts: &[&str],
) -> Result<(TlsOptions, Vec<&'q str>), TlsError> {
    let (raw, rest) = options::Raw::split_query(query)?;
    Ok((raw.resolve(hosts)?, rest))
}
