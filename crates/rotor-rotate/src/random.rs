//! `kind = "random"`: a string drawn uniformly from an alphabet, from the OS CSPRNG.

use async_trait::async_trait;
use rotor_core::config::{Alphabet, KindSettings, RandomSettings};
use rotor_core::rotator::{Generated, PlannedStep, StepContext};
use rotor_core::{Kind, Rotator, RotatorError, SecretSpec, SecretValue, Step};

/// Rotates random secrets. Stateless.
#[derive(Debug, Default, Clone, Copy)]
pub struct RandomRotator;

#[async_trait]
impl Rotator for RandomRotator {
    fn kind(&self) -> Kind {
        Kind::Random
    }

    fn plan(&self, spec: &SecretSpec) -> Vec<PlannedStep> {
        let what = match &spec.settings {
            KindSettings::Random(r) => format!(
                "{} random characters ({:?} alphabet, {:.0} bits)",
                r.length,
                r.alphabet,
                r.alphabet.bits_per_char() * r.length as f64
            ),
            _ => "random characters".into(),
        };
        vec![PlannedStep {
            step: Step::Create,
            touches: what,
        }]
    }

    async fn create(&self, ctx: &StepContext<'_>) -> Result<Generated, RotatorError> {
        let KindSettings::Random(settings) = &ctx.spec.settings else {
            return Err(RotatorError::permanent(format!(
                "secret {} is not a random secret",
                ctx.spec.name
            )));
        };
        Ok(Generated {
            value: generate(settings)?,
            metadata: serde_json::json!({ "length": settings.length }),
        })
    }
}

/// Draws `settings.length` characters uniformly from the alphabet (rejection sampling, so no
/// character is more likely than another), after `settings.prefix`.
pub fn generate(settings: &RandomSettings) -> Result<SecretValue, RotatorError> {
    let chars = settings.alphabet.chars();
    draw(&chars, settings.length, &settings.prefix)
}

fn draw(chars: &[char], length: usize, prefix: &str) -> Result<SecretValue, RotatorError> {
    let n = chars.len();
    if !(2..=256).contains(&n) {
        return Err(RotatorError::permanent(format!(
            "an alphabet of {n} characters cannot be sampled (2 to 256)"
        )));
    }
    // Largest multiple of n that fits in a byte: bytes at or above it are rejected.
    let limit = 256 - (256 % n);
    let mut out = String::with_capacity(prefix.len() + length * 4);
    out.push_str(prefix);
    let mut buf = [0u8; 64];
    let mut taken = 0;
    while taken < length {
        getrandom::fill(&mut buf).map_err(|e| {
            RotatorError::permanent(format!("the OS random number generator failed: {e}"))
        })?;
        for b in buf {
            if taken == length {
                break;
            }
            if usize::from(b) < limit {
                out.push(chars[usize::from(b) % n]);
                taken += 1;
            }
        }
    }
    let value = SecretValue::new(out.into_bytes());
    Ok(value)
}

/// The default alphabet's characters (for callers generating passwords).
pub fn alnum(length: usize) -> Result<SecretValue, RotatorError> {
    draw(&Alphabet::Alnum.chars(), length, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_prefix_and_alphabet() {
        let s = RandomSettings {
            length: 40,
            alphabet: Alphabet::Hex,
            prefix: "sk_".into(),
        };
        let v = generate(&s).expect("generate");
        let text = v.expose_str().expect("utf8");
        assert_eq!(text.len(), 43);
        assert!(text.starts_with("sk_"));
        assert!(text[3..].chars().all(|c| c.is_ascii_hexdigit()));
        assert!(!generate(&s).expect("again").ct_eq(&v), "two draws differ");
    }

    #[test]
    fn custom_alphabet_is_uniform_enough() {
        // 3 characters (256 % 3 != 0): rejection sampling keeps them equally likely.
        let v = draw(&['a', 'b', 'c'], 30_000, "").expect("draw");
        let text = v.expose_str().expect("utf8");
        for c in ['a', 'b', 'c'] {
            let k = text.chars().filter(|x| *x == c).count();
            assert!((9_400..10_600).contains(&k), "{c}: {k}");
        }
    }
}
