//! `kind = "random"`: a string drawn uniformly from an alphabet, from the OS CSPRNG.
//!
//! This is rotor's one sampler of random strings: the postgres and redis rotators' passwords
//! ([`alnum_text`]) and the command rotator's generated values ([`alnum`]) come from it too.

use async_trait::async_trait;
use rotor_core::config::{KindSettings, RandomSettings};
use rotor_core::rotator::{Generated, PlannedStep, StepContext};
use rotor_core::{Kind, Rotator, RotatorError, SecretSpec, SecretValue, Step};
use zeroize::Zeroizing;

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
    let Some(alphabet) = Chars::new(chars) else {
        return Err(RotatorError::permanent(format!(
            "an alphabet of {} characters cannot be sampled (2 to 256)",
            chars.len()
        )));
    };
    alphabet
        .sample(length, prefix)
        .map(into_value)
        .map_err(rng_error)
}

/// The default alphabet's characters (for callers generating passwords).
pub fn alnum(length: usize) -> Result<SecretValue, RotatorError> {
    alnum_text(length).map(into_value).map_err(rng_error)
}

/// `length` alphanumeric characters as zeroizing text: for the rotators whose password goes
/// into a [`Credential`](rotor_core::Credential) and which report a failing OS generator in
/// their own words (as a transient error).
pub fn alnum_text(length: usize) -> Result<Zeroizing<String>, getrandom::Error> {
    ALNUM.sample(length, "")
}

/// Moves drawn text into a [`SecretValue`] without copying it: its capacity is its length,
/// so the value takes over the very allocation (nothing is left behind in freed memory).
pub fn into_value(mut text: Zeroizing<String>) -> SecretValue {
    SecretValue::new(std::mem::take(&mut *text).into_bytes())
}

fn rng_error(e: getrandom::Error) -> RotatorError {
    RotatorError::permanent(format!("the OS random number generator failed: {e}"))
}

/// An alphabet rejection sampling can draw from: 2 to 256 characters, so that one random
/// byte picks one.
#[derive(Debug, Clone, Copy)]
struct Chars<'a> {
    chars: &'a [char],
    /// The largest multiple of the number of characters that fits in a byte: bytes at or
    /// above it are rejected, so that no character is more likely than another.
    limit: usize,
}

/// The alphanumeric characters (those of
/// [`Alphabet::Alnum`](rotor_core::config::Alphabet::Alnum), a test checks), checked as an
/// alphabet when compiling: drawing from them can fail only in the OS generator.
static ALNUM: Chars<'static> = match Chars::new(&ALNUM_CHARS) {
    Some(alphabet) => alphabet,
    None => panic!("the alphanumeric alphabet has 62 characters"),
};

static ALNUM_CHARS: [char; 62] =
    ascii(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789");

/// ASCII bytes as characters, at compile time.
const fn ascii<const N: usize>(bytes: &[u8; N]) -> [char; N] {
    let mut out = ['\0'; N];
    let mut i = 0;
    while i < N {
        out[i] = bytes[i] as char;
        i += 1;
    }
    out
}

impl<'a> Chars<'a> {
    const fn new(chars: &'a [char]) -> Option<Chars<'a>> {
        let n = chars.len();
        if n < 2 || n > 256 {
            return None;
        }
        Some(Chars {
            chars,
            limit: 256 - (256 % n),
        })
    }

    /// `prefix`, then `length` characters from the OS CSPRNG. Every buffer holding random
    /// bytes or the text is zeroizing and sized before it is filled, so none is ever
    /// reallocated (a reallocation would leave a copy of the password in freed memory), and
    /// the text's capacity is exactly its length (so [`into_value`] need not shrink it).
    fn sample(&self, length: usize, prefix: &str) -> Result<Zeroizing<String>, getrandom::Error> {
        let n = self.chars.len();
        // The accepted bytes first: the text's size in bytes is known once they are drawn.
        let mut picks = Zeroizing::new(Vec::with_capacity(length));
        let mut buf = Zeroizing::new([0u8; 64]);
        while picks.len() < length {
            getrandom::fill(&mut buf[..])?;
            for &b in buf.iter() {
                if picks.len() == length {
                    break;
                }
                if usize::from(b) < self.limit {
                    picks.push(b);
                }
            }
        }
        let pick = |b: u8| self.chars[usize::from(b) % n];
        let size = prefix.len() + picks.iter().map(|&b| pick(b).len_utf8()).sum::<usize>();
        let mut out = Zeroizing::new(String::with_capacity(size));
        out.push_str(prefix);
        for &b in picks.iter() {
            out.push(pick(b));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rotor_core::config::Alphabet;

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

    #[test]
    fn alnum_is_the_alnum_alphabet() {
        assert_eq!(ALNUM.chars, Alphabet::Alnum.chars().as_slice());
        assert_eq!(ALNUM.limit, 248);
        let a = alnum_text(40).expect("rng");
        assert_eq!(a.len(), 40);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(*a, *alnum_text(40).expect("again"));
    }

    #[test]
    fn text_fills_its_buffer_exactly() {
        // A spare byte of capacity would make `into_value` shrink, i.e. reallocate, the text.
        let a = Chars::new(&['é', 'a', '€']).expect("3 characters");
        for length in [0, 1, 65, 200] {
            let t = a.sample(length, "p_").expect("rng");
            assert_eq!(t.chars().count(), length + 2);
            assert_eq!(t.capacity(), t.len(), "{length}");
        }
        let t = alnum_text(40).expect("rng");
        assert_eq!(t.capacity(), t.len());
        let at = t.as_ptr();
        assert_eq!(
            into_value(t).expose().as_ptr(),
            at,
            "the value took over the allocation"
        );
    }

    #[test]
    fn alphabets_of_2_to_256_characters() {
        assert!(Chars::new(&['a']).is_none());
        let all: Vec<char> = (0u8..=255).map(char::from).collect();
        assert_eq!(Chars::new(&all).map(|c| c.limit), Some(256));
        let mut more = all.clone();
        more.push('€');
        assert!(Chars::new(&more).is_none());
        assert!(draw(&more, 4, "").is_err());
        assert!(draw(&[], 4, "").is_err());
    }
}
