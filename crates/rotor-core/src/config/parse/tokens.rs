//! `[[tokens]]`: API tokens, by the SHA-256 of the token, with their scopes.

use toml_edit::Item;

use super::Walker;
use crate::config::tokens::{Scope, TokenSpec};

pub(super) const TOKEN_KEYS: &[&str] = &["name", "sha256", "scopes"];

impl Walker<'_> {
    pub(super) fn tokens(&mut self, root: &toml_edit::Table) -> Vec<TokenSpec> {
        let mut out: Vec<TokenSpec> = Vec::new();
        for t in self.tables(root, "tokens") {
            self.unknown_keys(t, TOKEN_KEYS, "[[tokens]]");
            let span = t.get("name").and_then(Item::span).unwrap_or(0..0);
            let name = self.string(t, "name").map(|(s, _)| s);
            let sha = self.string(t, "sha256");
            let scopes = self.strings(t, "scopes");
            let (Some(name), Some((sha, sha_span)), Some(scopes)) = (name, sha, scopes) else {
                self.error(
                    span,
                    "a token needs `name`, `sha256` and `scopes`".into(),
                    Some("paste the lines `rotor token new NAME --scope ...` printed".into()),
                );
                continue;
            };
            if sha.len() != 64 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
                self.error(
                    sha_span,
                    format!("token {name:?}: `sha256` must be 64 hex characters"),
                    Some(
                        "paste the hash `rotor token new` printed (never the token itself)".into(),
                    ),
                );
                continue;
            }
            let mut parsed = Vec::new();
            for s in &scopes {
                match Scope::parse(s) {
                    Ok(sc) => parsed.push(sc),
                    Err(e) => self.error(
                        t.get("scopes").and_then(Item::span).unwrap_or(0..0),
                        format!("token {name:?}: {e}"),
                        None,
                    ),
                }
            }
            if out.iter().any(|o| o.name == name) {
                self.error(
                    span.clone(),
                    format!("duplicate token name {name:?}"),
                    Some("give each token its own name".into()),
                );
            }
            out.push(TokenSpec {
                name,
                sha256: sha.to_ascii_lowercase(),
                scopes: parsed,
            });
        }
        out
    }
}
