//! The master key: generation, text encoding, key id, Argon2id derivation,
//! the sources it is loaded from, and writing a key file safely.

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use aws_lc_rs::{hmac, rand};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Length of a master key in bytes (AES-256).
pub const MASTER_KEY_LEN: usize = 32;

/// Prefix of the text encoding. Versioned so a future format can coexist and
/// so a stray string (a password, a hex key) is rejected instead of guessed at.
pub const MASTER_KEY_PREFIX: &str = "rotor-mk-v1:";

/// Name of the environment variable [`MasterKeySource::Env`] reads.
pub const MASTER_KEY_ENV: &str = "ROTOR_MASTER_KEY";

/// Length of the base64 part of the encoding (32 bytes, padded).
const B64_LEN: usize = 44;
/// Key files are tiny; refusing big ones avoids reading a wrong path (a log,
/// a database) into memory.
const MAX_KEY_FILE_LEN: u64 = 4096;
/// HMAC label for the key id; fixed forever (changing it changes every id).
const KEY_ID_LABEL: &[u8] = b"rotor master key id";

/// Public, non-secret fingerprint of a master key: the first 8 bytes of
/// HMAC-SHA256(key, "rotor master key id"), shown as 16 lowercase hex digits.
///
/// WHY: it is stored beside every wrapped data key so that (a) a wrong key is
/// reported as "wrong key, expected id X" before any decryption is tried, and
/// (b) `master-key rotate` can tell which rows are already rewrapped. HMAC is
/// a PRF, so the id reveals nothing usable about the key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; 8]);

impl KeyId {
    /// Builds an id from its 8 raw bytes (e.g. read from a BLOB column).
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 8]) -> Self {
        Self(bytes)
    }

    /// The 8 raw bytes (e.g. for a BLOB column or [`crate::Sealed::to_bytes`]).
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 8] {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl FromStr for KeyId {
    type Err = Error;

    /// Parses the 16-hex-digit form produced by `Display` (a TEXT column).
    fn from_str(s: &str) -> Result<Self> {
        let mut out = [0u8; 8];
        hex::decode_to_slice(s, &mut out).map_err(|_| Error::Malformed {
            reason: "key id is not 16 hex digits",
        })?;
        Ok(Self(out))
    }
}

impl Serialize for KeyId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for KeyId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The 256-bit master key that wraps every data key.
///
/// WHY the shape: the bytes live in a heap [`SecretBox`] so moves never copy
/// them around the stack and they are zeroized on drop; `Debug` is redacted;
/// there is deliberately no `Display`, `Serialize` or `Clone` (share it with
/// `Arc` instead) so the key cannot leak through logs or serialization by
/// accident. The only way to get the bytes out is [`MasterKey::encode`].
pub struct MasterKey {
    bytes: SecretBox<[u8; MASTER_KEY_LEN]>,
    id: KeyId,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey(<redacted>, id={})", self.id)
    }
}

impl MasterKey {
    /// Builds a key from bytes already inside a `SecretBox`, computing its id.
    fn from_box(bytes: SecretBox<[u8; MASTER_KEY_LEN]>) -> Self {
        let mac_key = hmac::Key::new(hmac::HMAC_SHA256, bytes.expose_secret());
        let tag = hmac::sign(&mac_key, KEY_ID_LABEL);
        let mut id = [0u8; 8];
        id.copy_from_slice(&tag.as_ref()[..8]);
        Self {
            bytes,
            id: KeyId(id),
        }
    }

    /// A fresh random key from the system CSPRNG (via aws-lc).
    ///
    /// # Errors
    /// [`Error::Crypto`] if the RNG fails.
    pub fn generate() -> Result<Self> {
        let mut failed = false;
        let bytes = SecretBox::init_with_mut(|k: &mut [u8; MASTER_KEY_LEN]| {
            failed = rand::fill(k).is_err();
        });
        if failed {
            return Err(Error::Crypto {
                what: "random master key generation",
            });
        }
        Ok(Self::from_box(bytes))
    }

    /// Parses the text form `rotor-mk-v1:<base64 of 32 bytes>` used by
    /// `ROTOR_MASTER_KEY` and key files. Surrounding whitespace (a trailing
    /// newline from `echo` or an editor) is tolerated.
    ///
    /// # Errors
    /// [`Error::BadKeyEncoding`] with a reason that never quotes the input.
    pub fn from_encoded(encoded: &str) -> Result<Self> {
        Self::from_encoded_at(encoded, "encoded key")
    }

