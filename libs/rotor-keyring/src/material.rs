//! One key: its kid, pinned algorithm, secret/private material and public JWK.
//!
//! The JSON form of [`KeyMaterial`] is what rotor stores (encrypted) as one secret
//! version's value, so its shape is a stable contract:
//!
//! ```json
//! {"kid":"…","alg":"HS256","k":"<base64url secret>"}
//! {"kid":"…","alg":"ES256","private_pkcs8":"<base64url DER>",
//!  "public_jwk":{"kty":"EC","crv":"P-256","x":"…","y":"…","kid":"…","alg":"ES256","use":"sig"}}
//! ```

use std::fmt;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, EcdsaKeyPair,
    Ed25519KeyPair, KeyPair, ParsedPublicKey, RsaPublicKeyComponents,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{DecodingKey, EncodingKey};
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{Algorithm, KeyError, MAX_KID_LEN};

/// Number of random bytes in a generated kid (128 bits: collision-free in practice,
/// and unrelated to the key so it leaks nothing about it).
const KID_RANDOM_BYTES: usize = 16;

/// Default RSA modulus size when the caller does not choose one. 3072 bits is the
/// NIST recommendation for keys used beyond 2030.
pub const DEFAULT_RSA_BITS: u16 = 3072;

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

    fn invalid(&self, reason: impl Into<String>) -> KeyError {
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

/// Secret half of a key. HMAC keys are a shared secret; asymmetric keys carry the
/// PKCS#8 private key when this process may sign, and always the public JWK.
// The asymmetric variant is larger (public JWK inline); keys are few and long-lived,
// so the size difference does not matter.
#[allow(clippy::large_enum_variant)]
enum Material {
    Hmac(SecretSlice<u8>),
    Asymmetric {
        private_pkcs8: Option<SecretSlice<u8>>,
        public_jwk: PublicJwk,
    },
}

/// One signing/verification key with its kid and pinned algorithm.
///
/// Secret bytes live in [`secrecy`] containers (zeroized on drop); `Debug` prints only
/// kid and algorithm, and there is intentionally no `Display`.
pub struct KeyMaterial {
    kid: String,
    alg: Algorithm,
    material: Material,
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.material {
            Material::Hmac(_) => "hmac-secret",
            Material::Asymmetric {
                private_pkcs8: Some(_),
                ..
            } => "private-key",
            Material::Asymmetric { .. } => "public-key-only",
        };
        f.debug_struct("KeyMaterial")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("material", &format_args!("{kind} [REDACTED]"))
            .finish()
    }
}

impl Clone for KeyMaterial {
    fn clone(&self) -> Self {
        let material = match &self.material {
            Material::Hmac(k) => Material::Hmac(k.expose_secret().to_vec().into()),
            Material::Asymmetric {
                private_pkcs8,
                public_jwk,
            } => Material::Asymmetric {
                private_pkcs8: private_pkcs8
                    .as_ref()
                    .map(|p| p.expose_secret().to_vec().into()),
                public_jwk: public_jwk.clone(),
            },
        };
        Self {
            kid: self.kid.clone(),
            alg: self.alg,
            material,
        }
    }
}

fn random_kid(rng: &SystemRandom) -> Result<String, KeyError> {
    let mut b = [0u8; KID_RANDOM_BYTES];
    rng.fill(&mut b)
        .map_err(|_| KeyError::Generation("CSPRNG failure"))?;
    Ok(URL_SAFE_NO_PAD.encode(b))
}

