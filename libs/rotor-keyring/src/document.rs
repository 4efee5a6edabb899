//! Keyring documents (all keys with their rotation stage) and JWKS (public keys only).

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::material::EntryWire;
use crate::{KeyError, KeyMaterial, PublicJwk};

/// Where a key is in its rotation lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Stage {
    /// Published and accepted for verification, but never used to sign. Lets verifiers
    /// learn a key before the signer switches to it.
    Pending,
    /// The one key that signs. At most one per keyring.
    Current,
    /// Former current key: still verifies until its `not_after`, never signs.
    Previous,
}

impl Stage {
    /// The JSON name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Stage::Pending => "pending",
            Stage::Current => "current",
            Stage::Previous => "previous",
        }
    }
}

/// One key in a [`KeyringDocument`].
#[derive(Debug, Clone)]
pub struct KeyringEntry {
    /// The key itself.
    pub material: KeyMaterial,
    /// Its rotation stage.
    pub stage: Stage,
    /// After this instant the key no longer verifies (meant for `previous` keys; honoured
    /// for any stage). `None`: no limit.
    pub not_after: Option<jiff::Timestamp>,
}

/// The full keyring as JSON: `{"keys":[{kid, alg, stage, not_after, ...material}]}`.
///
/// This is what rotor builds from stored secret versions and what
/// `rotor keyring --reveal` prints; it contains secrets (HMAC keys, private keys).
#[derive(Debug, Clone, Default)]
pub struct KeyringDocument {
    /// The entries, in the order they were given.
    pub keys: Vec<KeyringEntry>,
}

#[derive(Serialize, Deserialize)]
struct DocumentWire {
    keys: Vec<EntryWire>,
}

impl KeyringDocument {
    /// An empty document.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an entry (builder style). Invariants are checked by [`Self::validate`].
    pub fn with(
        mut self,
        material: KeyMaterial,
        stage: Stage,
        not_after: Option<jiff::Timestamp>,
    ) -> Self {
        self.keys.push(KeyringEntry {
            material,
            stage,
            not_after,
        });
        self
    }