    pub(crate) fn from_encoded_at(encoded: &str, origin: &str) -> Result<Self> {
        let bad = |reason| Error::BadKeyEncoding {
            origin: origin.to_owned(),
            reason,
        };
        let s = encoded.trim();
        if s.is_empty() {
            return Err(bad("it is empty"));
        }
        let b64 = s
            .strip_prefix(MASTER_KEY_PREFIX)
            .ok_or_else(|| bad("it does not start with `rotor-mk-v1:`"))?;
        if b64.len() != B64_LEN {
            return Err(bad("the base64 part has the wrong length"));
        }
        // One spare byte: base64's output-size estimate for 44 chars is 33.
        let mut buf = Zeroizing::new([0u8; MASTER_KEY_LEN + 1]);
        let n = STANDARD
            .decode_slice(b64, &mut buf[..])
            .map_err(|_| bad("the base64 part is not valid standard base64"))?;
        if n != MASTER_KEY_LEN {
            return Err(bad("the base64 part does not decode to 32 bytes"));
        }
        let bytes = SecretBox::init_with_mut(|k: &mut [u8; MASTER_KEY_LEN]| {
            k.copy_from_slice(&buf[..MASTER_KEY_LEN]);
        });
        Ok(Self::from_box(bytes))
    }

    /// The text form accepted by [`MasterKey::from_encoded`], for writing a key
    /// file or printing once to the operator. Returned as a `SecretString` so
    /// it is zeroized when dropped.
    #[must_use]
    pub fn encode(&self) -> SecretString {
        // Built in a buffer of exactly the final size so converting to the
        // boxed str does not reallocate and leave an unzeroized copy behind.
        let mut buf = Zeroizing::new(vec![0u8; MASTER_KEY_PREFIX.len() + B64_LEN]);
        buf[..MASTER_KEY_PREFIX.len()].copy_from_slice(MASTER_KEY_PREFIX.as_bytes());
        // Invariants, not runtime conditions: 32 bytes always encode to exactly
        // 44 base64 characters, and the prefix and base64 are ASCII. A panic
        // here beats silently returning a junk key encoding.
        let written = STANDARD
            .encode_slice(
                self.bytes.expose_secret(),
                &mut buf[MASTER_KEY_PREFIX.len()..],
            )
            .expect("32 bytes fit in 44 base64 characters");
        assert_eq!(written, B64_LEN, "32 bytes encode to 44 base64 characters");
        let vec = std::mem::take(&mut *buf);
        let s = String::from_utf8(vec).expect("prefix and base64 are ASCII");
        SecretString::from(s)
    }

    /// Derives a key from a passphrase with Argon2id (RFC 9106, version 0x13).
    ///
    /// WHY: operators without a secret manager can use a memorable passphrase;
    /// Argon2id makes offline guessing expensive. The same passphrase with the
    /// same [`KdfParams`] (including salt) always yields the same key, so a
    /// store records the `KdfParams` next to its data.
    ///
    /// # Errors
    /// [`Error::EmptyPassphrase`], or [`Error::Kdf`] if Argon2 rejects the
    /// parameters.
    pub fn derive_from_passphrase(passphrase: &SecretString, params: &KdfParams) -> Result<Self> {
        let pw = passphrase.expose_secret();
        if pw.is_empty() {
            return Err(Error::EmptyPassphrase);
        }
        let argon_params = argon2::Params::new(
            params.m_cost_kib,
            params.t_cost,
            params.p_cost,
            Some(MASTER_KEY_LEN),
        )
        .map_err(|e| Error::Kdf {
            reason: e.to_string(),
        })?;
        let argon = argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon_params,
        );
        let mut result = Ok(());
        let bytes = SecretBox::init_with_mut(|k: &mut [u8; MASTER_KEY_LEN]| {
            result = argon.hash_password_into(pw.as_bytes(), &params.salt, k);
        });
        result.map_err(|e| Error::Kdf {
            reason: e.to_string(),
        })?;
        Ok(Self::from_box(bytes))
    }

    /// The public fingerprint of this key (see [`KeyId`]).
    #[must_use]
    pub fn key_id(&self) -> KeyId {
        self.id
    }

    /// Raw key bytes for the AEAD code in this crate only.
    pub(crate) fn secret_bytes(&self) -> &[u8; MASTER_KEY_LEN] {
        self.bytes.expose_secret()
    }
}

/// Argon2id parameters plus salt: everything besides the passphrase needed to
/// re-derive the same master key.
///
/// WHY a record: the parameters must be stored with the data (next to the
/// salt) so that raising the defaults later does not silently change the key
/// derived for an existing store. Serializes as
/// `{"alg":"argon2id","version":19,"m_cost_kib":65536,"t_cost":3,"p_cost":1,"salt":"<base64>"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Always `"argon2id"`; recorded so a future KDF can be told apart.
    pub alg: KdfAlgorithm,
    /// Argon2 version; always 19 (0x13).
    pub version: u32,
    /// Memory cost in KiB.
    pub m_cost_kib: u32,
    /// Number of passes.
    pub t_cost: u32,
    /// Degree of parallelism.
    pub p_cost: u32,
    /// Random per-store salt (not secret).
    #[serde(with = "crate::b64_array16")]
    pub salt: [u8; 16],
}

