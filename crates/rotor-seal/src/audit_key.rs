//! [`AuditKey`]: the keys that authenticate the audit log, derived from the master key with
//! HKDF-SHA256 (aws-lc-rs): one for the anchor file ([`AuditKey::derive`]) and one for the
//! MAC every record carries ([`AuditKey::for_records`]), so that whoever holds only the store
//! file (or a copy of it) can neither write an anchor that verifies nor forge a record.
//!
//! Why derived, not stored: a key kept in the store would be readable by exactly the attacker
//! it is meant to stop. Why a separate key: the master key itself is never used for two
//! purposes (HKDF's `info` separates them).

use aws_lc_rs::{hkdf, hmac};

use crate::MasterKey;

const SALT: &[u8] = b"rotor audit";
const INFO: &[u8] = b"rotor audit anchor v1";
const RECORDS_INFO: &[u8] = b"rotor audit records v1";

/// HMAC-SHA256 key for the audit anchor or the audit records. No `Debug` of the key bytes
/// (aws-lc keeps them).
pub struct AuditKey {
    key: hmac::Key,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(<redacted>)")
    }
}

impl AuditKey {
    /// Derives the anchor key of `master`.
    pub fn derive(master: &MasterKey) -> Self {
        Self::derive_for(master, INFO)
    }

    /// Derives the key of the MAC each audit record carries (`rotor_core::audit`). A key of
    /// its own (another HKDF `info`), so an anchor tag can never pass as a record MAC.
    pub fn for_records(master: &MasterKey) -> Self {
        Self::derive_for(master, RECORDS_INFO)
    }

    fn derive_for(master: &MasterKey, info: &'static [u8]) -> Self {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(master.secret_bytes());
        let key = prk
            .expand(&[info], hmac::HMAC_SHA256)
            .map(hmac::Key::from)
            // expand fails only for outputs longer than 255 hash lengths; 32 bytes never is.
            .unwrap_or_else(|_| hmac::Key::new(hmac::HMAC_SHA256, info));
        Self { key }
    }

    /// The tag of `data`, lowercase hex.
    pub fn tag(&self, data: &[u8]) -> String {
        hex::encode(hmac::sign(&self.key, data).as_ref())
    }

    /// Whether `tag_hex` is the tag of `data` (constant-time comparison).
    pub fn verify(&self, data: &[u8], tag_hex: &str) -> bool {
        match hex::decode(tag_hex) {
            Ok(tag) => hmac::verify(&self.key, data, &tag).is_ok(),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_verify_only_under_the_same_master_key() {
        let a = MasterKey::generate().unwrap();
        let b = MasterKey::generate().unwrap();
        let ka = AuditKey::derive(&a);
        let tag = ka.tag(b"12:abcd");
        assert_eq!(tag.len(), 64);
        assert!(ka.verify(b"12:abcd", &tag));
        assert!(AuditKey::derive(&a).verify(b"12:abcd", &tag), "stable");
        assert!(!ka.verify(b"13:abcd", &tag));
        assert!(!AuditKey::derive(&b).verify(b"12:abcd", &tag));
        assert!(!ka.verify(b"12:abcd", "zz"));
        assert_ne!(format!("{ka:?}"), tag);
        let records = AuditKey::for_records(&a);
        assert!(
            !records.verify(b"12:abcd", &tag),
            "records key differs from the anchor's"
        );
        assert!(records.verify(b"12:abcd", &records.tag(b"12:abcd")));
    }
}
