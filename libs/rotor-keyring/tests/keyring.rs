//! Sign/verify, rotation, algorithm-confusion and claim-validation tests.
//! Over 600 lines on purpose: the algorithm-confusion and claim cases read as one matrix.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rotor_keyring::secrecy::ExposeSecret;
use rotor_keyring::{
    Algorithm, Jwks, KeyMaterial, Keyring, KeyringDocument, MAX_KID_LEN, SignError, Stage,
    Timestamp, VerifyError, VerifyOptions,
};
use serde_json::json;

const NOW: i64 = 1_800_000_000;

fn new_key(alg: Algorithm) -> KeyMaterial {
    let bits = (alg == Algorithm::RS256).then_some(2048);
    KeyMaterial::generate(alg, bits).expect("generate")
}

fn claims() -> serde_json::Value {
    json!({"sub": "user-1", "iat": NOW, "exp": NOW + 300})
}

fn single(m: KeyMaterial) -> Keyring {
    Keyring::from_document(&KeyringDocument::new().with(m, Stage::Current, None)).expect("keyring")
}

fn b64(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(s)
}

#[test]
fn sign_verify_each_algorithm() {
    for alg in Algorithm::ALL {
        let m = new_key(alg);
        let kid = m.kid().to_owned();
        let ring = single(m);
        let token = ring.sign(&claims()).expect("sign");
        let header: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(token.split('.').next().expect("header"))
                .expect("b64"),
        )
        .expect("json");
        assert_eq!(header["alg"], alg.as_str(), "{alg}");
        assert_eq!(header["kid"], kid.as_str(), "{alg}");
        let c = ring.verify_at(&token, NOW).expect("verify");
        assert_eq!(c.get("sub"), Some(&json!("user-1")));
        assert_eq!(c.kid.as_deref(), Some(kid.as_str()));
        assert_eq!(c.stage, Stage::Current);
        // Tampering with the payload breaks the signature.
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = b64(r#"{"sub":"admin","exp":1900000000}"#);
        parts[1] = &forged;
        assert_eq!(
            ring.verify_at(&parts.join("."), NOW),
            Err(VerifyError::BadSignature),
            "{alg}"
        );
    }
}

#[test]
fn generated_material_shapes() {
    for alg in Algorithm::ALL {
        let m = new_key(alg);
        assert_eq!(URL_SAFE_NO_PAD.decode(m.kid()).expect("kid b64").len(), 16);
        let v: serde_json::Value = serde_json::from_str(m.to_json().expose_secret()).expect("json");
        assert_eq!(v["alg"], alg.as_str());
        assert_eq!(v["kid"], m.kid());
        if let Some(len) = alg.hmac_key_len() {
            let k = URL_SAFE_NO_PAD
                .decode(v["k"].as_str().expect("k"))
                .expect("b64");
            // The key is the base64url text of `len` random bytes (full strength), and
            // `secret` is that text: what an app reading an env var uses as the key.
            let text = v["secret"].as_str().expect("secret");
            assert_eq!(k, text.as_bytes());
            assert_eq!(URL_SAFE_NO_PAD.decode(text).expect("b64 text").len(), len);
            assert_eq!(m.hmac_text(), Some(text));
            assert!(v.get("public_jwk").is_none());
            assert!(m.public_jwk().is_none());
        } else {
            assert!(v.get("k").is_none());
            assert!(v["private_pkcs8"].is_string());
            let jwk = &v["public_jwk"];
            assert_eq!(jwk["kid"], m.kid());
            assert_eq!(jwk["alg"], alg.as_str());
            assert_eq!(jwk["use"], "sig");
            match alg {
                Algorithm::ES256 => {
                    assert_eq!(jwk["kty"], "EC");
                    assert_eq!(jwk["crv"], "P-256");
                }
                Algorithm::EdDSA => {
                    assert_eq!(jwk["kty"], "OKP");
                    assert_eq!(jwk["crv"], "Ed25519");
                }
                _ => {
                    assert_eq!(jwk["kty"], "RSA");
                    assert_eq!(jwk["e"], "AQAB");
                }
            }
        }
        // Round trip through the stored JSON keeps the key usable and identical.
        let back = KeyMaterial::from_json(m.to_json().expose_secret()).expect("parse back");
        assert_eq!(back.kid(), m.kid());
        assert_eq!(back.to_json().expose_secret(), m.to_json().expose_secret());
        let t = single(m).sign(&claims()).expect("sign");
        single(back)
            .verify_at(&t, NOW)
            .expect("verify with reparsed key");
    }
}