/// The key-derivation function named in a [`KdfParams`] record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum KdfAlgorithm {
    /// Argon2id v1.3 (RFC 9106).
    #[serde(rename = "argon2id")]
    Argon2id,
}

impl KdfParams {
    /// Recommended memory cost: 64 MiB (RFC 9106's second recommended option).
    pub const DEFAULT_M_COST_KIB: u32 = 64 * 1024;
    /// Recommended passes.
    pub const DEFAULT_T_COST: u32 = 3;
    /// Recommended parallelism.
    pub const DEFAULT_P_COST: u32 = 1;

    /// Recommended parameters (m=64 MiB, t=3, p=1) with the given salt.
    #[must_use]
    pub const fn recommended(salt: [u8; 16]) -> Self {
        Self {
            alg: KdfAlgorithm::Argon2id,
            version: 0x13,
            m_cost_kib: Self::DEFAULT_M_COST_KIB,
            t_cost: Self::DEFAULT_T_COST,
            p_cost: Self::DEFAULT_P_COST,
            salt,
        }
    }

    /// Recommended parameters with a fresh random salt, for a new store.
    ///
    /// # Errors
    /// [`Error::Crypto`] if the RNG fails.
    pub fn generate() -> Result<Self> {
        let mut salt = [0u8; 16];
        rand::fill(&mut salt).map_err(|_| Error::Crypto {
            what: "random salt generation",
        })?;
        Ok(Self::recommended(salt))
    }
}

/// Where the master key comes from.
///
/// WHY an enum rather than a string: each source has its own safety rules
/// (a key file must be 0600) and its own "how to fix" message.
#[non_exhaustive]
pub enum MasterKeySource {
    /// The `ROTOR_MASTER_KEY` environment variable, in the `rotor-mk-v1:` format.
    Env,
    /// A key file in the `rotor-mk-v1:` format; refused unless it is a regular
    /// file with mode 0600 or stricter. A missing file counts as "not found"
    /// so a default path can be listed without being required.
    File(PathBuf),
    /// A passphrase stretched with Argon2id under the recorded parameters.
    Passphrase {
        /// The passphrase (zeroized on drop).
        passphrase: SecretString,
        /// Parameters and salt, as stored with the data.
        params: KdfParams,
    },
}

impl fmt::Debug for MasterKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env => f.write_str("Env"),
            Self::File(p) => f.debug_tuple("File").field(p).finish(),
            Self::Passphrase { params, .. } => f
                .debug_struct("Passphrase")
                .field("passphrase", &"<redacted>")
                .field("params", params)
                .finish(),
        }
    }
}

impl MasterKeySource {
    /// Loads the key from this one source.
    ///
    /// # Errors
    /// [`Error::NoMasterKey`] if the source is absent (env var unset, file
    /// missing); otherwise the source-specific error.
    pub fn load(&self) -> Result<MasterKey> {
        resolve(std::slice::from_ref(self))
    }

    /// Describes the source for error messages (no secrets).
    fn describe(&self) -> String {
        match self {
            Self::Env => MASTER_KEY_ENV.to_owned(),
            Self::File(p) => format!("key file {}", p.display()),
            Self::Passphrase { .. } => "passphrase".to_owned(),
        }
    }
}

/// Loads the master key from the first *present* source, in order.
///
/// A source that is present but bad (malformed env var, key file with mode
/// 0644, wrong KDF params) is an error — rotor never silently falls through
/// to another key, which could open a different store's data or write new
/// data under an unexpected key. If no source is present the error lists
/// every source tried and how to provide a key.
///
/// # Errors
/// See [`Error::NoMasterKey`], [`Error::BadKeyEncoding`],
/// [`Error::KeyFilePermissions`], [`Error::KeyFileNotRegular`],
/// [`Error::KeyFileIo`], [`Error::EmptyPassphrase`], [`Error::Kdf`].
pub fn resolve(sources: &[MasterKeySource]) -> Result<MasterKey> {
    resolve_with_env(sources, |name| std::env::var_os(name))
}

