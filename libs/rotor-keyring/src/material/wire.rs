//! The wire form of a key: [`KeyMaterial`]'s stored JSON and a keyring document's entry
//! share it, so one parser validates both (lengths, curve membership, and that a public
//! JWK matches its private key).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::jwk::{normalize_jwk, public_jwk_from_pkcs8, same_public};
use super::{KeyMaterial, Material, b64, check_kid};
use crate::{Algorithm, KeyError, PublicJwk};

impl KeyMaterial {
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