#[test]
fn kids_are_random_and_debug_is_redacted() {
    let a = new_key(Algorithm::HS256);
    let b = new_key(Algorithm::HS256);
    assert_ne!(a.kid(), b.kid());
    let secret_b64 = URL_SAFE_NO_PAD.encode(a.hmac_secret().expect("hmac").expose_secret());
    let dbg = format!("{a:?}");
    assert!(dbg.contains("REDACTED"));
    assert!(!dbg.contains(&secret_b64));
    let e = new_key(Algorithm::EdDSA);
    let pkcs8 = URL_SAFE_NO_PAD.encode(e.private_pkcs8().expect("pkcs8").expose_secret());
    assert!(!format!("{e:?}").contains(&pkcs8));
    let doc = KeyringDocument::new().with(a, Stage::Current, None);
    assert!(!format!("{doc:?}").contains(&secret_b64));
}

#[test]
fn rejects_bad_material() {
    assert!(KeyMaterial::generate(Algorithm::HS256, Some(2048)).is_err());
    assert!(KeyMaterial::generate(Algorithm::RS256, Some(1024)).is_err());
    assert!(KeyMaterial::from_hmac_secret(Algorithm::HS256, "k", &[7; 31]).is_err());
    assert!(KeyMaterial::from_hmac_secret(Algorithm::HS512, "k", &[7; 63]).is_err());
    assert!(KeyMaterial::from_hmac_secret(Algorithm::HS256, "", &[7; 32]).is_err());
    assert!(
        KeyMaterial::from_hmac_secret(Algorithm::HS256, "x".repeat(MAX_KID_LEN + 1), &[7; 32])
            .is_err()
    );
    // public_jwk that does not belong to private_pkcs8
    let a = new_key(Algorithm::ES256);
    let b = new_key(Algorithm::ES256);
    let mut v: serde_json::Value = serde_json::from_str(a.to_json().expose_secret()).expect("json");
    let mut other_pub = serde_json::to_value(b.public_jwk().expect("jwk")).expect("v");
    other_pub["kid"] = json!(a.kid());
    v["public_jwk"] = other_pub;
    assert!(KeyMaterial::from_json(&v.to_string()).is_err());
    // Unknown alg
    assert!(KeyMaterial::from_json(r#"{"kid":"a","alg":"none","k":"AAAA"}"#).is_err());
}

fn rotation_doc(
    pending: &KeyMaterial,
    current: &KeyMaterial,
    previous: &KeyMaterial,
    prev_not_after: i64,
) -> KeyringDocument {
    KeyringDocument::new()
        .with(pending.clone(), Stage::Pending, None)
        .with(current.clone(), Stage::Current, None)
        .with(
            previous.clone(),
            Stage::Previous,
            Some(Timestamp::from_second(prev_not_after).expect("ts")),
        )
}

#[test]
fn rotation_scenario() {
    for alg in [Algorithm::HS256, Algorithm::ES256, Algorithm::EdDSA] {
        let k1 = new_key(alg);
        let k2 = new_key(alg);
        let k3 = new_key(alg);
        // Phase 1: k1 current, k2 pending.
        let ring1 = Keyring::from_document(
            &KeyringDocument::new()
                .with(k1.clone(), Stage::Current, None)
                .with(k2.clone(), Stage::Pending, None),
        )
        .expect("ring1");
        let t1 = ring1.sign(&claims()).expect("sign");
        assert_eq!(ring1.current_kid(), Some(k1.kid()));
        // Pending keys verify (signed elsewhere, e.g. a signer that already rotated) ...
        let t_pending = single(k2.clone()).sign(&claims()).expect("sign");
        let c = ring1.verify_at(&t_pending, NOW).expect("pending verifies");
        assert_eq!(c.stage, Stage::Pending);
        // ... but never sign.
        assert_eq!(
            ring1.verify_at(&t1, NOW).expect("v").kid.as_deref(),
            Some(k1.kid())
        );

        // Phase 2: rotate. k2 current, k1 previous until NOW+100, k3 pending.
        let ring2 = Keyring::from_document(&rotation_doc(&k3, &k2, &k1, NOW + 100)).expect("ring2");
        let t2 = ring2.sign(&claims()).expect("sign");
        assert_eq!(
            ring2.verify_at(&t2, NOW).expect("v").kid.as_deref(),
            Some(k2.kid())
        );
        let c = ring2.verify_at(&t1, NOW).expect("previous still verifies");
        assert_eq!(c.stage, Stage::Previous);
        // After not_after the previous key is retired.
        assert_eq!(
            ring2.verify_at(&t1, NOW + 101),
            Err(VerifyError::KeyRetired(k1.kid().to_owned()))
        );
        // Phase 3: k1 dropped entirely.
        let ring3 = Keyring::from_document(
            &KeyringDocument::new()
                .with(k3.clone(), Stage::Current, None)
                .with(k2.clone(), Stage::Previous, None),
        )
        .expect("ring3");
        assert_eq!(
            ring3.verify_at(&t1, NOW),
            Err(VerifyError::UnknownKid(k1.kid().to_owned()))
        );
        ring3.verify_at(&t2, NOW).expect("k2 as previous");
    }
}

#[test]
fn pending_only_keyring_cannot_sign() {
    let ring = Keyring::from_document(&KeyringDocument::new().with(
        new_key(Algorithm::ES256),
        Stage::Pending,
        None,
    ))
    .expect("ring");
    assert!(matches!(ring.sign(&claims()), Err(SignError::NoSigningKey)));
}

#[test]
fn document_invariants_and_json() {
    let a = new_key(Algorithm::HS256);
    let b = new_key(Algorithm::ES256);
    let two_current = KeyringDocument::new()
        .with(a.clone(), Stage::Current, None)
        .with(b.clone(), Stage::Current, None);
    assert!(Keyring::from_document(&two_current).is_err());
    let dup = KeyringDocument::new()
        .with(a.clone(), Stage::Current, None)
        .with(a.clone(), Stage::Previous, None);
    assert!(dup.validate().is_err());
    assert!(KeyringDocument::new().validate().is_err());

    let doc = KeyringDocument::new()
        .with(
            a.clone(),
            Stage::Previous,
            Some(Timestamp::from_second(NOW).expect("ts")),
        )
        .with(b.clone(), Stage::Current, None);
    let json: serde_json::Value = serde_json::from_str(&doc.to_json()).expect("json");
    let keys = json["keys"].as_array().expect("keys");
    assert_eq!(keys[0]["stage"], "previous");
    assert_eq!(keys[0]["not_after"], "2027-01-15T08:00:00Z");
    assert_eq!(keys[0]["alg"], "HS256");
    assert!(keys[0]["k"].is_string());
    assert_eq!(keys[1]["stage"], "current");
    assert_eq!(keys[1]["not_after"], serde_json::Value::Null);
    assert!(keys[1]["public_jwk"].is_object());
    let back = KeyringDocument::from_json(&doc.to_json()).expect("parse");
    assert_eq!(*back.to_json(), *doc.to_json());
    // Entry without stage is rejected in a document.
    let bad = json!({"keys":[serde_json::from_str::<serde_json::Value>(a.to_json().expose_secret()).expect("v")]});
    assert!(KeyringDocument::from_json(&bad.to_string()).is_err());
}

#[test]
fn jwks_publishes_only_asymmetric_public_keys() {
    let h = new_key(Algorithm::HS256);
    let e = new_key(Algorithm::ES256);
    let d = new_key(Algorithm::EdDSA);
    let p = new_key(Algorithm::ES256);
    let doc = KeyringDocument::new()
        .with(h.clone(), Stage::Previous, None)
        .with(e.clone(), Stage::Current, None)
        .with(d.clone(), Stage::Previous, None)
        .with(p.clone(), Stage::Pending, None);
    let jwks = doc.jwks();
    let kids: Vec<_> = jwks
        .keys
        .iter()
        .map(|k| k.kid.clone().expect("kid"))
        .collect();
    assert_eq!(kids, vec![e.kid(), d.kid(), p.kid()]);
    let text = jwks.to_json();
    assert!(!text.contains(h.kid()));
    assert!(!text.contains("\"d\""));
    assert!(!text.contains("private"));
    assert_eq!(Keyring::from_document(&doc).expect("ring").jwks(), jwks);

    // A verify-only keyring from the JWKS verifies tokens from the full keyring.
    let full = Keyring::from_document(&doc).expect("ring");
    let token = full.sign(&claims()).expect("sign");
    let verifier = Keyring::from_jwks(&Jwks::from_json(&text).expect("parse")).expect("ring");
    verifier.verify_at(&token, NOW).expect("verify via jwks");
    assert!(matches!(
        verifier.sign(&claims()),
        Err(SignError::NoSigningKey)
    ));
    // from_slice auto-detects both formats.
    Keyring::from_slice(text.as_bytes())
        .expect("jwks")
        .verify_at(&token, NOW)
        .expect("v");
    Keyring::from_slice(doc.to_json().as_bytes())
        .expect("doc")
        .verify_at(&token, NOW)
        .expect("v");
}

/// Builds `header.payload.signature` from raw parts.
fn raw_token(header: &serde_json::Value, claims: &serde_json::Value, sig: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(&header.to_string()),
        b64(&claims.to_string()),
        URL_SAFE_NO_PAD.encode(sig)
    )
}

#[test]
fn alg_none_is_rejected() {
    for alg in [Algorithm::HS256, Algorithm::ES256] {
        let m = new_key(alg);
        let kid = m.kid().to_owned();
        let ring = single(m);
        for none in ["none", "None", "NONE"] {
            let t = raw_token(&json!({"alg": none, "kid": kid}), &claims(), b"");
            assert!(
                matches!(
                    ring.verify_at(&t, NOW),
                    Err(VerifyError::AlgorithmMismatch { .. })
                ),
                "{none}"
            );
            // Also with the trailing dot only and without kid.
            let t = format!(
                "{}.{}.",
                b64(&json!({"alg": none}).to_string()),
                b64(&claims().to_string())
            );
            assert!(matches!(
                ring.verify_at(&t, NOW),
                Err(VerifyError::AlgorithmMismatch { .. })
            ));
        }
    }
}

#[test]
fn hs256_signed_with_public_key_is_rejected() {
    // Classic confusion: attacker HMACs with the (public) key bytes and sets alg HS256.
    for alg in [Algorithm::ES256, Algorithm::RS256, Algorithm::EdDSA] {
        let m = new_key(alg);
        let kid = m.kid().to_owned();
        let jwk = m.public_jwk().expect("jwk").clone();
        let ring = single(m);
        let candidates: Vec<Vec<u8>> = vec![
            serde_json::to_vec(&jwk).expect("jwk json"),
            URL_SAFE_NO_PAD
                .decode(jwk.x.clone().or(jwk.n.clone()).expect("x or n"))
                .expect("b64"),
            ring.jwks().to_json().into_bytes(),
        ];
        for secret in candidates {
            let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
            header.kid = Some(kid.clone());
            let t = jsonwebtoken::encode(
                &header,
                &claims(),
                &jsonwebtoken::EncodingKey::from_secret(&secret).expect("key"),
            )
            .expect("encode");
            assert_eq!(
                ring.verify_at(&t, NOW),
                Err(VerifyError::AlgorithmMismatch {
                    expected: alg,
                    found: "HS256".into()
                })
            );
        }
    }
}

#[test]
fn unknown_and_cross_family_algs_are_rejected() {
    let m = new_key(Algorithm::HS256);
    let kid = m.kid().to_owned();
    let ring = single(m);
    let good = ring.sign(&claims()).expect("sign");
    let sig = good.rsplit('.').next().expect("sig").to_owned();
    for alg in [
        "HS999", "HS384", "HS512", "RS256", "ES256", "EdDSA", "PS256", "hs256", "",
    ] {
        let t = format!(
            "{}.{}.{}",
            b64(&json!({"alg": alg, "kid": kid}).to_string()),
            b64(&claims().to_string()),
            sig
        );
        assert!(
            matches!(
                ring.verify_at(&t, NOW),
                Err(VerifyError::AlgorithmMismatch { .. })
            ),
            "{alg}"
        );
    }
    // alg that is not a string / missing
    for h in [
        json!({"kid": kid}),
        json!({"alg": 5, "kid": kid}),
        json!(["HS256"]),
    ] {
        let t = raw_token(&h, &claims(), b"x");
        assert!(
            matches!(ring.verify_at(&t, NOW), Err(VerifyError::Malformed(_))),
            "{h}"
        );
    }
    // crit is refused
    let t = raw_token(
        &json!({"alg":"HS256","kid":kid,"crit":["b64"],"b64":false}),
        &claims(),
        b"x",
    );
    assert_eq!(
        ring.verify_at(&t, NOW),
        Err(VerifyError::UnsupportedCritical)
    );
}

#[test]
fn missing_kid_rules() {
    // One key: a token without kid is accepted.
    let m = new_key(Algorithm::HS256);
    let secret = m.hmac_secret().expect("s").expose_secret().to_vec();
    let ring = single(m);
    let t = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims(),
        &jsonwebtoken::EncodingKey::from_secret(&secret).expect("key"),
    )
    .expect("encode");
    ring.verify_at(&t, NOW)
        .expect("single key accepts kid-less token");

    // Two HMAC keys: the shared secrets are tried in turn (current, then previous), as an
    // app holding SECRET_KEY and SECRET_KEY_PREVIOUS does; the key whose tag matches wins.
    let m1 = KeyMaterial::from_hmac_secret(Algorithm::HS256, "one", &secret).expect("m1");
    let ring2 = Keyring::from_document(
        &KeyringDocument::new().with(m1, Stage::Previous, None).with(
            new_key(Algorithm::HS256),
            Stage::Current,
            None,
        ),
    )
    .expect("ring");
    let c = ring2
        .verify_at(&t, NOW)
        .expect("kid-less HMAC token, previous key");
    assert_eq!((c.kid.as_deref(), c.stage), (Some("one"), Stage::Previous));
    // A kid-less token no key signed is a bad signature.
    let stranger = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims(),
        &jsonwebtoken::EncodingKey::from_secret(&[7u8; 32]).expect("key"),
    )
    .expect("encode");
    assert_eq!(
        ring2.verify_at(&stranger, NOW),
        Err(VerifyError::BadSignature)
    );
    // Another HMAC algorithm than the keys' is not tried against them.
    let hs384 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS384),
        &claims(),
        &jsonwebtoken::EncodingKey::from_secret(&secret).expect("key"),
    )
    .expect("encode");
    assert_eq!(ring2.verify_at(&hs384, NOW), Err(VerifyError::MissingKid));
    // Asymmetric keys without a kid: still refused when there are several.
    let es = Keyring::from_document(
        &KeyringDocument::new()
            .with(new_key(Algorithm::ES256), Stage::Current, None)
            .with(new_key(Algorithm::ES256), Stage::Previous, None),
    )
    .expect("ring");
    let es_token = {
        let one = Keyring::from_document(&KeyringDocument::new().with(
            new_key(Algorithm::ES256),
            Stage::Current,
            None,
        ))
        .expect("ring");
        let signed = one.sign(&claims()).expect("sign");
        // Drop the kid from the header (the signature no longer matters: selection fails first).
        let (_, rest) = signed.split_once('.').expect("jwt");
        format!(
            "{}.{rest}",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256","typ":"JWT"}"#)
        )
    };
    assert_eq!(es.verify_at(&es_token, NOW), Err(VerifyError::MissingKid));

    // kid must match exactly (no prefix / case folding).
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    for k in ["On", "one ", "ONE", "onee"] {
        h.kid = Some(k.into());
        let t = jsonwebtoken::encode(
            &h,
            &claims(),
            &jsonwebtoken::EncodingKey::from_secret(&secret).expect("key"),
        )
        .expect("encode");
        assert_eq!(
            ring2.verify_at(&t, NOW),
            Err(VerifyError::UnknownKid(k.into()))
        );
    }
    // kid of the wrong JSON type is malformed.
    let t = raw_token(&json!({"alg":"HS256","kid":1}), &claims(), b"x");
    assert!(matches!(
        ring2.verify_at(&t, NOW),
        Err(VerifyError::Malformed(_))
    ));
}

