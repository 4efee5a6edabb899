//! Secret names: the key everything else is indexed by.
//!
//! A name appears in file paths, URLs, metric labels, SQL rows and AWS secret ids, so it is
//! restricted to a charset that is safe in all of them without escaping.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest accepted name. AWS Secrets Manager allows 512 with a prefix; 128 leaves room.
pub const MAX_NAME_LEN: usize = 128;

/// A validated secret name: 1 to 128 characters of `[A-Za-z0-9._-]`, starting with a letter or digit.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct SecretName(String);

/// Why a string is not a valid [`SecretName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    #[error("a secret name cannot be empty")]
    Empty,
    #[error("secret name {name:?} is {len} characters long; the limit is {MAX_NAME_LEN}")]
    TooLong { name: String, len: usize },
    #[error(
        "secret name {name:?} contains {ch:?}; use letters, digits, '.', '_' and '-' only, starting with a letter or digit"
    )]
    BadChar { name: String, ch: char },
}

impl SecretName {
    /// Validates `s` as a secret name.
    pub fn new(s: &str) -> Result<Self, NameError> {
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        if s.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong {
                name: s.chars().take(MAX_NAME_LEN).collect(),
                len: s.len(),
            });
        }
        for (i, ch) in s.chars().enumerate() {
            let ok = ch.is_ascii_alphanumeric() || (i > 0 && matches!(ch, '.' | '_' | '-'));
            if !ok {
                return Err(NameError::BadChar {
                    name: s.to_owned(),
                    ch,
                });
            }
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl AsRef<str> for SecretName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for SecretName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl<'de> Deserialize<'de> for SecretName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_policy_names() {
        for n in [
            "jwt-signing",
            "database",
            "REFRESH_PEPPER",
            "sendgrid.api-key",
            "a",
        ] {
            assert_eq!(SecretName::new(n).expect(n).as_str(), n);
        }
    }

    #[test]
    fn rejects_unsafe_names() {
        assert_eq!(SecretName::new(""), Err(NameError::Empty));
        assert!(matches!(
            SecretName::new("-x"),
            Err(NameError::BadChar { ch: '-', .. })
        ));
        assert!(matches!(
            SecretName::new("a/b"),
            Err(NameError::BadChar { ch: '/', .. })
        ));
        assert!(matches!(
            SecretName::new("a b"),
            Err(NameError::BadChar { ch: ' ', .. })
        ));
        assert!(matches!(
            SecretName::new(&"x".repeat(129)),
            Err(NameError::TooLong { len: 129, .. })
        ));
    }
}
