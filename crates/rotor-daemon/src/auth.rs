//! API tokens: the config holds the SHA-256 (hex) of each token; a presented token is hashed
//! and compared in constant time against every configured hash (no early exit), so timing
//! says nothing about which token or how many bytes matched.
//!
//! Scopes: `view:GLOB` sees metadata, `read:GLOB` reads values, `rotate:GLOB` starts
//! ordinary rotations, `confirm:GLOB` rotates secrets marked `requires_confirmation`,
//! `emergency:GLOB` starts emergency rotations, `write:GLOB` stores values, `admin` does
//! everything (including the audit log). A token sees the metadata of exactly the secrets one
//! of its scopes matches; other secrets answer as if they did not exist.

use base64::Engine as _;
use rotor_core::config::{Scope, ScopeAction, TokenSpec};
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::{DaemonError, Result};

/// A caller authenticated by its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name from the config (recorded in audit reasons).
    pub name: String,
    pub scopes: Vec<Scope>,
}

impl Caller {
    /// Whether the token may do `action` on `secret`.
    pub fn allows(&self, action: ScopeAction, secret: &str) -> bool {
        self.scopes.iter().any(|s| s.allows(action, secret))
    }

    /// Whether the token may see that `secret` exists (any of its scopes matches it).
    pub fn sees(&self, secret: &str) -> bool {
        self.allows(ScopeAction::View, secret)
    }

    pub fn is_admin(&self) -> bool {
        self.scopes.iter().any(|s| s.action == ScopeAction::Admin)
    }
}

/// The configured tokens, hashes decoded once.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    entries: Vec<([u8; 32], Caller)>,
}

impl Tokens {
    pub fn new(specs: &[TokenSpec]) -> Self {
        let entries = specs
            .iter()
            .filter_map(|t| {
                let bytes = hex::decode(&t.sha256).ok()?;
                let hash: [u8; 32] = bytes.try_into().ok()?;
                Some((
                    hash,
                    Caller {
                        name: t.name.clone(),
                        scopes: t.scopes.clone(),
                    },
                ))
            })
            .collect();
        Self { entries }
    }

    /// The caller whose token this is, if any. Every configured hash is compared.
    pub fn verify(&self, token: &str) -> Option<&Caller> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = subtle::Choice::from(0u8);
        let mut index = 0u64;
        for (i, (hash, _)) in self.entries.iter().enumerate() {
            let eq = digest.ct_eq(hash);
            index.conditional_assign(&(i as u64), eq);
            found |= eq;
        }
        if bool::from(found) {
            self.entries
                .get(usize::try_from(index).ok()?)
                .map(|(_, c)| c)
        } else {
            None
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Makes a new API token for `rotor token new NAME --scope ...`.
///
/// Returns `(token, toml)`: the token (`rtr_` + 32 random bytes from the OS CSPRNG, base64url
/// without padding), to print once and never store; and the `[[tokens]]` lines to paste into
/// the config, which hold only its SHA-256.
pub fn new_token(name: &str, scopes: &[String]) -> Result<(String, String)> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
    {
        return Err(DaemonError::Invalid(format!(
            "token name {name:?}: use letters, digits, '.', '_', '-' and '@'"
        )));
    }
    if scopes.is_empty() {
        return Err(DaemonError::Invalid(
            "a token needs at least one scope, e.g. --scope read:jwt-* or --scope admin".into(),
        ));
    }
    for s in scopes {
        Scope::parse(s).map_err(DaemonError::Invalid)?;
    }
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(bytes.as_mut())
        .map_err(|e| DaemonError::Invalid(format!("the OS random generator failed: {e}")))?;
    let token = format!(
        "rtr_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_ref())
    );
    let hash = hex::encode(Sha256::digest(token.as_bytes()));
    let scopes_toml: Vec<String> = scopes.iter().map(|s| format!("{s:?}")).collect();
    let toml = format!(
        "[[tokens]]\nname = {name:?}\nsha256 = \"{hash}\"\nscopes = [{}]\n",
        scopes_toml.join(", ")
    );
    Ok((token, toml))
}

/// The SHA-256 hex of a token, as the config stores it.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_tokens_verify_and_round_trip_through_the_config() {
        let (token, toml) =
            new_token("ci", &["read:jwt-*".to_owned(), "rotate:*".to_owned()]).expect("token");
        assert!(token.starts_with("rtr_"));
        assert_eq!(token.len(), 4 + 43);
        assert!(!toml.contains(&token));
        let text = format!("[store]\nkind = \"sqlite\"\n{toml}");
        let cfg = rotor_core::config::parse(&text, std::path::Path::new("/tmp/x.toml"), &|_| None)
            .expect("the printed lines parse");
        let tokens = Tokens::new(&cfg.tokens);
        let caller = tokens.verify(&token).expect("valid");
        assert_eq!(caller.name, "ci");
        assert!(caller.allows(ScopeAction::Read, "jwt-signing"));
        assert!(!caller.allows(ScopeAction::Read, "database"));
        assert!(caller.allows(ScopeAction::Rotate, "database"));
        assert!(tokens.verify("rtr_nope").is_none());
        assert!(new_token("x", &[]).is_err());
        assert!(new_token("x", &["delete:*".into()]).is_err());
        let (other, _) = new_token("ci", &["admin".into()]).expect("token");
        assert_ne!(token, other);
    }
}