pub(crate) fn check_kid(kid: &str) -> Result<(), KeyError> {
    if kid.is_empty() || kid.len() > MAX_KID_LEN {
        return Err(KeyError::InvalidKey {
            kid: kid.chars().take(64).collect(),
            reason: format!("kid must be 1..={MAX_KID_LEN} bytes"),
        });
    }
    Ok(())
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl KeyMaterial {
    /// Generates a fresh key for `alg` from the system CSPRNG, with a random kid.
    ///
    /// `rsa_bits` is only meaningful for RS256 (2048 or 3072, default
    /// [`DEFAULT_RSA_BITS`]); passing it for any other algorithm is an error so a
    /// misconfigured caller notices.
    pub fn generate(alg: Algorithm, rsa_bits: Option<u16>) -> Result<Self, KeyError> {
        if rsa_bits.is_some() && alg != Algorithm::RS256 {
            return Err(KeyError::InvalidParameter(format!(
                "rsa_bits given for {alg}"
            )));
        }
        let rng = SystemRandom::new();
        let kid = random_kid(&rng)?;
        let material = match alg {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                let len = alg
                    .hmac_key_len()
                    .expect("HMAC algorithms always have a key length");
                // The key is text: `len` random bytes (the hash's size, so its full
                // strength) written as base64url, and the key bytes are that text's bytes.
                // An app that takes the key from an environment variable's text (the seed's
                // `jwt.decode(token, os.getenv("SECRET_KEY"))`) then uses the very bytes
                // rotor signs with; see `hmac_text`.
                let mut k = Zeroizing::new(vec![0u8; len]);
                rng.fill(&mut k)
                    .map_err(|_| KeyError::Generation("CSPRNG failure"))?;
                let text = Zeroizing::new(b64(&k));
                Material::Hmac(text.as_bytes().to_vec().into())
            }
            Algorithm::ES256 => {
                let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| KeyError::Generation("P-256 key generation failed"))?;
                let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref())
                    .map_err(|_| KeyError::Generation("generated P-256 key did not parse"))?;
                let public_jwk = ec_public_jwk(kp.public_key().as_ref(), &kid)?;
                Material::Asymmetric {
                    private_pkcs8: Some(doc.as_ref().to_vec().into()),
                    public_jwk,
                }
            }
            Algorithm::EdDSA => {
                // PKCS#8 v1: the most widely accepted form (OpenSSL, Python cryptography).
                let doc = Ed25519KeyPair::generate_pkcs8v1(&rng)
                    .map_err(|_| KeyError::Generation("Ed25519 key generation failed"))?;
                let kp = Ed25519KeyPair::from_pkcs8(doc.as_ref())
                    .map_err(|_| KeyError::Generation("generated Ed25519 key did not parse"))?;
                let public_jwk = ed_public_jwk(kp.public_key().as_ref(), &kid);
                Material::Asymmetric {
                    private_pkcs8: Some(doc.as_ref().to_vec().into()),
                    public_jwk,
                }
            }
            Algorithm::RS256 => {
                let size = match rsa_bits.unwrap_or(DEFAULT_RSA_BITS) {
                    2048 => KeySize::Rsa2048,
                    3072 => KeySize::Rsa3072,
                    other => {
                        return Err(KeyError::InvalidParameter(format!(
                            "rsa_bits must be 2048 or 3072, got {other}"
                        )));
                    }
                };
                let kp = RsaKeyPair::generate(size)
                    .map_err(|_| KeyError::Generation("RSA key generation failed"))?;
                let der: Pkcs8V1Der<'static> = kp
                    .as_der()
                    .map_err(|_| KeyError::Generation("RSA PKCS#8 encoding failed"))?;
                let public_jwk = rsa_public_jwk(&kp, &kid);
                Material::Asymmetric {
                    private_pkcs8: Some(der.as_ref().to_vec().into()),
                    public_jwk,
                }
            }
        };
        Ok(Self { kid, alg, material })
    }

    /// Imports an existing HMAC secret (e.g. the one a legacy service already uses).
    /// The secret must be at least as long as the hash output (RFC 7518 §3.2).
    pub fn from_hmac_secret(
        alg: Algorithm,
        kid: impl Into<String>,
        secret: &[u8],
    ) -> Result<Self, KeyError> {
        let kid = kid.into();
        check_kid(&kid)?;
        let min = alg
            .hmac_key_len()
            .ok_or_else(|| KeyError::InvalidParameter(format!("{alg} is not an HMAC algorithm")))?;
        if secret.len() < min {
            return Err(KeyError::InvalidKey {
                kid,
                reason: format!("{alg} secret must be at least {min} bytes"),
            });
        }
        Ok(Self {
            kid,
            alg,
            material: Material::Hmac(secret.to_vec().into()),
        })
    }

    /// Verify-only material from a public JWK (which must carry a kid).
    pub fn from_public_jwk(jwk: PublicJwk) -> Result<Self, KeyError> {
        let alg = jwk.algorithm()?;
        let kid = jwk
            .kid
            .clone()
            .ok_or_else(|| jwk.invalid("public JWK has no kid"))?;
        check_kid(&kid)?;
        jwk.decoding_key(alg)?;
        Ok(Self {
            kid,
            alg,
            material: Material::Asymmetric {
                private_pkcs8: None,
                public_jwk: normalize_jwk(jwk, alg),
            },
        })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm this key is pinned to.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The public JWK (`None` for HMAC keys, which have no public half).
    pub fn public_jwk(&self) -> Option<&PublicJwk> {
        match &self.material {
            Material::Hmac(_) => None,
            Material::Asymmetric { public_jwk, .. } => Some(public_jwk),
        }
    }

    /// The HMAC secret as text, when its bytes are printable ASCII (every key rotor
    /// generates): the form to hand an app that uses an environment variable's text as the
    /// key. Stored and exported as `secret` beside `k`.
    pub fn hmac_text(&self) -> Option<&str> {
        let k = self.hmac_secret()?.expose_secret();
        if k.iter().all(u8::is_ascii_graphic) {
            std::str::from_utf8(k).ok()
        } else {
            None
        }
    }

    /// The raw HMAC secret, for handing to another implementation (e.g. PyJWT).
    pub fn hmac_secret(&self) -> Option<&SecretSlice<u8>> {
        match &self.material {
            Material::Hmac(k) => Some(k),
            Material::Asymmetric { .. } => None,
        }
    }

    /// The PKCS#8 DER private key, if this material can sign.
    pub fn private_pkcs8(&self) -> Option<&SecretSlice<u8>> {
        match &self.material {
            Material::Hmac(_) => None,
            Material::Asymmetric { private_pkcs8, .. } => private_pkcs8.as_ref(),
        }
    }

    /// The private key as a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), for other
    /// JWT implementations. Returned as a [`SecretString`] so it is zeroized on drop.
    pub fn private_key_pem(&self) -> Option<SecretString> {
        self.private_pkcs8().map(|der| {
            SecretString::from(pem_encode("PRIVATE KEY", der.expose_secret()).to_string())
        })
    }

    /// True if this material can sign (HMAC secret or a private key is present).
    pub fn can_sign(&self) -> bool {
        match &self.material {
            Material::Hmac(_) => true,
            Material::Asymmetric { private_pkcs8, .. } => private_pkcs8.is_some(),
        }
    }

    /// Serializes to the stored JSON form. The result contains the secret: treat it
    /// as such (it is returned in a [`SecretString`]).
    pub fn to_json(&self) -> SecretString {
        let wire = self.to_wire(None, None);
        SecretString::from(
            serde_json::to_string(&wire).expect("serializing plain strings to JSON cannot fail"),
        )
    }

    /// Parses the stored JSON form, validating the key (lengths, curve membership,
    /// and that the public JWK matches the private key).
    pub fn from_json(json: &str) -> Result<Self, KeyError> {
        let wire: EntryWire = serde_json::from_str(json)?;
        Self::from_wire(wire).map(|(m, _, _)| m)
    }

    pub(crate) fn to_wire(
        &self,
        stage: Option<crate::Stage>,
        not_after: Option<Option<jiff::Timestamp>>,
    ) -> EntryWire {
        let secret = self.hmac_text().map(|t| Zeroizing::new(t.to_owned()));
        let (k, private_pkcs8, public_jwk) = match &self.material {
            Material::Hmac(k) => (Some(Zeroizing::new(b64(k.expose_secret()))), None, None),
            Material::Asymmetric {
                private_pkcs8,
                public_jwk,
            } => (
                None,
                private_pkcs8
                    .as_ref()
                    .map(|p| Zeroizing::new(b64(p.expose_secret()))),
                Some(public_jwk.clone()),
            ),
        };
        EntryWire {
            kid: self.kid.clone(),
            alg: self.alg,
            stage,
            not_after,
            k,
            secret,
            private_pkcs8,
            public_jwk,
        }
    }

    pub(crate) fn from_wire(wire: EntryWire) -> Result<WireParts, KeyError> {
        let EntryWire {
            kid,
            alg,
            stage,
            not_after,
            k,
            secret,
            private_pkcs8,
            public_jwk,
        } = wire;
        check_kid(&kid)?;
        let invalid = |reason: &str| KeyError::InvalidKey {
            kid: kid.clone(),
            reason: reason.to_owned(),
        };
        let material = if alg.is_hmac() {
            if private_pkcs8.is_some() || public_jwk.is_some() {
                return Err(invalid("HMAC keys carry only `k` (and `secret`)"));
            }
            let from_k = match k {
                Some(k) => Some(Zeroizing::new(
                    URL_SAFE_NO_PAD
                        .decode(k.as_bytes())
                        .map_err(|_| invalid("`k` is not base64url"))?,
                )),
                None => None,
            };
            // `secret` is the key's text (its bytes are the key); with `k` they must agree.
            let key = match (from_k, secret) {
                (Some(k), Some(t)) => {
                    if aws_lc_rs::constant_time::verify_slices_are_equal(k.as_slice(), t.as_bytes())
                        .is_err()
                    {
                        return Err(invalid("`k` and `secret` are different keys"));
                    }
                    k
                }
                (Some(k), None) => k,
                (None, Some(t)) => Zeroizing::new(t.as_bytes().to_vec()),
                (None, None) => return Err(invalid("missing `k`")),
            };
            return Self::from_hmac_secret(alg, kid.clone(), &key).map(|m| (m, stage, not_after));
        } else {
            if k.is_some() {
                return Err(invalid("asymmetric keys must not carry `k`"));
            }
            let mut jwk = public_jwk.ok_or_else(|| invalid("missing `public_jwk`"))?;
            if jwk.kid.as_deref().is_some_and(|j| j != kid) {
                return Err(invalid("public_jwk.kid differs from kid"));
            }
            jwk.kid = Some(kid.clone());
            if jwk.algorithm()? != alg {
                return Err(invalid("public_jwk does not match alg"));
            }
            jwk.decoding_key(alg)?;
            let jwk = normalize_jwk(jwk, alg);
            let private = match private_pkcs8 {
                None => None,
                Some(p) => {
                    let der = Zeroizing::new(
                        URL_SAFE_NO_PAD
                            .decode(p.as_bytes())
                            .map_err(|_| invalid("`private_pkcs8` is not base64url"))?,
                    );
                    let derived = public_jwk_from_pkcs8(alg, &der, &kid)?;
                    if !same_public(&derived, &jwk) {
                        return Err(invalid("public_jwk does not match private_pkcs8"));
                    }
                    Some(der.to_vec().into())
                }
            };
            Material::Asymmetric {
                private_pkcs8: private,
                public_jwk: jwk,
            }
        };
        Ok((Self { kid, alg, material }, stage, not_after))
    }

    pub(crate) fn decoding_key(&self) -> Result<DecodingKey, KeyError> {
        match &self.material {
            Material::Hmac(k) => {
                DecodingKey::from_secret(k.expose_secret()).map_err(|e| KeyError::InvalidKey {
                    kid: self.kid.clone(),
                    reason: e.to_string(),
                })
            }
            Material::Asymmetric { public_jwk, .. } => public_jwk.decoding_key(self.alg),
        }
    }

    pub(crate) fn encoding_key(&self) -> Result<Option<EncodingKey>, KeyError> {
        let err = |e: jsonwebtoken::errors::Error| KeyError::InvalidKey {
            kid: self.kid.clone(),
            reason: e.to_string(),
        };
        Ok(match (&self.material, self.alg) {
            (Material::Hmac(k), _) => {
                Some(EncodingKey::from_secret(k.expose_secret()).map_err(err)?)
            }
            (
                Material::Asymmetric {
                    private_pkcs8: None,
                    ..
                },
                _,
            ) => None,
            (
                Material::Asymmetric {
                    private_pkcs8: Some(p),
                    ..
                },
                Algorithm::ES256,
            ) => Some(EncodingKey::from_ec_der(p.expose_secret())),
            (
                Material::Asymmetric {
                    private_pkcs8: Some(p),
                    ..
                },
                Algorithm::EdDSA,
            ) => Some(EncodingKey::from_ed_der(p.expose_secret())),
            (
                Material::Asymmetric {
                    private_pkcs8: Some(p),
                    ..
                },
                Algorithm::RS256,
            ) => {
                // jsonwebtoken's RSA signer wants PKCS#1; its PEM reader unwraps PKCS#8.
                let pem = pem_encode("PRIVATE KEY", p.expose_secret());
                Some(EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(err)?)
            }
            (Material::Asymmetric { .. }, alg) => {
                return Err(KeyError::UnsupportedAlgorithm(alg.to_string()));
            }
        })
    }
}

