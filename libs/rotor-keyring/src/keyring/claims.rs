//! Claim checks: what [`Keyring::verify`](crate::Keyring::verify) asks of a token's claims
//! once its signature verified ([`VerifyOptions`]), and what it hands back ([`Claims`],
//! [`VerifiedJws`]).

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::{Stage, VerifyError};

/// Default [`VerifyOptions::max_token_len`]: 8 KiB, well above any sane bearer token
/// (and a typical HTTP header limit), small enough that base64/JSON work is bounded.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;

/// Claim checks applied by [`Keyring::verify`](crate::Keyring::verify). Signature and algorithm checks are not
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
    /// with historic timestamps; prefer [`Keyring::verify_at`](crate::Keyring::verify_at) for that.
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

pub(super) fn validate_claims(
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
