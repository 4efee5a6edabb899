//! Sealing, opening and rewrapping one stored secret *version*: its value bound to the
//! secret's name and the version id.
//!
//! WHY here: every store (SQLite, PostgreSQL) keeps a version as the sealed bytes of its
//! value next to the secret name and version id, and must bind the value to exactly that
//! pair. Building the [`Aad`] here, once, means no store can bind a value to anything else
//! (e.g. swap the two, or leave one out). The records are the ones [`seal`], [`open_any`]
//! and [`rewrap`] make with `Aad::new(secret, version_id)`, byte for byte, so rows written
//! before these functions existed open unchanged.

use crate::envelope::{Aad, Sealed, SecretBytes, open_any, rewrap, seal};
use crate::error::Result;
use crate::key::MasterKey;

/// Seals the value of version `version_id` of secret `secret` under `master`.
///
/// # Errors
/// As [`seal`]: [`crate::Error::Crypto`] only if the RNG or crypto library fails.
pub fn seal_version(
    master: &MasterKey,
    secret: &str,
    version_id: &str,
    plaintext: &[u8],
) -> Result<Sealed> {
    seal(master, &Aad::new(secret, version_id), plaintext)
}

/// Opens the stored bytes ([`Sealed::to_bytes`]) of version `version_id` of secret
/// `secret` with whichever of `keys` wrapped it (during a master-key rotation a store holds
/// both the new and the old key).
///
/// # Errors
/// [`crate::Error::Malformed`] for bytes that are not a sealed record; otherwise as
/// [`open_any`] ([`crate::Error::WrongMasterKey`] when no key has the record's key id,
/// [`crate::Error::Tampered`] when it does not authenticate for this secret and version).
pub fn open_version(
    keys: &[&MasterKey],
    secret: &str,
    version_id: &str,
    sealed: &[u8],
) -> Result<SecretBytes> {
    let sealed = Sealed::from_bytes(sealed)?;
    open_any(keys, &Aad::new(secret, version_id), &sealed)
}

/// Rewraps the stored bytes of version `version_id` of secret `secret` from `old` to
/// `new` (master-key rotation); the value ciphertext is kept.
///
/// # Errors
/// [`crate::Error::Malformed`] for bytes that are not a sealed record; otherwise as
/// [`rewrap`].
pub fn rewrap_version(
    old: &MasterKey,
    new: &MasterKey,
    secret: &str,
    version_id: &str,
    sealed: &[u8],
) -> Result<Sealed> {
    let sealed = Sealed::from_bytes(sealed)?;
    rewrap(old, new, &Aad::new(secret, version_id), &sealed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::open;
    use crate::error::Error;

    const SECRET: &str = "prod/db/password";
    const ID: &str = "0194f0b8-7d2e-7c1a-9b3e-1f2a3b4c5d6e";

    #[test]
    fn a_version_is_the_record_sealed_for_its_name_and_id() {
        let k = MasterKey::generate().unwrap();
        let sealed = seal_version(&k, SECRET, ID, b"hunter2").unwrap();
        // The format is the one stores have always written: `open` with the same Aad reads it.
        let plain = open(&k, &Aad::new(SECRET, ID), &sealed).unwrap();
        assert_eq!(plain.expose_secret(), b"hunter2");
        // ... and a record sealed the old way opens as a version.
        let old_way = seal(&k, &Aad::new(SECRET, ID), b"v1").unwrap();
        let plain = open_version(&[&k], SECRET, ID, &old_way.to_bytes()).unwrap();
        assert_eq!(plain.expose_secret(), b"v1");
    }

    #[test]
    fn opens_only_for_its_own_name_and_id() {
        let k = MasterKey::generate().unwrap();
        let bytes = seal_version(&k, SECRET, ID, b"v").unwrap().to_bytes();
        for (secret, id) in [(ID, SECRET), ("prod/db/other", ID), (SECRET, "other")] {
            let err = open_version(&[&k], secret, id, &bytes).unwrap_err();
            assert!(matches!(err, Error::Tampered), "{secret} {id}: {err:?}");
        }
        let err = open_version(&[&k], SECRET, ID, b"not a record").unwrap_err();
        assert!(matches!(err, Error::Malformed { .. }), "{err:?}");
    }

    #[test]
    fn rewrap_moves_a_version_to_the_new_key() {
        let (old, new) = (
            MasterKey::generate().unwrap(),
            MasterKey::generate().unwrap(),
        );
        let bytes = seal_version(&old, SECRET, ID, b"v").unwrap().to_bytes();
        let moved = rewrap_version(&old, &new, SECRET, ID, &bytes).unwrap();
        assert_eq!(moved.key_id, new.key_id());
        let plain = open_version(&[&new], SECRET, ID, &moved.to_bytes()).unwrap();
        assert_eq!(plain.expose_secret(), b"v");
        let err = rewrap_version(&old, &new, "prod/db/other", ID, &bytes).unwrap_err();
        assert!(matches!(err, Error::Tampered), "{err:?}");
    }
}
