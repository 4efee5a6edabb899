//! Envelope encryption: per-value data keys, wrapping, opening, rewrapping,
//! and the key-check record.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::aead::{self, AES_256_GCM, NONCE_LEN, Nonce, RandomizedNonceKey};
use aws_lc_rs::rand;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::key::{KeyId, MasterKey};

/// AES-GCM tag length.
const TAG_LEN: usize = 16;
/// Data-key length (AES-256).
const DEK_LEN: usize = 32;
/// `wrapped_dek` = nonce ‖ encrypted DEK ‖ tag.
pub(crate) const WRAPPED_DEK_LEN: usize = NONCE_LEN + DEK_LEN + TAG_LEN;
/// Domain string that starts every associated-data encoding; bump it (and the
/// record format) if the encoding ever changes.
const AAD_DOMAIN: &[u8] = b"rotor/v1";
/// Magic + format version at the start of [`Sealed::to_bytes`].
const BYTES_MAGIC: &[u8; 4] = b"RSL\x01";
/// Known plaintext sealed by [`KeyCheck`].
const KEYCHECK_PLAINTEXT: &[u8] = b"rotor master key check v1";

/// What a sealed value is bound to: the secret's name and the version id.
///
/// WHY: both the value ciphertext and the wrapped data key are authenticated
/// together with this, so a sealed record copied onto another secret's row,
/// or onto another version of the same secret, fails to open with
/// [`Error::Tampered`] instead of silently returning the wrong value.
///
/// The bytes actually authenticated are an unambiguous encoding:
/// `"rotor/v1" ‖ u64be(len purpose) ‖ purpose ‖ u64be(len secret) ‖ secret ‖
/// u64be(len version_id) ‖ version_id`, where `purpose` separates the data-key
/// wrap from the value encryption and from [`KeyCheck`] records. The length
/// prefixes make `("a/b", "c")` and `("a", "b/c")` distinct.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Aad<'a> {
    /// The secret's full name as the store keys it.
    pub secret: &'a str,
    /// The version id (e.g. a UUID) of this value.
    pub version_id: &'a str,
}

impl<'a> Aad<'a> {
    /// Binds a value to `secret` and `version_id`.
    #[must_use]
    pub const fn new(secret: &'a str, version_id: &'a str) -> Self {
        Self { secret, version_id }
    }

    fn encode(&self, purpose: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            AAD_DOMAIN.len() + 24 + purpose.len() + self.secret.len() + self.version_id.len(),
        );
        out.extend_from_slice(AAD_DOMAIN);
        for field in [purpose, self.secret.as_bytes(), self.version_id.as_bytes()] {
            out.extend_from_slice(&(field.len() as u64).to_be_bytes());
            out.extend_from_slice(field);
        }
        out
    }
}

/// The two AEAD "purposes" of one record kind; separating them means a
/// wrapped data key can never be confused with a value ciphertext, and a
/// [`KeyCheck`] can never be confused with a stored secret.
#[derive(Clone, Copy)]
struct Purposes {
    dek: &'static [u8],
    value: &'static [u8],
}

const SECRET_PURPOSES: Purposes = Purposes {
    dek: b"dek",
    value: b"value",
};
const KEYCHECK_PURPOSES: Purposes = Purposes {
    dek: b"keycheck-dek",
    value: b"keycheck-value",
};

/// AEAD algorithm of a [`Sealed`] record (data key and value use the same).
///
/// WHY recorded: so a future algorithm can be introduced without guessing
/// what old rows used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Algorithm {
    /// AES-256-GCM with random 96-bit nonces (aws-lc).
    #[serde(rename = "A256GCM")]
    A256Gcm,
}

