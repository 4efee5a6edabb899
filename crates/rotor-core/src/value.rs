//! [`SecretValue`]: the one type in rotor that holds secret bytes.
//!
//! It wraps `secrecy::SecretBox`, so the bytes are zeroized on drop, `Debug` prints
//! `SecretValue(<redacted>, N bytes)`, and there is no `Display` and no `Serialize`. Reading
//! the bytes takes an explicit [`SecretValue::expose`] call, so `rg expose` lists every place
//! a value is touched.

use std::fmt;

use secrecy::{ExposeSecret, SecretBox};
use subtle::ConstantTimeEq;

/// Secret bytes. Cloning copies into a new zeroizing allocation.
pub struct SecretValue(SecretBox<[u8]>);

impl SecretValue {
    /// Takes ownership of `bytes`; the vector's allocation is the one that will be zeroized.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(SecretBox::new(bytes.into_boxed_slice()))
    }

    /// Copies `bytes` into a new value.
    pub fn from_slice(bytes: &[u8]) -> Self {
        Self::new(bytes.to_vec())
    }

    /// The secret bytes. Call it in the expression that needs them, never to keep a copy.
    pub fn expose(&self) -> &[u8] {
        self.0.expose_secret()
    }

    /// The bytes as UTF-8, for kinds whose values are text (passwords, tokens, JSON).
    pub fn expose_str(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(self.expose())
    }

    pub fn len(&self) -> usize {
        self.expose().len()
    }

    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }

    /// Constant-time equality, so comparing a guess against a value leaks no prefix length.
    pub fn ct_eq(&self, other: &SecretValue) -> bool {
        self.expose().ct_eq(other.expose()).into()
    }
}

impl Clone for SecretValue {
    fn clone(&self) -> Self {
        Self::from_slice(self.expose())
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretValue(<redacted>, {} bytes)", self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_bytes() {
        let v = SecretValue::from_slice(b"hunter2-very-secret");
        let shown = format!("{v:?} {:?}", Some(v.clone()));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("19 bytes"));
    }

    #[test]
    fn ct_eq_compares_content() {
        let a = SecretValue::from_slice(b"abc");
        assert!(a.ct_eq(&SecretValue::from_slice(b"abc")));
        assert!(!a.ct_eq(&SecretValue::from_slice(b"abd")));
        assert!(!a.ct_eq(&SecretValue::from_slice(b"ab")));
    }
}
