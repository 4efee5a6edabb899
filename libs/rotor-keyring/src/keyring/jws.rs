//! The JWS layer of a verify: bounded parsing of the token, picking the one key its `kid`
//! names (the algorithm pinned to that key), the signature check and key retirement.

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use super::{Keyring, MAX_KID_LEN, Slot};
use crate::{Algorithm, Stage, VerifyError};

#[derive(Deserialize)]
struct TokenHeader<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(borrow, default)]
    kid: Option<Cow<'a, str>>,
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

impl Keyring {
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

    pub(super) fn verify_signature<'a>(
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
