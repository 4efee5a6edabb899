//! # rotor-seal — envelope encryption of secret values
//!
//! Every rotor store (embedded SQLite, PostgreSQL) keeps secret values only
//! in the [`Sealed`] form produced here; this crate is the one place where
//! plaintext meets keys.
//!
//! ## Scheme
//! * Each value (one secret version) is encrypted with AES-256-GCM
//!   (aws-lc-rs) under a fresh random 256-bit **data key** used exactly once.
//! * The data key is AES-256-GCM-wrapped by the 256-bit **master key**.
//! * Both encryptions authenticate the same associated data, [`Aad`]: the
//!   secret name and version id in a length-prefixed, domain-separated
//!   encoding. The master key's public [`KeyId`] is stored beside the wrapped
//!   data key.
//! * A store seals, opens and rewraps a secret version with [`seal_version`],
//!   [`open_version`] and [`rewrap_version`], which build that [`Aad`] from the
//!   secret name and version id themselves: the binding is written once, here.
//! * The master key comes from `ROTOR_MASTER_KEY`, a key file (only if mode
//!   0600 or stricter), or a passphrase through Argon2id ([`resolve`]).
//!
//! ## Invariant
//! A [`Sealed`] record opens only with the master key that wrapped it **and**
//! only for the exact `(secret, version_id)` it was sealed for. A record (or
//! just its wrapped data key) copied onto another row, or any edited byte,
//! fails with [`Error::Tampered`]; a different master key fails with
//! [`Error::WrongMasterKey`] before any decryption. No error, `Debug` output
//! or `Display` contains plaintext or key bytes. A store calls
//! [`KeyCheck::verify`] when it opens, so a wrong key is refused before
//! anything is written.
//!
//! ## Master-key rotation (`rotor master-key rotate`)
//! 1. Load the old key and create the new one (write it with
//!    [`write_key_file`]).
//! 2. For each row whose `key_id` is the old key's id: [`rewrap`] and commit
//!    that row (the value ciphertext does not change; only the wrapped data
//!    key and `key_id` do). Readers meanwhile use [`open_any`] with both
//!    keys, so there is no downtime, and a crash leaves every row readable
//!    with one of the two keys. Re-running is safe: [`rewrap`] passes rows
//!    already under the new key through unchanged.
//! 3. When no row carries the old id, replace the [`KeyCheck`] with
//!    `KeyCheck::new(&new)` in the same transaction that records the rotation
//!    as done; from then on only the new key opens the store.
//!
//! ## Not protected against
//! * An attacker who has both the master key and the database: they can
//!   decrypt everything. The scheme protects stolen databases and backups.
//! * Memory inspection of a running process (core dumps, `/proc/PID/mem`,
//!   swap, a debugger): keys and opened values are in memory while used.
//!   Zeroizing on drop narrows the window; it does not close it. The copy of
//!   `ROTOR_MASTER_KEY` in the process environment is never wiped.
//! * Rollback: replacing a row with an *older* sealed record of the same
//!   secret and version id (e.g. from a backup) is not detected here; version
//!   ids must be unique per value, and freshness is the store's job.
//! * Deletion or reordering of rows, and the length of values (visible from
//!   the ciphertext length).
//! * Weak passphrases: Argon2id slows guessing but cannot make a guessable
//!   passphrase strong.
//! * A key file whose owner is another user (the owner is not checked, only
//!   the mode), or a compromised OS.
//! * Nonce reuse is avoided by random 96-bit nonces: data keys are used once,
//!   and the master key should wrap well under 2^32 data keys (a rotor store
//!   is many orders of magnitude below that).

mod audit_key;
mod envelope;
mod error;
mod key;
mod version;

pub use audit_key::AuditKey;
pub use envelope::{Aad, Algorithm, KeyCheck, Sealed, SecretBytes, open, open_any, rewrap, seal};
pub use error::{Error, Result};
pub use key::{
    KdfAlgorithm, KdfParams, KeyId, MASTER_KEY_ENV, MASTER_KEY_LEN, MASTER_KEY_PREFIX, MasterKey,
    MasterKeySource, resolve, resolve_with_env, write_key_file,
};
pub use version::{open_version, rewrap_version, seal_version};

/// Serde helper: `Vec<u8>` as a standard base64 string (compact in JSON).
mod b64_vec {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        STANDARD.decode(s).map_err(serde::de::Error::custom)
    }
}

/// Serde helper: `[u8; 16]` (a salt) as a standard base64 string.
mod b64_array16 {
    use serde::{Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &[u8; 16], s: S) -> Result<S::Ok, S::Error> {
        super::b64_vec::serialize(v, s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 16], D::Error> {
        let v = super::b64_vec::deserialize(d)?;
        <[u8; 16]>::try_from(v.as_slice())
            .map_err(|_| serde::de::Error::custom("salt must be 16 bytes"))
    }
}
