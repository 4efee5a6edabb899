//! Certificates made at test time: a throwaway CA that issues server and client
//! certificates (rcgen, ECDSA P-256), written as PEM files for the servers and clients.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tempfile::TempDir;

use crate::{Error, Result};

/// A certificate and its private key as PEM files (the key 0600).
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM, PKCS#8, mode 0600).
    pub key: PathBuf,
}

/// A certificate authority for one test, in its own temporary directory.
pub struct TestCa {
    dir: TempDir,
    issuer: Issuer<'static, KeyPair>,
    cert: PathBuf,
    next: AtomicUsize,
}

impl fmt::Debug for TestCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCa")
            .field("cert", &self.cert)
            .finish_non_exhaustive()
    }
}

fn rcgen_error(what: &str, e: rcgen::Error) -> Error {
    Error::io(what.to_owned(), std::io::Error::other(e.to_string()))
}

impl TestCa {
    /// A new CA named `rotor test CA`; its certificate is [`cert_path`](Self::cert_path).
    pub fn new() -> Result<TestCa> {
        let dir = tempfile::Builder::new()
            .prefix("rotor-ca-")
            .tempdir()
            .map_err(|e| Error::io("creating a temporary directory", e))?;
        let key = KeyPair::generate().map_err(|e| rcgen_error("generating the CA key", e))?;
        let mut params = CertificateParams::new(Vec::<String>::new())
            .map_err(|e| rcgen_error("CA parameters", e))?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "rotor test CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params
            .self_signed(&key)
            .map_err(|e| rcgen_error("self-signing the CA", e))?;
        let path = dir.path().join("ca.crt");
        write(&path, &cert.pem(), 0o644)?;
        Ok(TestCa {
            issuer: Issuer::new(params, key),
            cert: path,
            dir,
            next: AtomicUsize::new(0),
        })
    }

    /// The CA certificate (PEM): what `sslrootcert=` names.
    pub fn cert_path(&self) -> &Path {
        &self.cert
    }

    /// A server certificate for `names` (DNS names, or IP addresses such as `127.0.0.1`).
    pub fn issue_server(&self, names: &[&str]) -> Result<CertFiles> {
        self.issue(names, ExtendedKeyUsagePurpose::ServerAuth, false)
    }

    /// A server certificate for `names` that expired in 2021 (valid 2020-01-01 to
    /// 2021-01-01): servers load it, clients that check validity refuse it.
    pub fn issue_server_expired(&self, names: &[&str]) -> Result<CertFiles> {
        self.issue(names, ExtendedKeyUsagePurpose::ServerAuth, true)
    }

    /// A client certificate with common name `user` (PostgreSQL's `clientcert=verify-full`
    /// compares it with the role).
    pub fn issue_client(&self, user: &str) -> Result<CertFiles> {
        self.issue(&[user], ExtendedKeyUsagePurpose::ClientAuth, false)
    }

    fn issue(
        &self,
        names: &[&str],
        usage: ExtendedKeyUsagePurpose,
        expired: bool,
    ) -> Result<CertFiles> {
        let key = KeyPair::generate().map_err(|e| rcgen_error("generating a key", e))?;
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .map_err(|e| rcgen_error("certificate parameters", e))?;
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("rotor test"),
        );
        params.extended_key_usages = vec![usage];
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| rcgen_error("signing a certificate", e))?;
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let files = CertFiles {
            cert: self.dir.path().join(format!("cert-{n}.crt")),
            key: self.dir.path().join(format!("cert-{n}.key")),
        };
        write(&files.cert, &cert.pem(), 0o644)?;
        write(&files.key, &key.serialize_pem(), 0o600)?;
        Ok(files)
    }
}

/// Writes `text` to `path` with `mode`.
pub(crate) fn write(path: &Path, text: &str, mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.set_permissions(std::fs::Permissions::from_mode(mode))
        })
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))
}
