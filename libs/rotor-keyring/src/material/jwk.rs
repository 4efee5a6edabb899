//! The public half of a key as a JWK (RFC 7517): parsing and validating a published one,
//! and deriving ours from a generated or stored private key.

use aws_lc_rs::rsa::KeyPair as RsaKeyPair;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, EcdsaKeyPair,
    Ed25519KeyPair, KeyPair, ParsedPublicKey, RsaPublicKeyComponents,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use serde::{Deserialize, Serialize};

use super::b64;
use crate::{Algorithm, KeyError};

/// A public JWK (RFC 7517) as published in a JWKS. Only the members this crate
/// understands are kept; everything else is ignored on input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicJwk {
    /// Key type: `"EC"`, `"OKP"` or `"RSA"`.
    pub kty: String,
    /// Curve for EC/OKP keys: `"P-256"` or `"Ed25519"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// EC x coordinate or OKP public key (base64url).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// EC y coordinate (base64url).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// RSA modulus (base64url, big-endian).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA public exponent (base64url, big-endian).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// Key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Algorithm the key is pinned to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Intended use; this crate only accepts `"sig"` (or absent).
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
}

impl PublicJwk {
    /// The algorithm this JWK is for: its `alg` member if present (checked against
    /// kty/crv), otherwise inferred from kty/crv. RSA without `alg` is taken as RS256,
    /// the only RSA algorithm this crate supports.
    pub fn algorithm(&self) -> Result<Algorithm, KeyError> {
        let inferred = match (self.kty.as_str(), self.crv.as_deref()) {
            ("EC", Some("P-256")) => Algorithm::ES256,
            ("OKP", Some("Ed25519")) => Algorithm::EdDSA,
            ("RSA", None) => Algorithm::RS256,
            (kty, crv) => {
                return Err(KeyError::UnsupportedAlgorithm(format!(
                    "kty={kty} crv={}",
                    crv.unwrap_or("-")
                )));
            }
        };
        match &self.alg {
            None => Ok(inferred),
            Some(a) => {
                let declared: Algorithm = a.parse()?;
                if declared == inferred {
                    Ok(declared)
                } else {
                    Err(self.invalid(format!("alg {a} does not match kty {}", self.kty)))
                }
            }
        }
    }

    pub(super) fn invalid(&self, reason: impl Into<String>) -> KeyError {
        KeyError::InvalidKey {
            kid: self.kid.clone().unwrap_or_default(),
            reason: reason.into(),
        }
    }

    fn member(&self, v: &Option<String>, name: &str) -> Result<Vec<u8>, KeyError> {
        let s = v
            .as_deref()
            .ok_or_else(|| self.invalid(format!("missing {name}")))?;
        URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| self.invalid(format!("{name} is not base64url")))
    }

    /// Validates the key and builds the verification key for `alg`.
    pub(crate) fn decoding_key(&self, alg: Algorithm) -> Result<DecodingKey, KeyError> {
        if let Some(u) = &self.use_
            && u != "sig"
        {
            return Err(self.invalid(format!("use is {u:?}, not \"sig\"")));
        }
        match alg {
            Algorithm::ES256 => {
                let x = self.member(&self.x, "x")?;
                let y = self.member(&self.y, "y")?;
                if x.len() != 32 || y.len() != 32 {
                    return Err(self.invalid("P-256 coordinates must be 32 bytes"));
                }
                let mut point = Vec::with_capacity(65);
                point.push(4);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                // Rejects points not on the curve (invalid-curve attacks).
                ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
                    .map_err(|_| self.invalid("point is not on P-256"))?;
                Ok(DecodingKey::from_ec_der(&point))
            }
            Algorithm::EdDSA => {
                let x = self.member(&self.x, "x")?;
                if x.len() != 32 {
                    return Err(self.invalid("Ed25519 public key must be 32 bytes"));
                }
                ParsedPublicKey::new(&ED25519, &x)
                    .map_err(|_| self.invalid("invalid Ed25519 public key"))?;
                Ok(DecodingKey::from_ed_der(&x))
            }
            Algorithm::RS256 => {
                let n = self.member(&self.n, "n")?;
                let e = self.member(&self.e, "e")?;
                let n_trim = trim_leading_zeros(&n);
                // An all-zero or empty modulus has 0 bits (and must not underflow).
                let bits = n_trim
                    .first()
                    .map_or(0, |b| n_trim.len() * 8 - b.leading_zeros() as usize);
                if !(2048..=8192).contains(&bits) {
                    return Err(
                        self.invalid(format!("RSA modulus is {bits} bits (need 2048..=8192)"))
                    );
                }
                if trim_leading_zeros(&e).is_empty() {
                    return Err(self.invalid("RSA exponent is zero"));
                }
                Ok(DecodingKey::from_rsa_raw_components(&n, &e))
            }
            _ => Err(self.invalid(format!("{alg} keys are not published as JWKs"))),
        }
    }
}

