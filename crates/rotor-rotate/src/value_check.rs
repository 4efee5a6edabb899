//! The one check of a value an operator supplies (`rotor put` and `PUT /v1/secrets/{name}/value`).
//!
//! Why here: a value of the wrong shape, once stored, breaks every later reader (a JWKS built
//! from a key that does not parse, a render of `{{ pg.current.password }}`), so both ways in
//! refuse it before anything is stored, with the same reason. Reasons name the secret and the
//! shape expected, never the value.

use rotor_core::config::KindSettings;
use rotor_core::{Credential, SecretSpec, SecretValue};

/// Why a supplied value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("secret {secret} ({kind}): {reason}")]
pub struct ValueError {
    pub secret: String,
    pub kind: String,
    /// What is wrong and what to send instead.
    pub reason: String,
}

/// Checks `value` against the shape `spec`'s kind needs, and returns the version metadata to
/// store with it (non-secret fields only: a username, a `kid` and algorithm).
pub fn check(spec: &SecretSpec, value: &SecretValue) -> Result<serde_json::Value, ValueError> {
    let refuse = |reason: String| ValueError {
        secret: spec.name.to_string(),
        kind: spec.kind.to_string(),
        reason,
    };
    if value.is_empty() {
        return Err(refuse("the value is empty; send the secret's value".into()));
    }
    match &spec.settings {
        KindSettings::Postgres(_) | KindSettings::Redis(_) => {
            let cred = Credential::parse(value).map_err(|e| {
                refuse(format!(
                    "the value {e}; send a JSON object {{\"username\": \"...\", \"password\": \"...\"}} (both non-empty strings)"
                ))
            })?;
            Ok(serde_json::json!({ "username": cred.username }))
        }
        KindSettings::Jwt(j) => {
            let text = value
                .expose_str()
                .map_err(|_| refuse("a JWT key must be UTF-8 JSON in rotor's keyring format (as `rotor keyring NAME --reveal` prints one key)".into()))?;
            let key = rotor_keyring::KeyMaterial::from_json(text).map_err(|e| {
                refuse(format!(
                    "the value is not a key in rotor's keyring format ({}); export one with `rotor keyring NAME --reveal`",
                    key_error_kind(&e)
                ))
            })?;
            let want = crate::jwt::algorithm(j.algorithm);
            if key.alg() != want {
                return Err(refuse(format!(
                    "the key is {} but the secret is configured for {}; send a {} key",
                    key.alg().as_str(),
                    want.as_str(),
                    want.as_str()
                )));
            }
            if !key.can_sign() {
                return Err(refuse(
                    "the key has no private part, so it cannot sign; send the full key, not its public JWK".into(),
                ));
            }
            Ok(serde_json::json!({ "kid": key.kid(), "alg": key.alg().as_str() }))
        }
        _ => Ok(serde_json::json!({})),
    }
}

/// What kind of problem a key parse hit, without the parser's text (which may quote input).
fn key_error_kind(e: &rotor_keyring::KeyError) -> &'static str {
    use rotor_keyring::KeyError as K;
    match e {
        K::Json(_) => "not valid key JSON",
        K::InvalidDocument(_) => "an invalid key document",
        _ => "the key material is invalid",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rotor_keyring::secrecy::ExposeSecret;

    fn spec(body: &str) -> SecretSpec {
        let text = format!("[store]\nkind = \"sqlite\"\n[secrets.s]\ntier = \"high\"\n{body}");
        let cfg = rotor_core::config::parse(&text, std::path::Path::new("/tmp/r.toml"), &|_| None)
            .unwrap_or_else(|e| panic!("{e}"));
        cfg.secrets
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("one secret"))
    }

    #[test]
    fn refuses_wrong_shapes_and_keeps_metadata_of_right_ones() {
        let pg =
            spec("kind = \"postgres\"\nurl = \"postgres://127.0.0.1:5432/app\"\nrole = \"app\"\n");
        for bad in [
            "not json",
            "{\"username\": \"app\"}",
            "{\"username\": \"\", \"password\": \"x\"}",
            "[1]",
        ] {
            let e = check(&pg, &SecretValue::from_slice(bad.as_bytes())).unwrap_err();
            assert!(e.reason.contains("username"), "{e}");
            assert!(!e.to_string().contains(bad) || bad.len() < 5, "{e}");
        }
        let md = check(
            &pg,
            &SecretValue::from_slice(br#"{"username":"app","password":"pw-secret"}"#),
        )
        .unwrap();
        assert_eq!(md, serde_json::json!({"username": "app"}));

        let es = spec("kind = \"jwt\"\nalgorithm = \"ES256\"\n");
        let e = check(&es, &SecretValue::from_slice(b"garbage-key-xyz")).unwrap_err();
        assert!(e.reason.contains("keyring format"), "{e}");
        assert!(!e.to_string().contains("garbage"), "{e}");
        let ed =
            rotor_keyring::KeyMaterial::generate(rotor_keyring::Algorithm::EdDSA, None).unwrap();
        let e = check(
            &es,
            &SecretValue::from_slice(ed.to_json().expose_secret().as_bytes()),
        )
        .unwrap_err();
        assert!(
            e.reason.contains("EdDSA") && e.reason.contains("ES256"),
            "{e}"
        );
        let good =
            rotor_keyring::KeyMaterial::generate(rotor_keyring::Algorithm::ES256, None).unwrap();
        let md = check(
            &es,
            &SecretValue::from_slice(good.to_json().expose_secret().as_bytes()),
        )
        .unwrap();
        assert_eq!(md["kid"], good.kid());

        let random = spec("kind = \"random\"\n");
        assert!(check(&random, &SecretValue::from_slice(b"")).is_err());
        assert!(check(&random, &SecretValue::from_slice(b"anything")).is_ok());
    }
}