impl Algorithm {
    /// Stable name for TEXT columns: `"A256GCM"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::A256Gcm => "A256GCM",
        }
    }

    const fn to_byte(self) -> u8 {
        match self {
            Self::A256Gcm => 1,
        }
    }

    fn from_byte(b: u8) -> Result<Self> {
        match b {
            1 => Ok(Self::A256Gcm),
            _ => Err(Error::Malformed {
                reason: "unknown algorithm",
            }),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "A256GCM" => Ok(Self::A256Gcm),
            _ => Err(Error::Malformed {
                reason: "unknown algorithm",
            }),
        }
    }
}

/// A sealed secret value as stored in a database row. Plain, non-secret data.
///
/// WHY the fields are separate and public: a store may keep them in separate
/// columns (and index `key_id` to find rows still to rewrap during master-key
/// rotation), or as one BLOB via [`Sealed::to_bytes`]. With serde the byte
/// fields are base64 strings.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// AEAD algorithm; `"A256GCM"`.
    pub alg: Algorithm,
    /// Id of the master key that wrapped `wrapped_dek`.
    pub key_id: KeyId,
    /// The data key wrapped by the master key: nonce(12) ‖ ciphertext(32) ‖ tag(16).
    #[serde(with = "crate::b64_vec")]
    pub wrapped_dek: Vec<u8>,
    /// Nonce of the value encryption (12 bytes).
    #[serde(with = "crate::b64_vec")]
    pub nonce: Vec<u8>,
    /// Value ciphertext ‖ tag(16).
    #[serde(with = "crate::b64_vec")]
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("alg", &self.alg)
            .field("key_id", &self.key_id)
            .field("wrapped_dek_len", &self.wrapped_dek.len())
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

/// Fixed header size of [`Sealed::to_bytes`] before the value ciphertext.
const HEADER_LEN: usize = BYTES_MAGIC.len() + 1 + 8 + WRAPPED_DEK_LEN + NONCE_LEN;

impl Sealed {
    /// Compact single-BLOB form:
    ///
    /// | offset | len    | field                                         |
    /// |--------|--------|-----------------------------------------------|
    /// | 0      | 4      | magic `"RSL"` + format version `0x01`         |
    /// | 4      | 1      | algorithm (`0x01` = A256GCM)                  |
    /// | 5      | 8      | master key id                                 |
    /// | 13     | 60     | wrapped DEK = nonce(12) ‖ ct(32) ‖ tag(16)    |
    /// | 73     | 12     | value nonce                                   |
    /// | 85     | n + 16 | value ciphertext ‖ tag                        |
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.ciphertext.len());
        out.extend_from_slice(BYTES_MAGIC);
        out.push(self.alg.to_byte());
        out.extend_from_slice(self.key_id.as_bytes());
        out.extend_from_slice(&self.wrapped_dek);
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&self.ciphertext);
        out
    }

    /// Parses [`Sealed::to_bytes`] output.
    ///
    /// # Errors
    /// [`Error::Malformed`] on a bad magic, unknown algorithm or short input.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < HEADER_LEN + TAG_LEN {
            return Err(Error::Malformed {
                reason: "too short",
            });
        }
        if &bytes[..4] != BYTES_MAGIC {
            return Err(Error::Malformed {
                reason: "bad magic or unsupported format version",
            });
        }
        let alg = Algorithm::from_byte(bytes[4])?;
        let mut id = [0u8; 8];
        id.copy_from_slice(&bytes[5..13]);
        let dek_end = 13 + WRAPPED_DEK_LEN;
        let sealed = Self {
            alg,
            key_id: KeyId::from_bytes(id),
            wrapped_dek: bytes[13..dek_end].to_vec(),
            nonce: bytes[dek_end..HEADER_LEN].to_vec(),
            ciphertext: bytes[HEADER_LEN..].to_vec(),
        };
        sealed.validate()?;
        Ok(sealed)
    }

    /// Checks the field lengths for the algorithm before any crypto runs.
    fn validate(&self) -> Result<()> {
        match self.alg {
            Algorithm::A256Gcm => {
                if self.wrapped_dek.len() != WRAPPED_DEK_LEN {
                    return Err(Error::Malformed {
                        reason: "wrapped data key has the wrong length",
                    });
                }
                if self.nonce.len() != NONCE_LEN {
                    return Err(Error::Malformed {
                        reason: "nonce has the wrong length",
                    });
                }
                if self.ciphertext.len() < TAG_LEN {
                    return Err(Error::Malformed {
                        reason: "ciphertext is shorter than the tag",
                    });
                }
            }
        }
        Ok(())
    }
}

