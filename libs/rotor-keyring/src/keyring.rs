//! The immutable keyring snapshot: sign with `current`, verify by kid.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{DecodingKey, EncodingKey, Header};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Algorithm, Jwks, KeyError, KeyringDocument, PublicJwk, SignError, Stage, VerifyError};

/// Longest `kid` accepted, in bytes, both in key material and in token headers.
/// Bounds the work an attacker can make a lookup do and what ends up in logs.
pub const MAX_KID_LEN: usize = 256;

/// Default [`VerifyOptions::max_token_len`]: 8 KiB, well above any sane bearer token
/// (and a typical HTTP header limit), small enough that base64/JSON work is bounded.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;

/// Claim checks applied by [`Keyring::verify`]. Signature and algorithm checks are not
/// configurable.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyOptions {
    /// Clock-skew allowance in seconds for `exp`, `nbf` and `iat`. Default 60.
    pub leeway_secs: u64,
    /// Reject tokens without `exp`. Default true: a token that never expires outlives
    /// every rotation.
    pub require_exp: bool,
    /// Check `exp` when present. Default true. Turning it off is only for test vectors
    /// with historic timestamps; prefer [`Keyring::verify_at`] for that.
    pub validate_exp: bool,
    /// Check `nbf` when present. Default true.
    pub validate_nbf: bool,
    /// Reject `iat` in the future (beyond leeway). Default true.
    pub validate_iat: bool,
    /// If set, `iss` must be present and one of these.
    pub issuers: Option<Vec<String>>,
    /// If set, `aud` must be present and contain one of these.
    pub audiences: Option<Vec<String>>,
    /// Tokens longer than this are rejected before any parsing. Default
    /// [`DEFAULT_MAX_TOKEN_LEN`].
    pub max_token_len: usize,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            leeway_secs: 60,
            require_exp: true,
            validate_exp: true,
            validate_nbf: true,
            validate_iat: true,
            issuers: None,
            audiences: None,
            max_token_len: DEFAULT_MAX_TOKEN_LEN,
        }
    }
}

impl VerifyOptions {
    /// Sets the leeway (builder style).
    pub fn with_leeway(mut self, secs: u64) -> Self {
        self.leeway_secs = secs;
        self
    }
    /// Sets the accepted issuers.
    pub fn with_issuers<I: IntoIterator<Item = S>, S: Into<String>>(mut self, iss: I) -> Self {
        self.issuers = Some(iss.into_iter().map(Into::into).collect());
        self
    }
    /// Sets the accepted audiences.
    pub fn with_audiences<I: IntoIterator<Item = S>, S: Into<String>>(mut self, aud: I) -> Self {
        self.audiences = Some(aud.into_iter().map(Into::into).collect());
        self
    }
    /// Sets [`Self::require_exp`].
    pub fn with_require_exp(mut self, require: bool) -> Self {
        self.require_exp = require;
        self
    }
    /// Sets [`Self::max_token_len`].
    pub fn with_max_token_len(mut self, len: usize) -> Self {
        self.max_token_len = len;
        self
    }
}

/// The verified claims of a token plus which key verified it.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    /// The claims object.
    pub claims: Map<String, Value>,
    /// kid of the key that verified the token (`None` only for keys loaded without one).
    pub kid: Option<String>,
    /// Stage of that key at verification time (lets services count `previous` use).
    pub stage: Stage,
}

impl Claims {
    /// A claim by name.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.claims.get(name)
    }

    /// Deserializes the claims into a caller type.
    pub fn deserialize<T: DeserializeOwned>(self) -> Result<T, VerifyError> {
        serde_json::from_value(Value::Object(self.claims))
            .map_err(|e| VerifyError::ClaimsType(e.to_string()))
    }
}

/// A verified JWS whose payload is not interpreted (e.g. not JSON claims).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedJws {
    /// The decoded payload bytes.
    pub payload: Vec<u8>,
    /// kid of the key that verified it.
    pub kid: Option<String>,
    /// Stage of that key.
    pub stage: Stage,
}

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

