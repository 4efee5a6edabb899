//! Property tests: arbitrary input never panics the parsers or the verifier, and
//! never verifies.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use rotor_keyring::{Algorithm, Jwks, KeyMaterial, Keyring, KeyringDocument, Stage};

fn ring() -> Keyring {
    let doc = KeyringDocument::new()
        .with(
            KeyMaterial::generate(Algorithm::HS256, None).expect("gen"),
            Stage::Current,
            None,
        )
        .with(
            KeyMaterial::generate(Algorithm::EdDSA, None).expect("gen"),
            Stage::Previous,
            None,
        )
        .with(
            KeyMaterial::generate(Algorithm::ES256, None).expect("gen"),
            Stage::Pending,
            None,
        );
    Keyring::from_document(&doc).expect("ring")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let r = ring();
        let s = String::from_utf8_lossy(&bytes);
        prop_assert!(r.verify(&s).is_err());
        let _ = Jwks::from_slice(&bytes);
        let _ = Keyring::from_slice(&bytes);
        let _ = KeyringDocument::from_slice(&bytes);
        let _ = KeyMaterial::from_json(&s);
    }

    #[test]
    fn random_dotted_tokens_never_verify(parts in proptest::collection::vec("[A-Za-z0-9_-]{0,64}", 1..5)) {
        let r = ring();
        prop_assert!(r.verify(&parts.join(".")).is_err());
    }

    #[test]
    fn random_headers_never_verify(
        alg in prop_oneof![Just("none".to_owned()), Just("HS256".to_owned()), Just("EdDSA".to_owned()), "[ -~]{0,12}"],
        kid in proptest::option::of("[ -~]{0,300}"),
        payload in proptest::collection::vec(any::<u8>(), 0..128),
        sig in proptest::collection::vec(any::<u8>(), 0..128),
    ) {
        let r = ring();
        let mut h = serde_json::json!({"alg": alg});
        if let Some(k) = kid { h["kid"] = k.into(); }
        let t = format!("{}.{}.{}",
            URL_SAFE_NO_PAD.encode(h.to_string()),
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(&sig));
        prop_assert!(r.verify(&t).is_err());
    }

    #[test]
    fn random_jwks_json_never_panics(
        kty in prop_oneof![Just("EC"), Just("OKP"), Just("RSA"), Just("oct"), Just("x")],
        crv in proptest::option::of(prop_oneof![Just("P-256"), Just("Ed25519"), Just("P-384")]),
        x in proptest::option::of("[A-Za-z0-9_-]{0,90}"),
        y in proptest::option::of("[A-Za-z0-9_-]{0,90}"),
        n in proptest::option::of("[A-Za-z0-9_-]{0,400}"),
    ) {
        let v = serde_json::json!({"keys":[{"kty":kty,"crv":crv,"x":x,"y":y,"n":n,"e":"AQAB"}]});
        if let Ok(j) = Jwks::from_json(&v.to_string()) {
            let _ = Keyring::from_jwks(&j);
        }
    }
}

/// Regression: an empty or all-zero RSA modulus in a JWKS underflowed the bit count (found by
/// `random_jwks_json_never_panics`).
#[test]
fn empty_rsa_modulus_is_an_error_not_a_panic() {
    for n in ["", "AA", "AAAA"] {
        let v =
            serde_json::json!({"keys":[{"kty":"RSA","n":n,"e":"AQAB","kid":"k","alg":"RS256"}]});
        if let Ok(j) = Jwks::from_json(&v.to_string()) {
            assert!(
                Keyring::from_jwks(&j).is_err()
                    || Keyring::from_jwks(&j).is_ok_and(|k| k.is_empty())
            );
        }
    }
}
