//! [`AuditKey`]: the key that authenticates the audit log's anchor, derived from the master
//! key with HKDF-SHA256 (aws-lc-rs), so that whoever holds only the store file (or a copy of
//! it) cannot write an anchor that verifies.
//!
//! Why derived, not stored: a key kept in the store would be readable by exactly the attacker
//! it is meant to stop. Why a separate key: the master key itself is never used for two
//! purposes (HKDF's `info` separates them).

use aws_lc_rs::{hkdf, hmac};

use crate::MasterKey;

const SALT: &[u8] = b"rotor audit";
const INFO: &[u8] = b"rotor audit anchor v1";

/// HMAC-SHA256 key for audit anchors. No `Debug` of the key bytes (aws-lc keeps them).
pub struct AuditKey {
    key: hmac::Key,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(<redacted>)")
    }
}

impl AuditKey {
    /// Derives the audit key of `master`.
    pub fn derive(master: &MasterKey) -> Self {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(master.secret_bytes());
        let key = prk
            .expand(&[INFO], hmac::HMAC_SHA256)
            .map(hmac::Key::from)
            // expand fails only for outputs longer than 255 hash lengths; 32 bytes never is.
            .unwrap_or_else(|_| hmac::Key::new(hmac::HMAC_SHA256, INFO));
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
#[allow(clippy::unwrap_used)]
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
    }
}