#[test]
fn oversize_kid_and_token() {
    let ring = single(new_key(Algorithm::HS256));
    let t = raw_token(
        &json!({"alg":"HS256","kid":"k".repeat(MAX_KID_LEN + 1)}),
        &claims(),
        b"x",
    );
    assert_eq!(
        ring.verify_at(&t, NOW),
        Err(VerifyError::KidTooLong(MAX_KID_LEN + 1))
    );
    let big = json!({"exp": NOW + 10, "pad": "x".repeat(10_000)});
    let t = ring.sign(&big).expect("sign");
    assert!(matches!(
        ring.verify_at(&t, NOW),
        Err(VerifyError::TokenTooLarge { .. })
    ));
    let ring = ring.with_options(VerifyOptions::default().with_max_token_len(64 * 1024));
    ring.verify_at(&t, NOW).expect("larger limit accepts it");
}

#[test]
fn malformed_tokens() {
    let ring = single(new_key(Algorithm::HS256));
    let good = ring.sign(&claims()).expect("sign");
    for t in [
        "",
        ".",
        "..",
        "a.b",
        "a.b.c.d",
        "!!!.b.c",
        &format!("{good}.x"),
        &format!("{}.{}", good, "extra"),
    ] {
        assert!(ring.verify_at(t, NOW).is_err(), "{t}");
    }
    // Signature stripped.
    let stripped = good.rsplit_once('.').expect("dot").0.to_owned() + ".";
    assert_eq!(
        ring.verify_at(&stripped, NOW),
        Err(VerifyError::BadSignature)
    );
    // Payload that is not a JSON object, correctly signed.
    let t = ring.sign(&json!([1, 2, 3])).expect("sign");
    assert!(matches!(
        ring.verify_at(&t, NOW),
        Err(VerifyError::Malformed(_))
    ));
}

