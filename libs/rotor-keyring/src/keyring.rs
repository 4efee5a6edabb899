//! The immutable keyring snapshot: sign with `current`, verify by kid. The token's JWS layer
//! (parsing, key choice, signature, retirement) is checked in `jws.rs`, its claims in
//! `claims.rs`.

use std::collections::HashMap;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{DecodingKey, EncodingKey, Header};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

mod claims;
mod jws;

pub use claims::{Claims, DEFAULT_MAX_TOKEN_LEN, VerifiedJws, VerifyOptions};

use crate::{Algorithm, Jwks, KeyError, KeyringDocument, PublicJwk, SignError, Stage, VerifyError};
use claims::validate_claims;

/// Longest `kid` accepted, in bytes, both in key material and in token headers.
/// Bounds the work an attacker can make a lookup do and what ends up in logs.
pub const MAX_KID_LEN: usize = 256;

struct Slot {
    kid: Option<Box<str>>,
    alg: Algorithm,
    stage: Stage,
    /// Unix seconds after which the key no longer verifies.
    not_after: Option<i64>,
    decoding: DecodingKey,
    /// HMAC keys, set up once: `jsonwebtoken` would rebuild the HMAC key (hash the inner and
    /// outer pads) on every verify, which is a fifth of an HS256 verify's cost.
    hmac: Option<aws_lc_rs::hmac::Key>,
    public_jwk: Option<PublicJwk>,
}

/// An immutable set of keys. Cheap to share (`Arc<Keyring>`); build a new one to rotate.
pub struct Keyring {
    slots: Vec<Slot>,
    by_kid: HashMap<Box<str>, usize>,
    /// Signing key: kid and algorithm of the `current` slot with its encoding key.
    signer: Option<(Box<str>, Algorithm, EncodingKey)>,
    options: VerifyOptions,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut l = f.debug_list();
        for s in &self.slots {
            l.entry(&format_args!(
                "{} {} {}",
                s.kid.as_deref().unwrap_or("<no kid>"),
                s.alg,
                s.stage.as_str()
            ));
        }
        l.finish()
    }
}

fn now_unix() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        // Clock before 1970: treat as epoch; every real exp will look valid and the
        // operator has bigger problems.
        Err(_) => 0,
    }
}

impl Keyring {
    /// Builds a keyring from a validated document. Every key gets its verification key
    /// precomputed; the `current` key (if it has private material) becomes the signer.
    pub fn from_document(doc: &KeyringDocument) -> Result<Self, KeyError> {
        doc.validate()?;
        let mut ring = Self::empty();
        for e in &doc.keys {
            let m = &e.material;
            if e.stage == Stage::Current
                && let Some(enc) = m.encoding_key()?
            {
                ring.signer = Some((m.kid().into(), m.alg(), enc));
            }
            ring.push(Slot {
                kid: Some(m.kid().into()),
                alg: m.alg(),
                stage: e.stage,
                not_after: e.not_after.map(|t| t.as_second()),
                decoding: m.decoding_key()?,
                hmac: hmac_key(m),
                public_jwk: m.public_jwk().cloned(),
            })?;
        }
        Ok(ring)
    }

    /// A verify-only keyring from a JWKS. All keys are treated as `current`-equivalent
    /// for verification (stage reported as [`Stage::Current`]); none can sign.
    pub fn from_jwks(jwks: &Jwks) -> Result<Self, KeyError> {
        let mut ring = Self::empty();
        for jwk in &jwks.keys {
            let alg = jwk.algorithm()?;
            ring.push(Slot {
                kid: jwk.kid.as_deref().map(Into::into),
                alg,
                stage: Stage::Current,
                not_after: None,
                decoding: jwk.decoding_key(alg)?,
                hmac: None,
                public_jwk: Some(jwk.clone()),
            })?;
        }
        if ring.slots.is_empty() {
            return Err(KeyError::InvalidDocument(
                "JWKS has no usable signature keys".into(),
            ));
        }
        Ok(ring)
    }

    /// Parses either a keyring document or a JWKS (told apart by the presence of
    /// `stage` in the entries).
    pub fn from_slice(json: &[u8]) -> Result<Self, KeyError> {
        #[derive(Deserialize)]
        struct Probe {
            keys: Vec<ProbeEntry>,
        }
        #[derive(Deserialize)]
        struct ProbeEntry {
            #[serde(default)]
            stage: Option<serde::de::IgnoredAny>,
        }
        let probe: Probe = serde_json::from_slice(json)?;
        if probe.keys.iter().any(|e| e.stage.is_some()) {
            Self::from_document(&KeyringDocument::from_slice(json)?)
        } else {
            Self::from_jwks(&Jwks::from_slice(json)?)
        }
    }

