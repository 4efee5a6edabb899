//! Turns a failed handshake into a sentence an operator can act on: what was refused, under
//! which mode (and why that mode), and what to change.

use std::error::Error as StdError;

use rustls::{CertificateError, Error as RustlsError};

use crate::mode::SslMode;
use crate::options::TlsOptions;

/// A TLS failure, explained. Never holds a secret: only modes, hosts and file names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFailure {
    /// What went wrong.
    pub message: String,
    /// What to do about it.
    pub fix: String,
}

/// The rustls error somewhere in `err`'s source chain (directly or inside an `io::Error`).
fn find_rustls<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a RustlsError> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<RustlsError>() {
            return Some(r);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(r) = inner.downcast_ref::<RustlsError>()
        {
            return Some(r);
        }
        cur = e.source();
    }
    None
}

/// Explains a handshake failure against `host`, if `err` is one.
pub fn explain_rustls(
    err: &(dyn StdError + 'static),
    opts: &TlsOptions,
    host: &str,
) -> Option<TlsFailure> {
    let r = find_rustls(err)?;
    let why = opts.choice.describe(opts.mode);
    let weaker = match opts.mode {
        SslMode::VerifyFull => {
            ", or, if you accept the risk, sslmode=verify-ca (any host name) or sslmode=require (no identity check)"
        }
        SslMode::VerifyCa => ", or sslmode=require if you accept an unverified server",
        _ => "",
    };
    let (message, fix) = match r {
        RustlsError::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => (
            format!("the server's TLS certificate is not valid for the host name {host} ({why})"),
            format!(
                "connect with the host name the certificate was issued for, or have the server's \
                 certificate include {host}{weaker}"
            ),
        ),
        RustlsError::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        ) => (
            format!(
                "the server's TLS certificate for {host} is not signed by a trusted root ({why})"
            ),
            format!(
                "set sslrootcert=/path/to/ca.pem to the CA that issued it (your provider's CA \
                 bundle){weaker}"
            ),
        ),
        RustlsError::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => (
            format!("the server's TLS certificate for {host} has expired ({why})"),
            "renew the server's certificate".to_owned(),
        ),
        RustlsError::InvalidMessage(_) => (
            format!(
                "{host} answered the TLS handshake with something that is not TLS: a plaintext \
                 port? ({why})"
            ),
            "point the url at the server's TLS port (redis-server --tls-port, PostgreSQL \
             ssl = on), or, on a trusted network only, connect without TLS (redis://, \
             sslmode=disable)"
                .to_owned(),
        ),
        RustlsError::AlertReceived(rustls::AlertDescription::CertificateRequired) => (
            format!("{host} requires a client certificate ({why})"),
            "give the client certificate and its key: sslcert=PATH&sslkey=PATH".to_owned(),
        ),
        other => (
            format!("TLS handshake with {host} failed: {other} ({why})"),
            "check the server's TLS setup and the url's sslmode/sslrootcert/sslcert/sslkey"
                .to_owned(),
        ),
    };
    Some(TlsFailure { message, fix })
}

/// The failure for a server that answered "no TLS here" under a mode that requires it.
pub fn no_tls_on_server(opts: &TlsOptions, host: &str) -> TlsFailure {
    TlsFailure {
        message: format!(
            "the server {host} does not offer TLS, and {} requires it",
            opts.choice.describe(opts.mode)
        ),
        fix: "enable TLS on the server (PostgreSQL: ssl = on with a certificate), or, on a \
              trusted network only, say sslmode=disable (or prefer) in the url"
            .to_owned(),
    }
}

/// What a handshake that succeeded under `opts` proved about `host`, for the probe's list
/// of passed checks; `None` under `disable` and `prefer`, where TLS is not required and a
/// plaintext session may have been used.
///
/// WHY a line of its own: an operator reading `rotor probe` must see that TLS was checked
/// (and how strictly) apart from "reachable", so a later TLS refusal is not mistaken for a
/// network problem.
pub fn verified_check(opts: &TlsOptions, host: &str) -> Option<String> {
    let roots = match &opts.roots {
        crate::options::Roots::File(p) => format!("the CA in {}", p.display()),
        crate::options::Roots::System => "the system trust store".to_owned(),
        crate::options::Roots::Default => {
            "the default roots (~/.postgresql/root.crt or the system trust store)".to_owned()
        }
    };
    let what = match opts.mode {
        SslMode::Disable | SslMode::Prefer => return None,
        SslMode::Require => {
            "encrypted; the server's identity is not checked (sslmode=require)".to_owned()
        }
        SslMode::VerifyCa => {
            format!("the certificate of {host} is signed by {roots} (host name not checked)")
        }
        SslMode::VerifyFull => {
            format!("the certificate of {host} is valid for that name and signed by {roots}")
        }
    };
    let client = match &opts.client {
        Some((cert, _)) => format!("; client certificate {} accepted", cert.display()),
        None => String::new(),
    };
    Some(format!("TLS (sslmode={}): {what}{client}", opts.mode))
}
