//! SQL text building: identifier and literal quoting, SCRAM verifiers, random passwords.
//!
//! `ALTER ROLE … PASSWORD` and `CREATE ROLE` take no bind parameters, so role names and
//! verifiers are inlined; everything inlined goes through [`quote_ident`] or
//! [`quote_literal`]. Plaintext passwords are never inlined: only SCRAM-SHA-256 verifiers
//! computed here, on the client.

use rotor_core::SecretValue;

/// PostgreSQL truncates identifiers longer than this many bytes (NAMEDATALEN - 1).
pub const MAX_IDENT_BYTES: usize = 63;

/// Characters of a generated password (alphanumeric: ~5.95 bits each, so ~238 bits).
pub const PASSWORD_LEN: usize = 40;

/// Why a name cannot be used as an identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentError {
    Empty,
    Nul,
    TooLong(usize),
}

impl std::fmt::Display for IdentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IdentError::Empty => f.write_str("is empty"),
            IdentError::Nul => f.write_str("contains a NUL character"),
            IdentError::TooLong(n) => write!(
                f,
                "is {n} bytes long; PostgreSQL would silently truncate it to {MAX_IDENT_BYTES}"
            ),
        }
    }
}

/// Checks that `name` is an identifier PostgreSQL keeps as is.
pub fn check_ident(name: &str) -> Result<(), IdentError> {
    if name.is_empty() {
        Err(IdentError::Empty)
    } else if name.contains('\0') {
        Err(IdentError::Nul)
    } else if name.len() > MAX_IDENT_BYTES {
        Err(IdentError::TooLong(name.len()))
    } else {
        Ok(())
    }
}

/// `name` as a quoted identifier: `"…"` with inner double quotes doubled. Always quotes, so
/// the case is kept (`App` stays `App`, as in `pg_roles.rolname`).
pub fn quote_ident(name: &str) -> Result<String, IdentError> {
    check_ident(name)?;
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    Ok(out)
}

/// `text` as a string literal: `'…'` with inner single quotes doubled; when it holds a
/// backslash, an `E'…'` literal with backslashes doubled too, so the result means the same
/// whatever `standard_conforming_strings` is. Rejects NUL (PostgreSQL text cannot hold it).
pub fn quote_literal(text: &str) -> Result<String, IdentError> {
    if text.contains('\0') {
        return Err(IdentError::Nul);
    }
    let backslash = text.contains('\\');
    let mut out = String::with_capacity(text.len() + 3);
    if backslash {
        out.push('E');
    }
    out.push('\'');
    for c in text.chars() {
        if c == '\'' || (backslash && c == '\\') {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
    Ok(out)
}

/// A SCRAM-SHA-256 verifier (`SCRAM-SHA-256$4096:salt$StoredKey:ServerKey`) for `password`,
/// with a fresh random salt. It lets the server check a login but not recover the password.
pub fn scram_verifier(password: &[u8]) -> String {
    postgres_protocol::password::scram_sha_256(password)
}

/// A verifier no password matches: a random salt and random StoredKey/ServerKey (what
/// PostgreSQL checks a login proof against), so a role with it cannot log in (finding a
/// password would take a SHA-256 preimage). Used by retire and rollback. Its iteration count
/// is 1: with no password behind it there is nothing for iterations to slow down, and the
/// server's own check of a new verifier (`ALTER ROLE` tests it against the empty password)
/// and the rejection proof's login then cost one HMAC instead of 4096.
pub fn unknown_verifier() -> Result<String, getrandom::Error> {
    use base64::Engine as _;
    let mut bytes = zeroize::Zeroizing::new([0u8; 16 + 32 + 32]);
    getrandom::fill(&mut bytes[..])?;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    Ok(format!(
        "SCRAM-SHA-256$1:{}${}:{}",
        b64(&bytes[..16]),
        b64(&bytes[16..48]),
        b64(&bytes[48..])
    ))
}

/// A new random alphanumeric password of [`PASSWORD_LEN`] characters from the OS CSPRNG
/// (rotor's one sampler: rejection sampling, so every character is uniform).
pub fn random_password() -> Result<SecretValue, getrandom::Error> {
    rotor_rotate::random::alnum_text(PASSWORD_LEN).map(rotor_rotate::random::into_value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_ident_doubles_quotes_and_rejects_nul() {
        assert_eq!(quote_ident("app").as_deref(), Ok("\"app\""));
        assert_eq!(quote_ident("A\"b").as_deref(), Ok("\"A\"\"b\""));
        assert_eq!(
            quote_ident("x\"; DROP ROLE y; --").as_deref(),
            Ok("\"x\"\"; DROP ROLE y; --\"")
        );
        assert_eq!(quote_ident("a\0b"), Err(IdentError::Nul));
        assert_eq!(quote_ident(""), Err(IdentError::Empty));
        assert_eq!(quote_ident(&"x".repeat(64)), Err(IdentError::TooLong(64)));
        assert!(quote_ident(&"x".repeat(63)).is_ok());
    }

    #[test]
    fn quote_literal_escapes() {
        assert_eq!(quote_literal("abc").as_deref(), Ok("'abc'"));
        assert_eq!(quote_literal("it's").as_deref(), Ok("'it''s'"));
        assert_eq!(quote_literal("a\\b'").as_deref(), Ok("E'a\\\\b'''"));
        assert_eq!(quote_literal("a\0"), Err(IdentError::Nul));
    }

    #[test]
    fn verifier_shape() {
        let v = scram_verifier(b"hunter2");
        assert!(v.starts_with("SCRAM-SHA-256$4096:"), "{v}");
        assert!(!v.contains("hunter2"));
        assert!(
            v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+/=$:-".contains(c)),
            "{v}"
        );
        assert_ne!(v, scram_verifier(b"hunter2"), "salt must be random");
        let u = unknown_verifier().expect("rng");
        assert_eq!(u.len(), v.len() - 3, "{u} vs {v}");
        assert!(u.starts_with("SCRAM-SHA-256$1:"), "{u}");
        assert_ne!(u, unknown_verifier().expect("rng"));
    }

    #[test]
    fn random_passwords_are_alnum_and_distinct() {
        let a = random_password().expect("rng");
        let b = random_password().expect("rng");
        assert_eq!(a.len(), PASSWORD_LEN);
        assert!(a.expose().iter().all(u8::is_ascii_alphanumeric));
        assert!(!a.ct_eq(&b));
    }
}
