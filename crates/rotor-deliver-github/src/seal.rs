//! libsodium's `crypto_box_seal` for GitHub's secrets API, through the `crypto_box` crate
//! (RustCrypto, `seal` feature): an ephemeral X25519 key, XSalsa20-Poly1305, the nonce
//! derived with BLAKE2b as libsodium does. Only the repository's private key (GitHub's)
//! opens it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use crypto_box::PublicKey;
use crypto_box::aead::OsRng;
use rotor_core::SecretValue;

use crate::GithubError;

/// GitHub's public key for a repository or environment: `key_id` and the base64 key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoKey {
    /// GitHub's id of the key, sent back with every encrypted value.
    pub key_id: String,
    key: PublicKey,
}

impl RepoKey {
    /// Parses the `key` field of GitHub's public-key answer (base64 of 32 bytes).
    pub fn new(key_id: impl Into<String>, key_base64: &str) -> Result<RepoKey, GithubError> {
        let bytes = STANDARD.decode(key_base64.trim()).map_err(|_| {
            GithubError::permanent(
                "GitHub's public key is not base64",
                "report this: the API answered something unexpected",
            )
        })?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| {
            GithubError::permanent(
                "GitHub's public key is not 32 bytes (X25519)",
                "report this: the API answered something unexpected",
            )
        })?;
        Ok(RepoKey {
            key_id: key_id.into(),
            key: PublicKey::from(bytes),
        })
    }

    /// `value` sealed for this key, base64: the `encrypted_value` GitHub expects.
    pub fn seal(&self, value: &SecretValue) -> Result<String, GithubError> {
        let sealed = self.key.seal(&mut OsRng, value.expose()).map_err(|_| {
            GithubError::permanent("sealing a value failed", "report this: crypto_box refused")
        })?;
        Ok(STANDARD.encode(sealed))
    }
}
