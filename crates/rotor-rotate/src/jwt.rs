//! `kind = "jwt"`: signing keys with a random `kid`, published through a keyring and JWKS.

use async_trait::async_trait;
use jiff::Timestamp;
use rotor_core::config::{JwtAlgorithm, JwtSettings, KindSettings};
use rotor_core::rotator::{Generated, PlannedStep, StepContext};
use rotor_core::store::Versioned;
use rotor_core::{Kind, Rotator, RotatorError, SecretSpec, SecretValue, Stage, Step};
use rotor_keyring::secrecy::ExposeSecret;
use rotor_keyring::{Algorithm, KeyMaterial, Keyring, KeyringDocument};

/// Rotates JWT signing keys. Stateless.
#[derive(Debug, Default, Clone, Copy)]
pub struct JwtRotator;

/// The keyring's algorithm for a configured one.
pub fn algorithm(alg: JwtAlgorithm) -> Algorithm {
    match alg {
        JwtAlgorithm::HS256 => Algorithm::HS256,
        JwtAlgorithm::HS384 => Algorithm::HS384,
        JwtAlgorithm::HS512 => Algorithm::HS512,
        JwtAlgorithm::ES256 => Algorithm::ES256,
        JwtAlgorithm::EdDSA => Algorithm::EdDSA,
        JwtAlgorithm::RS256 => Algorithm::RS256,
    }
}

fn settings(spec: &SecretSpec) -> Result<&JwtSettings, RotatorError> {
    match &spec.settings {
        KindSettings::Jwt(j) => Ok(j),
        _ => Err(RotatorError::permanent(format!(
            "secret {} is not a JWT key",
            spec.name
        ))),
    }
}

/// Parses a stored version's value as key material.
pub fn material(secret: &str, v: &Versioned) -> Result<KeyMaterial, RotatorError> {
    let text = v.value.expose_str().map_err(|_| {
        RotatorError::permanent(format!(
            "secret {secret}, version {}: the stored key is not UTF-8 JSON",
            v.meta.id
        ))
    })?;
    KeyMaterial::from_json(text).map_err(|e| {
        RotatorError::permanent(format!(
            "secret {secret}, version {}: the stored key does not parse: {e}",
            v.meta.id
        ))
        .with_fix("store a key exported by rotor (`rotor keyring NAME --reveal`), or rotate to make a new one")
    })
}

#[async_trait]
impl Rotator for JwtRotator {
    fn kind(&self) -> Kind {
        Kind::Jwt
    }

    fn plan(&self, spec: &SecretSpec) -> Vec<PlannedStep> {
        let Ok(j) = settings(spec) else {
            return Vec::new();
        };
        let mut steps = vec![
            PlannedStep {
                step: Step::Create,
                touches: format!("a new {} key with a random kid", j.algorithm.as_str()),
            },
            PlannedStep {
                step: Step::Set,
                touches: if j.algorithm.is_hmac() {
                    "the keyring (pending: verifies, does not sign)".into()
                } else {
                    "the keyring and the JWKS (pending: published, does not sign)".into()
                },
            },
            PlannedStep {
                step: Step::Test,
                touches: "sign and verify a test token with the new key".into(),
            },
        ];
        if !j.prepublish.is_zero() {
            steps.push(PlannedStep {
                step: Step::Activate,
                touches: format!("wait {} so JWKS caches learn the key", j.prepublish),
            });
        }
        steps
    }

    async fn create(&self, ctx: &StepContext<'_>) -> Result<Generated, RotatorError> {
        let j = settings(ctx.spec)?;
        let alg = algorithm(j.algorithm);
        let rsa_bits = (j.algorithm == JwtAlgorithm::RS256).then_some(j.rsa_bits);
        let key = KeyMaterial::generate(alg, rsa_bits)
            .map_err(|e| RotatorError::permanent(format!("key generation failed: {e}")))?;
        let json = key.to_json();
        Ok(Generated {
            value: SecretValue::from_slice(json.expose_secret().as_bytes()),
            metadata: serde_json::json!({ "kid": key.kid(), "alg": alg.as_str() }),
        })
    }