/// A parsed wire entry: the material, its stage and its `not_after` (outer `None`:
/// member absent).
pub(crate) type WireParts = (
    KeyMaterial,
    Option<crate::Stage>,
    Option<Option<jiff::Timestamp>>,
);

/// Wire form shared by [`KeyMaterial`] JSON and keyring-document entries.
#[derive(Serialize, Deserialize)]
pub(crate) struct EntryWire {
    pub(crate) kid: String,
    pub(crate) alg: Algorithm,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) stage: Option<crate::Stage>,
    // Outer Option: present or not (KeyMaterial JSON has no not_after); inner: null.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "deserialize_present"
    )]
    pub(crate) not_after: Option<Option<jiff::Timestamp>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) k: Option<Zeroizing<String>>,
    /// An HMAC key's text, when it is printable (`KeyMaterial::hmac_text`): what an app
    /// that reads the key from an environment variable gets rendered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) secret: Option<Zeroizing<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) private_pkcs8: Option<Zeroizing<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) public_jwk: Option<PublicJwk>,
}

fn deserialize_present<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<jiff::Timestamp>>, D::Error> {
    Option::<jiff::Timestamp>::deserialize(d).map(Some)
}

/// Canonical public JWK as we publish it: kid, alg and `use:"sig"` always set.
fn normalize_jwk(mut jwk: PublicJwk, alg: Algorithm) -> PublicJwk {
    jwk.alg = Some(alg.as_str().to_owned());
    jwk.use_ = Some("sig".to_owned());
    jwk
}

fn same_public(a: &PublicJwk, b: &PublicJwk) -> bool {
    a.kty == b.kty && a.crv == b.crv && a.x == b.x && a.y == b.y && a.n == b.n && a.e == b.e
}

fn ec_public_jwk(point: &[u8], kid: &str) -> Result<PublicJwk, KeyError> {
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

fn ed_public_jwk(x: &[u8], kid: &str) -> PublicJwk {
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

fn rsa_public_jwk(kp: &RsaKeyPair, kid: &str) -> PublicJwk {
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
fn public_jwk_from_pkcs8(alg: Algorithm, der: &[u8], kid: &str) -> Result<PublicJwk, KeyError> {
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

fn pem_encode(label: &str, der: &[u8]) -> Zeroizing<String> {
    let body = Zeroizing::new(STANDARD.encode(der));
    let mut out = Zeroizing::new(String::with_capacity(body.len() + body.len() / 64 + 64));
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for chunk in body.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk boundary is a char boundary.
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}
