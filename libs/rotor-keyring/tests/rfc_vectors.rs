//! RFC test vectors (typed in from the RFCs, stored under tests/vectors/).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rotor_keyring::{
    Algorithm, Jwks, KeyError, KeyMaterial, Keyring, KeyringDocument, Stage, VerifyError,
};
use serde_json::Value;

fn vector(name: &str) -> Value {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("read vector");
    serde_json::from_str(&text).expect("vector is JSON")
}

fn raw(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/vectors/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("read vector")
}

/// RFC 7515 A.1: HS256 JWS. The token has no kid (accepted because the keyring holds
/// exactly one key) and `exp` = 1300819380 (2011-03-22), so it is verified at a time
/// just before that via `verify_at` instead of disabling expiry checks.
#[test]
fn rfc7515_a1_hs256() {
    let v = vector("rfc7515_a1.json");
    let k = URL_SAFE_NO_PAD
        .decode(v["jwk"]["k"].as_str().expect("k"))
        .expect("k is base64url");
    assert_eq!(k.len(), 64);
    let material =
        KeyMaterial::from_hmac_secret(Algorithm::HS256, "rfc7515-a1", &k).expect("material");
    let ring = Keyring::from_document(&KeyringDocument::new().with(material, Stage::Current, None))
        .expect("ring");
    let jws = v["jws"].as_str().expect("jws");

    // The header is CRLF-formatted JSON, exactly as in the RFC.
    let header = URL_SAFE_NO_PAD
        .decode(jws.split('.').next().expect("header"))
        .expect("b64");
    assert_eq!(
        std::str::from_utf8(&header).expect("utf8"),
        v["expected_header"].as_str().expect("h")
    );

    const BEFORE_EXP: i64 = 1_300_819_000;
    let claims = ring
        .verify_at(jws, BEFORE_EXP)
        .expect("RFC 7515 A.1 verifies");
    assert_eq!(Value::Object(claims.claims.clone()), v["expected_claims"]);
    assert_eq!(claims.kid.as_deref(), Some("rfc7515-a1"));

    // At any time after 2011 it is expired.
    assert_eq!(ring.verify(jws), Err(VerifyError::Expired));

    // One flipped signature character must fail.
    let mut bad = jws.to_owned();
    let last = bad.pop().expect("char");
    bad.push(if last == 'k' { 'j' } else { 'k' });
    assert!(ring.verify_at(&bad, BEFORE_EXP).is_err());
}

/// RFC 8037 A.4/A.5: Ed25519 JWS over a non-JSON payload, verified with the A.2
/// public JWK loaded as a (kid-less) JWKS.
#[test]
fn rfc8037_a4_ed25519() {
    let v = vector("rfc8037_a.json");
    let jwks_json = serde_json::json!({"keys": [v["public_jwk"].clone()]}).to_string();
    let jwks = Jwks::from_json(&jwks_json).expect("RFC 8037 A.2 JWK parses");
    assert_eq!(jwks.keys.len(), 1);
    assert_eq!(jwks.keys[0].algorithm().expect("alg"), Algorithm::EdDSA);
    let ring = Keyring::from_jwks(&jwks).expect("ring");
    let jws = v["jws"].as_str().expect("jws");
    let out = ring.verify_jws(jws).expect("RFC 8037 A.4 verifies");
    assert_eq!(
        out.payload,
        v["expected_payload"].as_str().expect("p").as_bytes()
    );
    assert_eq!(out.kid, None);
    // It is a JWS but not a JWT: claims parsing must refuse it.
    assert!(matches!(ring.verify(jws), Err(VerifyError::Malformed(_))));

    // The A.1 private key `d` wrapped as PKCS#8 v1 (RFC 8410 prefix) reproduces the
    // A.2 public key through our loader's consistency check.
    let d = URL_SAFE_NO_PAD
        .decode(v["private_d"].as_str().expect("d"))
        .expect("b64");
    let mut pkcs8 = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    pkcs8.extend_from_slice(&d);
    let mut jwk = v["public_jwk"].clone();
    jwk["kid"] = "rfc8037".into();
    let material = serde_json::json!({
        "kid": "rfc8037",
        "alg": "EdDSA",
        "private_pkcs8": URL_SAFE_NO_PAD.encode(&pkcs8),
        "public_jwk": jwk,
    });
    let m = KeyMaterial::from_json(&material.to_string()).expect("d matches x");
    // Ed25519 is deterministic: signing the A.4 input with our key reproduces the RFC
    // signature (checked through jsonwebtoken's signer, which is what `sign` uses).
    let (input, sig) = jws.rsplit_once('.').expect("dot");
    let key = jsonwebtoken::EncodingKey::from_ed_der(
        rotor_keyring::secrecy::ExposeSecret::expose_secret(m.private_pkcs8().expect("pkcs8")),
    );
    let ours = jsonwebtoken::crypto::sign(input.as_bytes(), &key, jsonwebtoken::Algorithm::EdDSA)
        .expect("sign");
    assert_eq!(ours, sig);
}