    fn empty() -> Self {
        Self {
            slots: Vec::new(),
            by_kid: HashMap::new(),
            signer: None,
            options: VerifyOptions::default(),
        }
    }

    fn push(&mut self, slot: Slot) -> Result<(), KeyError> {
        let idx = self.slots.len();
        if let Some(kid) = &slot.kid
            && self.by_kid.insert(kid.clone(), idx).is_some()
        {
            return Err(KeyError::InvalidDocument(format!("duplicate kid {kid:?}")));
        }
        self.slots.push(slot);
        Ok(())
    }

    /// Replaces the claim-validation options (builder style).
    pub fn with_options(mut self, options: VerifyOptions) -> Self {
        self.options = options;
        self
    }

    /// The claim-validation options in force.
    pub fn options(&self) -> &VerifyOptions {
        &self.options
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when there are no keys (never the case for a successfully built keyring).
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// kid of the key `sign` uses, if any.
    pub fn current_kid(&self) -> Option<&str> {
        self.signer.as_ref().map(|(k, _, _)| &**k)
    }

    /// True if a key with this kid is present.
    pub fn contains_kid(&self, kid: &str) -> bool {
        self.by_kid.contains_key(kid)
    }

    /// kids and stages, in document order.
    pub fn keys(&self) -> impl Iterator<Item = (Option<&str>, Algorithm, Stage)> {
        self.slots
            .iter()
            .map(|s| (s.kid.as_deref(), s.alg, s.stage))
    }

    /// The public JWKS of all asymmetric keys (HMAC keys are never published).
    pub fn jwks(&self) -> Jwks {
        Jwks {
            keys: self
                .slots
                .iter()
                .filter_map(|s| s.public_jwk.clone())
                .collect(),
        }
    }

    /// Signs `claims` with the `current` key. The header carries `kid`, `typ: "JWT"`
    /// and the key's pinned `alg`. `pending` and `previous` keys never sign.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, SignError> {
        let (kid, alg, key) = self.signer.as_ref().ok_or(SignError::NoSigningKey)?;
        let mut header = Header::new(alg.to_jwt());
        header.kid = Some(kid.to_string());
        Ok(jsonwebtoken::encode(&header, claims, key)?)
    }

    /// Verifies a JWT and validates its registered claims against the current time.
    pub fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        self.verify_at(token, now_unix())
    }

    /// [`Self::verify`] at a given Unix time (seconds). For tests and replaying
    /// historic vectors; services should call `verify`.
    pub fn verify_at(&self, token: &str, now: i64) -> Result<Claims, VerifyError> {
        let (payload, slot) = self.verify_signature(token, now)?;
        let claims: Map<String, Value> = serde_json::from_slice(&payload)
            .map_err(|_| VerifyError::Malformed("claims are not a JSON object"))?;
        validate_claims(&claims, &self.options, now)?;
        Ok(Claims {
            claims,
            kid: slot.kid.as_deref().map(str::to_owned),
            stage: slot.stage,
        })
    }

    /// Verifies and deserializes the claims into `T`.
    pub fn verify_as<T: DeserializeOwned>(&self, token: &str) -> Result<T, VerifyError> {
        self.verify(token)?.deserialize()
    }

    /// Verifies only the JWS layer (kid, pinned algorithm, signature, key retirement)
    /// and returns the raw payload without interpreting it. For non-JWT JWS payloads.
    pub fn verify_jws(&self, token: &str) -> Result<VerifiedJws, VerifyError> {
        self.verify_jws_at(token, now_unix())
    }

    /// [`Self::verify_jws`] at a given Unix time (only key retirement depends on it).
    pub fn verify_jws_at(&self, token: &str, now: i64) -> Result<VerifiedJws, VerifyError> {
        let (payload, slot) = self.verify_signature(token, now)?;
        Ok(VerifiedJws {
            payload,
            kid: slot.kid.as_deref().map(str::to_owned),
            stage: slot.stage,
        })
    }
}

/// The precomputed HMAC key of an HS* key material (`None` for asymmetric keys).
fn hmac_key(m: &crate::KeyMaterial) -> Option<aws_lc_rs::hmac::Key> {
    use secrecy::ExposeSecret;
    let alg = match m.alg() {
        Algorithm::HS256 => aws_lc_rs::hmac::HMAC_SHA256,
        Algorithm::HS384 => aws_lc_rs::hmac::HMAC_SHA384,
        Algorithm::HS512 => aws_lc_rs::hmac::HMAC_SHA512,
        _ => return None,
    };
    m.hmac_secret()
        .map(|secret| aws_lc_rs::hmac::Key::new(alg, secret.expose_secret()))
}