/// Opened plaintext. Zeroized on drop; `Debug` shows only the length.
///
/// WHY a type of our own: secret values must not end up in logs via `{:?}`
/// and must be wiped from memory as soon as the caller is done.
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// The plaintext. Keep the borrow short and do not copy it into
    /// non-zeroizing buffers.
    #[must_use]
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes (not secret: the ciphertext length reveals it).
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the value is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Copies the value into a [`SecretString`] if it is UTF-8 (for values
    /// that are passwords or tokens). `None` if it is not UTF-8.
    #[must_use]
    pub fn to_secret_string(&self) -> Option<SecretString> {
        let s = std::str::from_utf8(&self.0).ok()?;
        // Exact capacity: boxing it does not reallocate and leave a copy.
        let mut owned = String::with_capacity(s.len());
        owned.push_str(s);
        Some(SecretString::from(owned))
    }
}

impl ExposeSecret<[u8]> for SecretBytes {
    fn expose_secret(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes(<redacted>, len={})", self.0.len())
    }
}

fn crypto(what: &'static str) -> impl FnOnce(aws_lc_rs::error::Unspecified) -> Error {
    move |_| Error::Crypto { what }
}

/// AES-256-GCM seal under a random nonce; returns nonce and ct ‖ tag.
/// The buffer is allocated at its final size so the plaintext copy is
/// encrypted in place and never reallocated (no stray plaintext copies).
fn aead_seal(key: &[u8], aad: &[u8], plaintext: &[u8]) -> Result<([u8; NONCE_LEN], Vec<u8>)> {
    let key = RandomizedNonceKey::new(&AES_256_GCM, key).map_err(crypto("AEAD key setup"))?;
    let mut buf = Zeroizing::new(Vec::with_capacity(plaintext.len() + TAG_LEN));
    buf.extend_from_slice(plaintext);
    let (nonce, tag) = key
        .seal_in_place_separate_tag(aead::Aad::from(aad), &mut buf[..])
        .map_err(crypto("AEAD seal"))?;
    buf.extend_from_slice(tag.as_ref());
    Ok((*nonce.as_ref(), std::mem::take(&mut *buf)))
}

/// AES-256-GCM open; any failure is [`Error::Tampered`].
fn aead_open(key: &[u8], aad: &[u8], nonce: &[u8], ct_tag: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let key = RandomizedNonceKey::new(&AES_256_GCM, key).map_err(crypto("AEAD key setup"))?;
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Error::Malformed {
        reason: "nonce has the wrong length",
    })?;
    let mut buf = Zeroizing::new(ct_tag.to_vec());
    let len = key
        .open_in_place(nonce, aead::Aad::from(aad), &mut buf[..])
        .map_err(|_| Error::Tampered)?
        .len();
    buf.truncate(len);
    Ok(buf)
}

fn new_dek() -> Result<Zeroizing<[u8; DEK_LEN]>> {
    let mut dek = Zeroizing::new([0u8; DEK_LEN]);
    rand::fill(&mut dek[..]).map_err(crypto("random data key generation"))?;
    Ok(dek)
}

fn wrap_dek(master: &MasterKey, aad: &[u8], dek: &[u8; DEK_LEN]) -> Result<Vec<u8>> {
    let (nonce, ct) = aead_seal(master.secret_bytes(), aad, dek)?;
    let mut wrapped = Vec::with_capacity(WRAPPED_DEK_LEN);
    wrapped.extend_from_slice(&nonce);
    wrapped.extend_from_slice(&ct);
    Ok(wrapped)
}