/// RFC 7517 A.1: the example public JWKS. The EC key is `use: enc`, so only the RSA
/// signature key is loaded for verification.
#[test]
fn rfc7517_a1_public_keys() {
    let text = raw("rfc7517_a1_public_jwks.json");
    let all: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(all["keys"].as_array().expect("keys").len(), 2);
    let jwks = Jwks::from_json(&text).expect("parses");
    assert_eq!(jwks.keys.len(), 1);
    let rsa = &jwks.keys[0];
    assert_eq!(rsa.kid.as_deref(), Some("2011-04-29"));
    assert_eq!(rsa.algorithm().expect("alg"), Algorithm::RS256);
    assert_eq!(
        URL_SAFE_NO_PAD
            .decode(rsa.n.as_deref().expect("n"))
            .expect("n")
            .len(),
        256
    );
    let ring = Keyring::from_jwks(&jwks).expect("ring");
    assert!(ring.contains_kid("2011-04-29"));
    assert!(!ring.contains_kid("1"));

    // The EC key itself is valid P-256: loading it with use=sig works.
    let mut ec = all["keys"][0].clone();
    ec["use"] = "sig".into();
    let one = Jwks::from_json(&serde_json::json!({"keys":[ec]}).to_string()).expect("ec");
    assert_eq!(one.keys[0].algorithm().expect("alg"), Algorithm::ES256);
}

/// RFC 7517 A.2: private keys must never be accepted as a JWKS.
#[test]
fn rfc7517_a2_private_keys_refused() {
    let text = raw("rfc7517_a2_private_jwks.json");
    let all: Value = serde_json::from_str(&text).expect("json");
    assert!(all["keys"][0]["d"].is_string());
    assert!(matches!(
        Jwks::from_json(&text),
        Err(KeyError::PrivateMaterialInJwks { .. })
    ));
}

/// RFC 7517 B: RSA key with an x5c chain; the certificate carries the same modulus.
#[test]
fn rfc7517_b_x5c() {
    let text = raw("rfc7517_b_x5c.json");
    let jwk: Value = serde_json::from_str(&text).expect("json");
    let jwks =
        Jwks::from_json(&serde_json::json!({"keys":[jwk.clone()]}).to_string()).expect("parses");
    assert_eq!(jwks.keys.len(), 1);
    assert_eq!(jwks.keys[0].kid.as_deref(), Some("1b94c"));
    assert_eq!(jwks.keys[0].algorithm().expect("alg"), Algorithm::RS256);
    Keyring::from_jwks(&jwks).expect("ring");
    // Typing check: the DER certificate contains the JWK modulus bytes.
    let n = URL_SAFE_NO_PAD
        .decode(jwk["n"].as_str().expect("n"))
        .expect("n");
    let cert = STANDARD
        .decode(jwk["x5c"][0].as_str().expect("x5c"))
        .expect("x5c is base64");
    assert!(cert.windows(n.len()).any(|w| w == n.as_slice()));
}
