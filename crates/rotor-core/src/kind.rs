//! Kinds: how a secret is rotated. Each kind has one rotator implementation.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How a secret is rotated. Kinds whose rotator is not built into this binary still parse,
/// so an inventory can list them before rotor can rotate them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A random string from the OS CSPRNG (session secrets, peppers).
    Random,
    /// A JWT signing key (HMAC secret or asymmetric key pair) published in a keyring.
    Jwt,
    /// A PostgreSQL login password.
    Postgres,
    /// A Redis ACL user's password.
    Redis,
    /// A value only an operator can produce (vendor API keys, OAuth client secrets).
    Manual,
    /// An external executable speaking rotor's JSON step protocol.
    Command,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Random,
        Kind::Jwt,
        Kind::Postgres,
        Kind::Redis,
        Kind::Manual,
        Kind::Command,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Random => "random",
            Kind::Jwt => "jwt",
            Kind::Postgres => "postgres",
            Kind::Redis => "redis",
            Kind::Manual => "manual",
            Kind::Command => "command",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