    async fn test(&self, ctx: &StepContext<'_>, pending: &Versioned) -> Result<(), RotatorError> {
        let key = material(ctx.spec.name.as_str(), pending)?;
        let ring = Keyring::from_document(&KeyringDocument::new().with(
            key,
            rotor_keyring::Stage::Current,
            None,
        ))
        .map_err(|e| RotatorError::permanent(format!("the new key does not load: {e}")))?;
        let now = Timestamp::now().as_second();
        let claims = serde_json::json!({ "sub": "rotor-test", "iat": now, "exp": now + 60 });
        let token = ring
            .sign(&claims)
            .map_err(|e| RotatorError::permanent(format!("the new key does not sign: {e}")))?;
        ring.verify(&token).map_err(|e| {
            RotatorError::permanent(format!(
                "a token signed by the new key does not verify: {e}"
            ))
        })?;
        Ok(())
    }
}

/// Builds the keyring document a signer or verifier loads from a secret's staged versions:
/// `pending` (published, never signs), `current` (signs), and `previous` (verifies until
/// `previous_not_after`, the end of its grace).
pub fn keyring_document(
    secret: &str,
    staged: &[(Stage, &Versioned)],
    previous_not_after: Option<Timestamp>,
) -> Result<KeyringDocument, RotatorError> {
    let mut doc = KeyringDocument::new();
    for (stage, v) in staged {
        let (stage, not_after) = match stage {
            Stage::Pending => (rotor_keyring::Stage::Pending, None),
            Stage::Current => (rotor_keyring::Stage::Current, None),
            Stage::Previous => (rotor_keyring::Stage::Previous, previous_not_after),
        };
        doc = doc.with(material(secret, v)?, stage, not_after);
    }
    doc.validate().map_err(|e| {
        RotatorError::permanent(format!("secret {secret}: the keyring is invalid: {e}"))
    })?;
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rotor_core::{Config, SecretName, VersionId, VersionMeta};

    fn spec(alg: &str) -> SecretSpec {
        let text = format!("[secrets.k]\nkind = \"jwt\"\ntier = \"high\"\nalgorithm = \"{alg}\"\n");
        let cfg: Config =
            rotor_core::config::parse(&text, std::path::Path::new("t.toml"), &|_| None)
                .expect("valid config");
        cfg.secrets.into_iter().next().expect("one secret")
    }

    fn versioned(g: Generated) -> Versioned {
        Versioned {
            meta: VersionMeta {
                id: VersionId::generate(),
                secret: SecretName::new("k").expect("valid"),
                created_at: Timestamp::now(),
                created_by: "test".into(),
                metadata: g.metadata,
                stages: vec![Stage::Pending],
            },
            value: g.value,
        }
    }

    #[tokio::test]
    async fn create_and_test_every_algorithm() {
        for alg in ["HS256", "HS384", "HS512", "ES256", "EdDSA", "RS256"] {
            let spec = spec(alg);
            let ctx = StepContext {
                spec: &spec,
                current: None,
                admin: None,
                emergency: false,
            };
            let g = JwtRotator.create(&ctx).await.expect(alg);
            assert_eq!(g.metadata["alg"], alg);
            let kid = g.metadata["kid"].as_str().expect("kid").to_owned();
            let v = versioned(g);
            assert!(!v.value.expose_str().expect("utf8").is_empty());
            JwtRotator.test(&ctx, &v).await.expect(alg);
            let doc = keyring_document("k", &[(Stage::Current, &v)], None).expect("doc");
            assert_eq!(doc.current().map(|e| e.material.kid()), Some(kid.as_str()));
        }
    }

    #[tokio::test]
    async fn kids_are_random_not_derived() {
        let spec = spec("HS256");
        let ctx = StepContext {
            spec: &spec,
            current: None,
            admin: None,
            emergency: false,
        };
        let a = JwtRotator.create(&ctx).await.expect("a");
        let b = JwtRotator.create(&ctx).await.expect("b");
        assert_ne!(a.metadata["kid"], b.metadata["kid"]);
    }
}