    /// Checks the invariants: at least one key, at most one `current`, unique kids.
    pub fn validate(&self) -> Result<(), KeyError> {
        if self.keys.is_empty() {
            return Err(KeyError::InvalidDocument("no keys".into()));
        }
        let currents = self
            .keys
            .iter()
            .filter(|e| e.stage == Stage::Current)
            .count();
        if currents > 1 {
            return Err(KeyError::InvalidDocument(format!(
                "{currents} keys are current; at most one may be"
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for e in &self.keys {
            if !seen.insert(e.material.kid()) {
                return Err(KeyError::InvalidDocument(format!(
                    "duplicate kid {:?}",
                    e.material.kid()
                )));
            }
        }
        Ok(())
    }

    /// The `current` entry, if any.
    pub fn current(&self) -> Option<&KeyringEntry> {
        self.keys.iter().find(|e| e.stage == Stage::Current)
    }

    /// Serializes the document (with secrets) as compact JSON in a zeroizing buffer.
    pub fn to_json(&self) -> Zeroizing<String> {
        Zeroizing::new(
            serde_json::to_string(&self.to_wire())
                .expect("serializing plain strings to JSON cannot fail"),
        )
    }

    /// Pretty-printed variant of [`Self::to_json`], for humans (`--reveal`).
    pub fn to_json_pretty(&self) -> Zeroizing<String> {
        Zeroizing::new(
            serde_json::to_string_pretty(&self.to_wire())
                .expect("serializing plain strings to JSON cannot fail"),
        )
    }

    fn to_wire(&self) -> DocumentWire {
        DocumentWire {
            keys: self
                .keys
                .iter()
                .map(|e| e.material.to_wire(Some(e.stage), Some(e.not_after)))
                .collect(),
        }
    }

    /// Parses and validates a document.
    pub fn from_json(json: &str) -> Result<Self, KeyError> {
        Self::from_slice(json.as_bytes())
    }

    /// Parses and validates a document from bytes.
    pub fn from_slice(json: &[u8]) -> Result<Self, KeyError> {
        let wire: DocumentWire = serde_json::from_slice(json)?;
        let mut keys = Vec::with_capacity(wire.keys.len());
        for w in wire.keys {
            let kid = w.kid.clone();
            let (material, stage, not_after) = KeyMaterial::from_wire(w)?;
            let stage = stage
                .ok_or_else(|| KeyError::InvalidDocument(format!("entry {kid:?} has no stage")))?;
            keys.push(KeyringEntry {
                material,
                stage,
                not_after: not_after.flatten(),
            });
        }
        let doc = Self { keys };
        doc.validate()?;
        Ok(doc)
    }

    /// The public JWKS: every asymmetric key (pending, current, previous). HMAC keys
    /// are secrets and are never included.
    pub fn jwks(&self) -> Jwks {
        Jwks {
            keys: self
                .keys
                .iter()
                .filter_map(|e| e.material.public_jwk().cloned())
                .collect(),
        }
    }
}

/// A JSON Web Key Set (RFC 7517 §5): `{"keys":[<public JWK>...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Jwks {
    /// The public keys.
    pub keys: Vec<PublicJwk>,
}

/// A JWK as found in the wild: public members plus markers for private ones.
#[derive(Deserialize)]
struct RawJwk {
    #[serde(flatten)]
    public: PublicJwkLoose,
    #[serde(default)]
    d: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    p: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    k: Option<serde::de::IgnoredAny>,
}

/// Like [`PublicJwk`] but lenient about `kty` so unknown key types can be skipped.
#[derive(Deserialize)]
struct PublicJwkLoose {
    #[serde(default)]
    kty: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(rename = "use", default)]
    use_: Option<String>,
}

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<RawJwk>,
}

impl Jwks {
    /// Serializes as compact JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("serializing plain strings to JSON cannot fail")
    }

    /// Pretty JSON, for `rotor jwks`.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("serializing plain strings to JSON cannot fail")
    }

    /// Parses a JWKS leniently, as RFC 7517 §5 asks: keys of unknown type or
    /// algorithm, symmetric (`oct`) keys and keys whose `use` is not `sig` are skipped.
    /// A key that claims a supported type but is invalid is an error, and so is any
    /// private parameter (`d`, `p`, `k`): a JWKS endpoint that leaks private keys is
    /// a misconfiguration worth failing loudly on.
    pub fn from_slice(json: &[u8]) -> Result<Self, KeyError> {
        let raw: RawJwks = serde_json::from_slice(json)?;
        let mut keys = Vec::with_capacity(raw.keys.len());
        for r in raw.keys {
            let p = r.public;
            if r.d.is_some() || r.p.is_some() || r.k.is_some() {
                return Err(KeyError::PrivateMaterialInJwks {
                    kid: p.kid.unwrap_or_default(),
                });
            }
            let Some(kty) = p.kty else { continue };
            if p.use_.as_deref().is_some_and(|u| u != "sig") {
                continue;
            }
            let jwk = PublicJwk {
                kty,
                crv: p.crv,
                x: p.x,
                y: p.y,
                n: p.n,
                e: p.e,
                kid: p.kid,
                alg: p.alg,
                use_: p.use_,
            };
            // Unknown kty/crv/alg: skip. Known but broken: error.
            let Ok(alg) = jwk.algorithm() else { continue };
            if let Some(kid) = &jwk.kid {
                crate::material::check_kid(kid)?;
            }
            jwk.decoding_key(alg)?;
            keys.push(jwk);
        }
        Ok(Self { keys })
    }

    /// [`Self::from_slice`] on a string.
    pub fn from_json(json: &str) -> Result<Self, KeyError> {
        Self::from_slice(json.as_bytes())
    }
}