#[derive(Deserialize)]
struct TokenHeader<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(borrow, default)]
    kid: Option<Cow<'a, str>>,
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
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

    fn select<'a>(
        &'a self,
        token: &'a str,
    ) -> Result<(Pick<'a>, &'a str, &'a str, &'a str), VerifyError> {
        if token.len() > self.options.max_token_len {
            return Err(VerifyError::TokenTooLarge {
                len: token.len(),
                limit: self.options.max_token_len,
            });
        }
        let mut parts = token.splitn(3, '.');
        let (Some(h64), Some(p64), Some(s64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(VerifyError::Malformed("expected three dot-separated parts"));
        };
        if s64.contains('.') {
            return Err(VerifyError::Malformed("expected three dot-separated parts"));
        }
        let header_json = URL_SAFE_NO_PAD
            .decode(h64)
            .map_err(|_| VerifyError::Malformed("header is not base64url"))?;
        // serde would happily build a struct from a JSON array; RFC 7515 requires an object.
        if header_json
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_none_or(|&b| b != b'{')
        {
            return Err(VerifyError::Malformed("header is not a JSON object"));
        }
        let header: TokenHeader<'_> = serde_json::from_slice(&header_json)
            .map_err(|_| VerifyError::Malformed("header is not a JSON object with a string alg"))?;
        if header.crit.is_some() {
            return Err(VerifyError::UnsupportedCritical);
        }
        let slot = match header.kid.as_deref() {
            Some(kid) => {
                if kid.len() > MAX_KID_LEN {
                    return Err(VerifyError::KidTooLong(kid.len()));
                }
                let idx = *self
                    .by_kid
                    .get(kid)
                    .ok_or_else(|| VerifyError::UnknownKid(kid.to_owned()))?;
                &self.slots[idx]
            }
            // Without a kid the only unambiguous choice is a lone key, or, for HMAC, the
            // shared secrets in turn (see `Pick::Kidless`).
            None => match self.slots.as_slice() {
                [only] => only,
                _ => {
                    let alg = Algorithm::ALL
                        .iter()
                        .copied()
                        .find(|a| a.is_hmac() && a.as_str() == header.alg)
                        .filter(|a| self.slots.iter().any(|s| s.alg == *a && s.hmac.is_some()))
                        .ok_or(VerifyError::MissingKid)?;
                    let signing_input = &token[..h64.len() + 1 + p64.len()];
                    return Ok((Pick::Kidless(alg), signing_input, p64, s64));
                }
            },
        };
        // The algorithm comes from the key; the header may only agree with it.
        if header.alg != slot.alg.as_str() {
            return Err(VerifyError::AlgorithmMismatch {
                expected: slot.alg,
                found: header.alg.chars().take(32).collect(),
            });
        }
        let signing_input = &token[..h64.len() + 1 + p64.len()];
        Ok((Pick::One(slot), signing_input, p64, s64))
    }

    fn verify_signature<'a>(
        &'a self,
        token: &'a str,
        now: i64,
    ) -> Result<(Vec<u8>, &'a Slot), VerifyError> {
        let (pick, signing_input, p64, s64) = self.select(token)?;
        if s64.is_empty() {
            return Err(VerifyError::BadSignature);
        }
        let slot = match pick {
            Pick::One(slot) => {
                if !signature_ok(slot, signing_input, s64)? {
                    return Err(VerifyError::BadSignature);
                }
                slot
            }
            Pick::Kidless(alg) => {
                let mut found = None;
                'stages: for stage in [Stage::Current, Stage::Previous, Stage::Pending] {
                    for slot in self
                        .slots
                        .iter()
                        .filter(|s| s.stage == stage && s.alg == alg && s.hmac.is_some())
                    {
                        if signature_ok(slot, signing_input, s64)? {
                            found = Some(slot);
                            break 'stages;
                        }
                    }
                }
                found.ok_or(VerifyError::BadSignature)?
            }
        };
        if let Some(na) = slot.not_after
            && now > na
        {
            return Err(VerifyError::KeyRetired(
                slot.kid.as_deref().unwrap_or_default().to_owned(),
            ));
        }
        let payload = URL_SAFE_NO_PAD
            .decode(p64)
            .map_err(|_| VerifyError::Malformed("payload is not base64url"))?;
        Ok((payload, slot))
    }
}