fn trim_leading_zeros(b: &[u8]) -> &[u8] {
    let i = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[i..]
}

/// Canonical public JWK as we publish it: kid, alg and `use:"sig"` always set.
pub(super) fn normalize_jwk(mut jwk: PublicJwk, alg: Algorithm) -> PublicJwk {
    jwk.alg = Some(alg.as_str().to_owned());
    jwk.use_ = Some("sig".to_owned());
    jwk
}

pub(super) fn same_public(a: &PublicJwk, b: &PublicJwk) -> bool {
    a.kty == b.kty && a.crv == b.crv && a.x == b.x && a.y == b.y && a.n == b.n && a.e == b.e
}

pub(super) fn ec_public_jwk(point: &[u8], kid: &str) -> Result<PublicJwk, KeyError> {
    if point.len() != 65 || point[0] != 4 {
        return Err(KeyError::Generation("unexpected P-256 public key encoding"));
    }
    Ok(PublicJwk {
        kty: "EC".into(),
        crv: Some("P-256".into()),
        x: Some(b64(&point[1..33])),
        y: Some(b64(&point[33..65])),
        n: None,
        e: None,
        kid: Some(kid.to_owned()),
        alg: Some(Algorithm::ES256.as_str().into()),
        use_: Some("sig".into()),
    })
}

pub(super) fn ed_public_jwk(x: &[u8], kid: &str) -> PublicJwk {
    PublicJwk {
        kty: "OKP".into(),
        crv: Some("Ed25519".into()),
        x: Some(b64(x)),
        y: None,
        n: None,
        e: None,
        kid: Some(kid.to_owned()),
        alg: Some(Algorithm::EdDSA.as_str().into()),
        use_: Some("sig".into()),
    }
}

pub(super) fn rsa_public_jwk(kp: &RsaKeyPair, kid: &str) -> PublicJwk {
    let c = RsaPublicKeyComponents::<Vec<u8>>::from(kp.public_key());
    PublicJwk {
        kty: "RSA".into(),
        crv: None,
        x: None,
        y: None,
        n: Some(b64(trim_leading_zeros(&c.n))),
        e: Some(b64(trim_leading_zeros(&c.e))),
        kid: Some(kid.to_owned()),
        alg: Some(Algorithm::RS256.as_str().into()),
        use_: Some("sig".into()),
    }
}

/// Derives the public JWK from a PKCS#8 private key (also validates the key).
pub(super) fn public_jwk_from_pkcs8(
    alg: Algorithm,
    der: &[u8],
    kid: &str,
) -> Result<PublicJwk, KeyError> {
    let bad = |what: &str| KeyError::InvalidKey {
        kid: kid.to_owned(),
        reason: format!("private_pkcs8 is not a valid {what} PKCS#8 key"),
    };
    match alg {
        Algorithm::ES256 => {
            let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                .map_err(|_| bad("P-256"))?;
            ec_public_jwk(kp.public_key().as_ref(), kid)
        }
        Algorithm::EdDSA => {
            let kp = Ed25519KeyPair::from_pkcs8(der).map_err(|_| bad("Ed25519"))?;
            Ok(ed_public_jwk(kp.public_key().as_ref(), kid))
        }
        Algorithm::RS256 => {
            let kp = RsaKeyPair::from_pkcs8(der).map_err(|_| bad("RSA"))?;
            Ok(rsa_public_jwk(&kp, kid))
        }
        _ => Err(bad(alg.as_str())),
    }
}