fn unwrap_dek(master: &MasterKey, aad: &[u8], wrapped: &[u8]) -> Result<Zeroizing<[u8; DEK_LEN]>> {
    if wrapped.len() != WRAPPED_DEK_LEN {
        return Err(Error::Malformed {
            reason: "wrapped data key has the wrong length",
        });
    }
    let (nonce, ct) = wrapped.split_at(NONCE_LEN);
    let plain = aead_open(master.secret_bytes(), aad, nonce, ct)?;
    let mut dek = Zeroizing::new([0u8; DEK_LEN]);
    if plain.len() != DEK_LEN {
        return Err(Error::Tampered);
    }
    dek.copy_from_slice(&plain);
    Ok(dek)
}

fn check_key_id(master: &MasterKey, sealed: &Sealed) -> Result<()> {
    if sealed.key_id == master.key_id() {
        Ok(())
    } else {
        Err(Error::WrongMasterKey {
            expected_key_id: sealed.key_id,
            got_key_id: master.key_id(),
        })
    }
}

fn seal_with(master: &MasterKey, aad: &Aad<'_>, p: Purposes, plaintext: &[u8]) -> Result<Sealed> {
    let dek = new_dek()?;
    let (nonce, ciphertext) = aead_seal(&dek[..], &aad.encode(p.value), plaintext)?;
    let wrapped_dek = wrap_dek(master, &aad.encode(p.dek), &dek)?;
    Ok(Sealed {
        alg: Algorithm::A256Gcm,
        key_id: master.key_id(),
        wrapped_dek,
        nonce: nonce.to_vec(),
        ciphertext,
    })
}

fn open_with(
    master: &MasterKey,
    aad: &Aad<'_>,
    p: Purposes,
    sealed: &Sealed,
) -> Result<SecretBytes> {
    sealed.validate()?;
    check_key_id(master, sealed)?;
    let dek = unwrap_dek(master, &aad.encode(p.dek), &sealed.wrapped_dek)?;
    let plain = aead_open(
        &dek[..],
        &aad.encode(p.value),
        &sealed.nonce,
        &sealed.ciphertext,
    )?;
    Ok(SecretBytes(plain))
}

/// Seals `plaintext` for the row identified by `aad`.
///
/// A fresh random 256-bit data key encrypts the value (used exactly once),
/// and is itself AES-256-GCM-wrapped by `master` under the same `aad`
/// binding, so neither the ciphertext nor the wrapped key can be moved to
/// another row.
///
/// # Errors
/// [`Error::Crypto`] only if the RNG or crypto library fails.
pub fn seal(master: &MasterKey, aad: &Aad<'_>, plaintext: &[u8]) -> Result<Sealed> {
    seal_with(master, aad, SECRET_PURPOSES, plaintext)
}

/// Opens a record sealed by [`seal`] for the same `aad`.
///
/// # Errors
/// [`Error::Malformed`] for bad lengths; [`Error::WrongMasterKey`] if the
/// record's key id is not `master`'s (checked before any decryption);
/// [`Error::Tampered`] if authentication fails (edited bytes, wrong row or
/// version, or a wrong key carrying a forged id).
pub fn open(master: &MasterKey, aad: &Aad<'_>, sealed: &Sealed) -> Result<SecretBytes> {
    open_with(master, aad, SECRET_PURPOSES, sealed)
}

/// Opens with whichever of `keys` has the record's key id.
///
/// WHY: during `master-key rotate` some rows are under the old key and some
/// under the new one; a store holding both keeps serving every row (no
/// downtime) and a crash mid-rotation leaves each row readable by one of them.
///
/// # Errors
/// As [`open`]; [`Error::WrongMasterKey`] (reporting the first key's id) if
/// no key matches, [`Error::NoMasterKey`] if `keys` is empty.
pub fn open_any(keys: &[&MasterKey], aad: &Aad<'_>, sealed: &Sealed) -> Result<SecretBytes> {
    let Some(first) = keys.first() else {
        return Err(Error::NoMasterKey {
            tried: "no keys given to open_any".to_owned(),
        });
    };
    let key = keys
        .iter()
        .find(|k| k.key_id() == sealed.key_id)
        .unwrap_or(first);
    open(key, aad, sealed)
}