/// Which key checks a token's signature.
enum Pick<'a> {
    /// The token's kid names it (or it is the only key).
    One(&'a Slot),
    /// No kid, several keys, an HMAC `alg`: the HMAC keys of that algorithm in turn,
    /// current, then previous, then pending (what an app holding `SECRET_KEY` and
    /// `SECRET_KEY_PREVIOUS` does, e.g. the seed's `decode_access`). Each check is constant
    /// time; the first key whose tag matches is the one.
    Kidless(Algorithm),
}

/// Whether `s64` is `slot`'s signature over `signing_input`.
fn signature_ok(slot: &Slot, signing_input: &str, s64: &str) -> Result<bool, VerifyError> {
    Ok(match &slot.hmac {
        // HMAC: a constant-time tag check with the precomputed key (aws-lc-rs).
        Some(key) => {
            let mut tag = [0u8; 64];
            let len = URL_SAFE_NO_PAD
                .decode_slice(s64, &mut tag)
                .map_err(|_| VerifyError::BadSignature)?;
            aws_lc_rs::hmac::verify(key, signing_input.as_bytes(), &tag[..len]).is_ok()
        }
        None => jsonwebtoken::crypto::verify(
            s64,
            signing_input.as_bytes(),
            &slot.decoding,
            slot.alg.to_jwt(),
        )
        .map_err(|_| VerifyError::BadSignature)?,
    })
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

/// A NumericDate (RFC 7519 §2): any JSON number; fractional seconds are allowed.
fn numeric_date(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<f64>, VerifyError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|f| f.is_finite())
            .map(Some)
            .ok_or(VerifyError::InvalidClaim(name)),
        Some(_) => Err(VerifyError::InvalidClaim(name)),
    }
}

fn validate_claims(
    claims: &Map<String, Value>,
    o: &VerifyOptions,
    now: i64,
) -> Result<(), VerifyError> {
    // f64 holds every plausible Unix time exactly (< 2^53).
    let now = now as f64;
    let leeway = o.leeway_secs as f64;
    let exp = numeric_date(claims, "exp")?;
    if exp.is_none() && o.require_exp {
        return Err(VerifyError::MissingClaim("exp"));
    }
    if o.validate_exp
        && let Some(exp) = exp
        && now - leeway >= exp
    {
        return Err(VerifyError::Expired);
    }
    if let Some(nbf) = numeric_date(claims, "nbf")?
        && o.validate_nbf
        && now + leeway < nbf
    {
        return Err(VerifyError::NotYetValid);
    }
    if let Some(iat) = numeric_date(claims, "iat")?
        && o.validate_iat
        && now + leeway < iat
    {
        return Err(VerifyError::IssuedInFuture);
    }
    if let Some(issuers) = &o.issuers {
        match claims.get("iss") {
            None => return Err(VerifyError::MissingClaim("iss")),
            Some(Value::String(iss)) => {
                if !issuers.iter().any(|i| i == iss) {
                    return Err(VerifyError::InvalidIssuer);
                }
            }
            Some(_) => return Err(VerifyError::InvalidClaim("iss")),
        }
    }
    if let Some(audiences) = &o.audiences {
        let accepted = |a: &str| audiences.iter().any(|x| x == a);
        match claims.get("aud") {
            None => return Err(VerifyError::MissingClaim("aud")),
            Some(Value::String(a)) => {
                if !accepted(a) {
                    return Err(VerifyError::InvalidAudience);
                }
            }
            Some(Value::Array(list)) => {
                let mut any = false;
                for v in list {
                    match v {
                        Value::String(a) => any |= accepted(a),
                        _ => return Err(VerifyError::InvalidClaim("aud")),
                    }
                }
                if !any {
                    return Err(VerifyError::InvalidAudience);
                }
            }
            Some(_) => return Err(VerifyError::InvalidClaim("aud")),
        }
    }
    Ok(())
}
