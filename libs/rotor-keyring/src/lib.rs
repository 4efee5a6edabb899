//! # rotor-keyring
//!
//! Sign and verify JWTs across key rotations. A service embeds this crate instead of
//! "try the current key, then the previous one" code: every key has a `kid`, a
//! rotation [`Stage`] (`pending` → `current` → `previous`) and an algorithm pinned to
//! it, and a token is verified with exactly the one key its `kid` names.
//!
//! * [`KeyMaterial`] — one key (generation, stored JSON form, public JWK).
//! * [`KeyringDocument`] — all keys with stages and `not_after`; what rotor builds and
//!   `rotor keyring --reveal` prints. [`Jwks`] — the public part, for `rotor jwks`.
//! * [`Keyring`] — immutable snapshot: [`Keyring::sign`] with `current`,
//!   [`Keyring::verify`] by kid.
//! * [`KeyringHandle`] — shared, reloadable holder for services, fed by a [`Source`]
//!   ([`FileSource`]; `HttpSource` with the `http` feature).
//!
//! ```
//! use rotor_keyring::{Algorithm, KeyMaterial, Keyring, KeyringDocument, Stage, Timestamp};
//!
//! let old = KeyMaterial::generate(Algorithm::EdDSA, None)?;
//! let new = KeyMaterial::generate(Algorithm::EdDSA, None)?;
//! let doc = KeyringDocument::new()
//!     .with(new, Stage::Current, None)
//!     .with(old, Stage::Previous, Some(Timestamp::now() + jiff::SignedDuration::from_hours(1)));
//! let ring = Keyring::from_document(&doc)?;
//! let token = ring.sign(&serde_json::json!({"sub": "svc", "exp": 4102444800u64}))?;
//! let claims = ring.verify(&token)?;
//! assert_eq!(claims.stage, Stage::Current);
//! assert_eq!(doc.jwks().keys.len(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Crypto is done by `jsonwebtoken` (sign/verify) on `aws-lc-rs` (key generation,
//! randomness); nothing here implements a primitive.
//!
//! ## What this protects against
//! * **Algorithm confusion**: the algorithm is a property of the key, fixed when the key
//!   is created or loaded. The header `alg` must equal it or the token is rejected, so
//!   `alg:none`, HS256-signed-with-the-RSA/EC-public-key, and unknown algorithms fail
//!   before any signature check.
//! * **Key-selection ambiguity**: lookup is by exact `kid`; a token without `kid` is only
//!   accepted when the keyring holds exactly one key. No "try every key" loop, so a
//!   token signed by `previous` costs the same as one signed by `current`.
//! * **Stale keys**: `previous` keys stop verifying after `not_after`; `pending` keys
//!   verify but never sign.
//! * **Resource abuse by input**: token length and kid length are bounded before
//!   parsing; `crit` headers are refused; unknown kids trigger at most one reload per
//!   cooldown in a [`KeyringHandle`], however many requests carry them.
//! * **Secret leakage through logs**: secrets are held in `secrecy`/`zeroize` types,
//!   `Debug` is redacted, no `Display` exists for secret-bearing types, errors never
//!   include key bytes. HMAC keys never appear in a JWKS.
//!
//! ## What it does NOT protect against
//! * A compromised host or memory disclosure: keys are in process memory while in use
//!   (zeroization on drop is best effort; copies made by serde/JSON parsing or by
//!   `jsonwebtoken` internals are outside our control).
//! * Token replay or revocation: a valid token stays valid until `exp`; there is no
//!   `jti` tracking. Keep `exp` short.
//! * Authorization: `iss`/`aud` are only checked if you configure them in
//!   [`VerifyOptions`]; what the claims *mean* is up to the caller.
//! * Clock attacks: time checks trust the local clock (plus leeway).
//! * The integrity of the keyring source: whoever can write the file or serve the URL
//!   a [`KeyringHandle`] loads from can install keys. Protect that channel (file
//!   permissions, HTTPS).
//! * Side channels below `jsonwebtoken`/`aws-lc-rs` (HMAC comparison is done there).

mod alg;
mod document;
mod error;
mod handle;
#[cfg(feature = "http")]
mod http;
mod keyring;
mod material;

pub use alg::Algorithm;
pub use document::{Jwks, KeyringDocument, KeyringEntry, Stage};
pub use error::{KeyError, SignError, SourceError, VerifyError};
pub use handle::{
    FileSource, HandleOptions, KeyringHandle, MAX_SOURCE_BYTES, RefreshOutcome, Source,
};
#[cfg(feature = "http")]
pub use http::HttpSource;
pub use keyring::{
    Claims, DEFAULT_MAX_TOKEN_LEN, Keyring, MAX_KID_LEN, VerifiedJws, VerifyOptions,
};
pub use material::{DEFAULT_RSA_BITS, KeyMaterial, PublicJwk};

/// Re-exported for implementing [`Source`].
pub use async_trait::async_trait;
/// Re-exported so callers can construct `not_after` values without adding the dependency.
pub use jiff::Timestamp;
/// Re-exported so callers can read secrets ([`secrecy::ExposeSecret`]).
pub use secrecy;
