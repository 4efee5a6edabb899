//! [`TlsOptions`] → a rustls [`ClientConfig`]: roots, client certificate, verifier, SNI.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use crate::TlsError;
use crate::mode::SslMode;
use crate::options::{Roots, TlsOptions};
use crate::verify::{ChainOnly, EncryptOnly};

/// The one crypto provider rotor uses (aws-lc-rs, as rotor-seal does).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// libpq's default root file, `~/.postgresql/root.crt`.
fn default_root_file() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
    let path = Path::new(&home).join(".postgresql").join("root.crt");
    path.is_file().then_some(path)
}

/// Which roots to trust, if any: `None` when nothing checks the chain.
fn root_store(opts: &TlsOptions) -> Result<Option<(RootCertStore, String)>, TlsError> {
    let verifying = matches!(opts.mode, SslMode::VerifyCa | SslMode::VerifyFull);
    let file = match &opts.roots {
        Roots::File(p) => Some(p.clone()),
        Roots::Default => default_root_file(),
        Roots::System => None,
    };
    if let Some(path) = file {
        // As libpq: a root file present makes prefer/require check the chain too.
        let mut store = RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(&path)
            .map_err(|e| TlsError::file("sslrootcert", &path, e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::file("sslrootcert", &path, e))?;
        let (added, _) = store.add_parsable_certificates(certs);
        if added == 0 {
            return Err(TlsError::Param {
                param: "sslrootcert",
                problem: format!("{} holds no usable PEM certificate", path.display()),
                fix: "point sslrootcert at the CA certificate(s) in PEM (-----BEGIN CERTIFICATE-----)",
            });
        }
        return Ok(Some((store, path.display().to_string())));
    }
    if !verifying {
        return Ok(None);
    }
    let found = rustls_native_certs::load_native_certs();
    let mut store = RootCertStore::empty();
    store.add_parsable_certificates(found.certs);
    if store.is_empty() {
        return Err(TlsError::Param {
            param: "sslrootcert",
            problem: format!(
                "sslmode={} needs trusted roots, and neither sslrootcert, ~/.postgresql/root.crt \
                 nor the system trust store has any",
                opts.mode
            ),
            fix: "set sslrootcert=/path/to/ca.pem (your provider's CA bundle)",
        });
    }
    Ok(Some((store, "the system trust store".to_owned())))
}

/// Reads `sslcert` and `sslkey`. Like libpq, refuses a key file that group or others may
/// read (0640 is allowed when root owns it).
fn client_identity(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let meta = std::fs::metadata(key).map_err(|e| TlsError::io("sslkey", key, e))?;
    let mode = meta.mode() & 0o777;
    let ok = mode & 0o077 == 0 || (meta.uid() == 0 && mode & 0o037 == 0);
    if !ok {
        return Err(TlsError::Param {
            param: "sslkey",
            problem: format!(
                "{} is readable by group or others (mode {mode:o})",
                key.display()
            ),
            fix: "chmod 0600 the key file (or 0640 owned by root)",
        });
    }
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| TlsError::file("sslcert", cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::file("sslcert", cert, e))?;
    if certs.is_empty() {
        return Err(TlsError::Param {
            param: "sslcert",
            problem: format!("{} holds no PEM certificate", cert.display()),
            fix: "point sslcert at the client certificate in PEM",
        });
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::file("sslkey", key, e))?;
    Ok((certs, key))
}

/// The rustls configuration for `opts`, or `None` for `sslmode=disable`.
pub fn client_config(opts: &TlsOptions) -> Result<Option<Arc<ClientConfig>>, TlsError> {
    if opts.mode == SslMode::Disable {
        return Ok(None);
    }
    let provider = provider();
    let verifier: Arc<dyn ServerCertVerifier> = match root_store(opts)? {
        None => Arc::new(EncryptOnly {
            provider: Arc::clone(&provider),
        }),
        Some((store, _)) => {
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(store), Arc::clone(&provider))
                    .build()
                    .map_err(|e| TlsError::Rustls(e.to_string()))?;
            if opts.mode == SslMode::VerifyFull {
                webpki
            } else {
                Arc::new(ChainOnly { inner: webpki })
            }
        }
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match &opts.client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let (certs, key_der) = client_identity(cert, key)?;
            builder
                .with_client_auth_cert(certs, key_der)
                .map_err(|e| TlsError::Param {
                    param: "sslkey",
                    problem: format!("the client key does not fit the certificate ({e})"),
                    fix: "give the key that belongs to sslcert",
                })?
        }
    };
    config.enable_sni = opts.sni;
    Ok(Some(Arc::new(config)))
}