#[test]
fn time_claims_and_leeway() {
    let ring =
        single(new_key(Algorithm::EdDSA)).with_options(VerifyOptions::default().with_leeway(30));
    let sign = |c: serde_json::Value| ring.sign(&c).expect("sign");

    let t = sign(json!({"exp": NOW}));
    assert_eq!(ring.verify_at(&t, NOW + 30), Err(VerifyError::Expired));
    ring.verify_at(&t, NOW + 29).expect("within leeway");

    let t = sign(json!({"exp": NOW + 1000, "nbf": NOW + 100}));
    assert_eq!(ring.verify_at(&t, NOW), Err(VerifyError::NotYetValid));
    ring.verify_at(&t, NOW + 70).expect("nbf within leeway");

    let t = sign(json!({"exp": NOW + 1000, "iat": NOW + 100}));
    assert_eq!(ring.verify_at(&t, NOW), Err(VerifyError::IssuedInFuture));
    ring.verify_at(&t, NOW + 70).expect("iat within leeway");

    let t = sign(json!({"sub": "x"}));
    assert_eq!(
        ring.verify_at(&t, NOW),
        Err(VerifyError::MissingClaim("exp"))
    );
    let lax = single(new_key(Algorithm::HS256))
        .with_options(VerifyOptions::default().with_require_exp(false));
    lax.verify_at(&lax.sign(&json!({"sub":"x"})).expect("s"), NOW)
        .expect("exp optional");

    let t = sign(json!({"exp": "tomorrow"}));
    assert_eq!(
        ring.verify_at(&t, NOW),
        Err(VerifyError::InvalidClaim("exp"))
    );
    let t = sign(json!({"exp": (NOW + 10) as f64 + 0.5}));
    ring.verify_at(&t, NOW).expect("fractional NumericDate");

    // Zero leeway is exact.
    let strict =
        single(new_key(Algorithm::HS256)).with_options(VerifyOptions::default().with_leeway(0));
    let t = strict.sign(&json!({"exp": NOW + 1})).expect("s");
    strict.verify_at(&t, NOW).expect("valid");
    assert_eq!(strict.verify_at(&t, NOW + 1), Err(VerifyError::Expired));

    // Real clock path.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let t = ring.sign(&json!({"exp": now + 60})).expect("s");
    ring.verify(&t).expect("verify with system clock");
}