/// [`resolve`] with an injectable environment lookup.
///
/// WHY: tests (and embedders with their own config layer) must not mutate the
/// process environment, which is `unsafe` and racy in Rust 2024.
///
/// # Errors
/// As [`resolve`].
pub fn resolve_with_env(
    sources: &[MasterKeySource],
    env: impl Fn(&str) -> Option<OsString>,
) -> Result<MasterKey> {
    let mut tried = Vec::new();
    for source in sources {
        match source {
            MasterKeySource::Env => match env(MASTER_KEY_ENV) {
                None => tried.push(format!("{MASTER_KEY_ENV} (unset)")),
                Some(value) => {
                    let value = Zeroizing::new(value.into_encoded_bytes());
                    let text = std::str::from_utf8(&value).map_err(|_| Error::BadKeyEncoding {
                        origin: MASTER_KEY_ENV.to_owned(),
                        reason: "it is not valid UTF-8",
                    })?;
                    return MasterKey::from_encoded_at(text, MASTER_KEY_ENV);
                }
            },
            MasterKeySource::File(path) => match read_key_file(path)? {
                None => tried.push(format!("{} (not found)", source.describe())),
                Some(key) => return Ok(key),
            },
            MasterKeySource::Passphrase { passphrase, params } => {
                return MasterKey::derive_from_passphrase(passphrase, params);
            }
        }
    }
    let tried = if tried.is_empty() {
        "no sources configured".to_owned()
    } else {
        tried.join(", ")
    };
    Err(Error::NoMasterKey { tried })
}

/// Reads and checks a key file; `Ok(None)` if it does not exist.
fn read_key_file(path: &Path) -> Result<Option<MasterKey>> {
    let io_err = |source| Error::KeyFileIo {
        path: path.to_owned(),
        source,
    };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(e)),
    };
    // fstat the opened descriptor, not the path: no window for a swap between
    // the check and the read. Symlinks are followed on purpose (Kubernetes
    // secret mounts are symlinks); the target is what must be 0600.
    let meta = file.metadata().map_err(io_err)?;
    if !meta.is_file() {
        return Err(Error::KeyFileNotRegular {
            path: path.to_owned(),
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & !0o600 != 0 {
        return Err(Error::KeyFilePermissions {
            path: path.to_owned(),
            mode,
        });
    }
    if meta.len() > MAX_KEY_FILE_LEN {
        return Err(Error::BadKeyEncoding {
            origin: format!("key file {}", path.display()),
            reason: "the file is far too large to be a key file",
        });
    }
    let mut content = Zeroizing::new(Vec::with_capacity(
        usize::try_from(MAX_KEY_FILE_LEN).unwrap_or(4096) + 1,
    ));
    file.take(MAX_KEY_FILE_LEN + 1)
        .read_to_end(&mut content)
        .map_err(io_err)?;
    let origin = format!("key file {}", path.display());
    let text = std::str::from_utf8(&content).map_err(|_| Error::BadKeyEncoding {
        origin: origin.clone(),
        reason: "it is not valid UTF-8",
    })?;
    MasterKey::from_encoded_at(text, &origin).map(Some)
}

/// Writes `key` to a new key file at `path` with mode 0600, atomically.
///
/// WHY this dance: the file is created in the same directory under a random
/// temporary name with mode 0600 *from the start* (never briefly readable by
/// others), written and fsynced, then hard-linked to `path` — which fails if
/// `path` exists, so an existing key is never overwritten, even in a race —
/// and finally the directory is fsynced so the new name survives a crash.
/// Readers never see a half-written key file.
///
/// # Errors
/// [`Error::AlreadyExists`] if `path` exists (including as a dangling
/// symlink); [`Error::KeyFileIo`] for any I/O failure (the temporary file is
/// removed).
pub fn write_key_file(path: &Path, key: &MasterKey) -> Result<()> {
    if fs::symlink_metadata(path).is_ok() {
        return Err(Error::AlreadyExists {
            path: path.to_owned(),
        });
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let file_name = path.file_name().ok_or_else(|| Error::KeyFileIo {
        path: path.to_owned(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the path has no file name",
        ),
    })?;
    let mut suffix = [0u8; 8];
    rand::fill(&mut suffix).map_err(|_| Error::Crypto {
        what: "random temporary file name",
    })?;
    let mut tmp_name = OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".tmp-{}", hex::encode(suffix)));
    let tmp = dir.join(tmp_name);

    let result = write_then_link(&tmp, path, &dir, key);
    // Best effort: on success the temp name is just a second link; on failure
    // it may hold a partial key. Either way it must go.
    let _ = fs::remove_file(&tmp);
    result?;
    fsync_dir(&dir)
}

fn write_then_link(tmp: &Path, path: &Path, dir: &Path, key: &MasterKey) -> Result<()> {
    let tmp_err = |source| Error::KeyFileIo {
        path: tmp.to_owned(),
        source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)
        .map_err(tmp_err)?;
    // The umask can only remove bits; pin exactly 0600 so the owner can read it.
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(tmp_err)?;
    let encoded = key.encode();
    file.write_all(encoded.expose_secret().as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .map_err(tmp_err)?;
    drop(file);
    match fs::hard_link(tmp, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::AlreadyExists {
            path: path.to_owned(),
        }),
        Err(source) => Err(Error::KeyFileIo {
            path: dir.join(path.file_name().unwrap_or_default()),
            source,
        }),
    }
}

fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| Error::KeyFileIo {
            path: dir.to_owned(),
            source,
        })
}