/// Re-wraps the record's data key from `old` to `new`; the value ciphertext
/// and nonce are kept as they are, so rotation costs one small AEAD per row
/// regardless of value size.
///
/// Idempotent for resumed rotations: a record already under `new` (and not
/// under `old`) is checked to unwrap under `new` and returned unchanged, so
/// re-running an interrupted rotation over every row is safe.
///
/// # Errors
/// [`Error::WrongMasterKey`] if the record is under neither key;
/// [`Error::Tampered`] if the wrapped data key fails to authenticate under
/// the key whose id it carries; [`Error::Malformed`] for bad lengths.
pub fn rewrap(old: &MasterKey, new: &MasterKey, aad: &Aad<'_>, sealed: &Sealed) -> Result<Sealed> {
    sealed.validate()?;
    let dek_aad = aad.encode(SECRET_PURPOSES.dek);
    if sealed.key_id == new.key_id() && sealed.key_id != old.key_id() {
        unwrap_dek(new, &dek_aad, &sealed.wrapped_dek)?;
        return Ok(sealed.clone());
    }
    check_key_id(old, sealed)?;
    let dek = unwrap_dek(old, &dek_aad, &sealed.wrapped_dek)?;
    Ok(Sealed {
        alg: sealed.alg,
        key_id: new.key_id(),
        wrapped_dek: wrap_dek(new, &dek_aad, &dek)?,
        nonce: sealed.nonce.clone(),
        ciphertext: sealed.ciphertext.clone(),
    })
}

/// A known constant sealed under the store's master key, kept in the store's
/// metadata.
///
/// WHY: a store verifies the key it was given against this record *when it
/// opens*, before writing anything, so a wrong key is a clear
/// [`Error::WrongMasterKey`] at startup rather than a store that has rows
/// under two different keys. It is bound to the fixed associated data
/// `("rotor/keycheck", "")` under purposes that no secret row uses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyCheck {
    sealed: Sealed,
}

const KEYCHECK_AAD: Aad<'static> = Aad::new("rotor/keycheck", "");

impl KeyCheck {
    /// Creates the key-check record for `master` (when a store is created or
    /// after a master-key rotation commits).
    ///
    /// # Errors
    /// [`Error::Crypto`] only if the RNG or crypto library fails.
    pub fn new(master: &MasterKey) -> Result<Self> {
        Ok(Self {
            sealed: seal_with(master, &KEYCHECK_AAD, KEYCHECK_PURPOSES, KEYCHECK_PLAINTEXT)?,
        })
    }

    /// Succeeds only if `master` is the key this record was made with.
    ///
    /// # Errors
    /// [`Error::WrongMasterKey`] if the key id differs; [`Error::Tampered`] if
    /// the ids match but the record does not authenticate (edited record);
    /// [`Error::Malformed`] for a damaged record.
    pub fn verify(&self, master: &MasterKey) -> Result<()> {
        let plain = open_with(master, &KEYCHECK_AAD, KEYCHECK_PURPOSES, &self.sealed)?;
        if plain.expose_secret() == KEYCHECK_PLAINTEXT {
            Ok(())
        } else {
            Err(Error::Tampered)
        }
    }

    /// Id of the master key this record was made with.
    #[must_use]
    pub fn key_id(&self) -> KeyId {
        self.sealed.key_id
    }

    /// BLOB form (same layout as [`Sealed::to_bytes`]).
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        self.sealed.to_bytes()
    }

    /// Parses [`KeyCheck::to_bytes`] output.
    ///
    /// # Errors
    /// [`Error::Malformed`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        Ok(Self {
            sealed: Sealed::from_bytes(bytes)?,
        })
    }
}