#[test]
fn issuer_and_audience() {
    let ring = single(new_key(Algorithm::HS256)).with_options(
        VerifyOptions::default()
            .with_issuers(["rotor"])
            .with_audiences(["api", "web"]),
    );
    let ok = ring
        .sign(&json!({"exp": NOW + 10, "iss": "rotor", "aud": ["x", "web"]}))
        .expect("s");
    ring.verify_at(&ok, NOW).expect("ok");
    let t = ring
        .sign(&json!({"exp": NOW + 10, "iss": "evil", "aud": "api"}))
        .expect("s");
    assert_eq!(ring.verify_at(&t, NOW), Err(VerifyError::InvalidIssuer));
    let t = ring
        .sign(&json!({"exp": NOW + 10, "iss": "rotor", "aud": "other"}))
        .expect("s");
    assert_eq!(ring.verify_at(&t, NOW), Err(VerifyError::InvalidAudience));
    let t = ring
        .sign(&json!({"exp": NOW + 10, "iss": "rotor"}))
        .expect("s");
    assert_eq!(
        ring.verify_at(&t, NOW),
        Err(VerifyError::MissingClaim("aud"))
    );
}

#[test]
fn verify_as_typed() {
    #[derive(serde::Deserialize)]
    struct My {
        sub: String,
        exp: i64,
    }
    let ring = single(new_key(Algorithm::HS384));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let t = ring.sign(&json!({"sub": "u", "exp": now + 60})).expect("s");
    let my: My = ring.verify_as(&t).expect("typed");
    assert_eq!(my.sub, "u");
    assert_eq!(my.exp as u64, now + 60);
}
