//! Error types. Each operation has its own error so callers can match on what
//! actually can go wrong there (a verifier never sees a key-generation error).

use crate::Algorithm;

/// Errors from creating, parsing or validating key material and keyring documents.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The operating system's CSPRNG or the crypto library failed to produce a key.
    #[error("key generation failed: {0}")]
    Generation(&'static str),
    /// A parameter does not fit the algorithm (e.g. RSA bits for an HMAC key).
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    /// The JSON could not be parsed into the expected shape.
    #[error("malformed JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The key material itself is unusable (bad encoding, wrong length, mismatched public part).
    #[error("invalid key material for kid {kid:?}: {reason}")]
    InvalidKey {
        /// The kid of the offending key (kids are public identifiers, safe to print).
        kid: String,
        /// What is wrong, never including secret bytes.
        reason: String,
    },
    /// The algorithm string is not one this crate supports.
    #[error("unsupported algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// A keyring document breaks an invariant (two `current` keys, duplicate kid, ...).
    #[error("invalid keyring document: {0}")]
    InvalidDocument(String),
    /// A JWKS contained private key parameters; refusing to treat it as a public key set.
    #[error("JWKS entry {kid:?} contains private key parameters; refusing to load it")]
    PrivateMaterialInJwks {
        /// kid of the offending JWK (may be empty when it has none).
        kid: String,
    },
}

/// Errors from [`crate::Keyring::sign`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The keyring has no `current` key with private material (e.g. it was loaded from a JWKS).
    #[error("the keyring has no current key that can sign")]
    NoSigningKey,
    /// The claims could not be serialized to JSON.
    #[error("claims could not be serialized: {0}")]
    Claims(#[from] serde_json::Error),
    /// The underlying JWT library failed to sign.
    #[error("signing failed: {0}")]
    Jwt(#[from] jsonwebtoken::errors::Error),
}

/// Why a token was rejected. Variants are deliberately specific so services can log and
/// count them; none of them carry secret material. Only the kid and algorithm name
/// (both attacker-chosen, already bounded in length) may be echoed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The token is longer than [`crate::VerifyOptions::max_token_len`].
    #[error("token is too large ({len} bytes, limit {limit})")]
    TokenTooLarge {
        /// Actual length in bytes.
        len: usize,
        /// Configured limit.
        limit: usize,
    },
    /// Not a compact JWS (three base64url parts), or the header/claims are not valid JSON objects.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The header has no `kid` and the keyring holds more than one key.
    #[error("token has no kid and the keyring holds more than one key")]
    MissingKid,
    /// The header `kid` is longer than [`crate::MAX_KID_LEN`].
    #[error("kid is too long ({0} bytes)")]
    KidTooLong(usize),
    /// No key in the keyring has this kid.
    #[error("unknown kid {0:?}")]
    UnknownKid(String),
    /// The header `alg` differs from the algorithm pinned to the key (includes `none`).
    #[error("algorithm mismatch: key is pinned to {expected}, token says {found:?}")]
    AlgorithmMismatch {
        /// The algorithm the key is pinned to.
        expected: Algorithm,
        /// What the token header claimed (truncated to 32 bytes).
        found: String,
    },
    /// The header carries a `crit` parameter; no extensions are understood (RFC 7515 §4.1.11).
    #[error("token header has unsupported critical parameters")]
    UnsupportedCritical,
    /// The signature does not verify with the selected key.
    #[error("bad signature")]
    BadSignature,
    /// The key that signed the token was retired (`previous` past its `not_after`).
    #[error("key {0:?} is retired")]
    KeyRetired(String),
    /// `exp` is in the past (beyond leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (beyond leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// `iat` is in the future (beyond leeway).
    #[error("token issued in the future")]
    IssuedInFuture,
    /// A claim that is required by the options is absent.
    #[error("missing required claim {0:?}")]
    MissingClaim(&'static str),
    /// A registered claim has the wrong JSON type.
    #[error("invalid claim {0:?}")]
    InvalidClaim(&'static str),
    /// `iss` is not one of the accepted issuers.
    #[error("issuer not accepted")]
    InvalidIssuer,
    /// `aud` does not contain an accepted audience.
    #[error("audience not accepted")]
    InvalidAudience,
    /// The claims verified but could not be deserialized into the caller's type.
    #[error("claims do not match the requested type: {0}")]
    ClaimsType(String),
}

/// Errors from a [`crate::Source`] or from loading a keyring through one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// Reading the file failed.
    #[error("reading {path}: {source}")]
    Io {
        /// The path that was read.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The fetched document is not a valid keyring document or JWKS.
    #[error("invalid keyring data: {0}")]
    Key(#[from] KeyError),
    /// The HTTP fetch failed (transport error or non-success status).
    #[error("HTTP fetch failed: {0}")]
    Http(String),
    /// The fetched body exceeded the configured size limit.
    #[error("keyring data too large ({0} bytes)")]
    TooLarge(usize),
    /// Anything else a custom source wants to report.
    #[error("{0}")]
    Other(String),
}
