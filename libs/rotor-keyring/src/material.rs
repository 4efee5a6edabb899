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
//!
//! That form is read and written in `wire.rs` (shared with keyring-document entries); the
//! public JWK is in `jwk.rs`.

use std::fmt;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{DecodingKey, EncodingKey};
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use zeroize::Zeroizing;

use crate::{Algorithm, KeyError, MAX_KID_LEN};

mod jwk;
mod wire;

pub use jwk::PublicJwk;
use jwk::{ec_public_jwk, ed_public_jwk, normalize_jwk, rsa_public_jwk};
pub(crate) use wire::EntryWire;

/// Number of random bytes in a generated kid (128 bits: collision-free in practice,
/// and unrelated to the key so it leaks nothing about it).
const KID_RANDOM_BYTES: usize = 16;

/// Default RSA modulus size when the caller does not choose one. 3072 bits is the
/// NIST recommendation for keys used beyond 2030.
pub const DEFAULT_RSA_BITS: u16 = 3072;

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
