//! The stored value of a postgres secret: UTF-8 JSON `{"username": "…", "password": "…"}`.

use std::borrow::Cow;

use rotor_core::SecretValue;
use zeroize::Zeroize;

/// A login credential read from a stored value. The password stays in a [`SecretValue`].
#[derive(Debug, Clone)]
pub struct Credential {
    pub username: String,
    password: SecretValue,
}

#[derive(serde::Deserialize)]
struct Raw<'a> {
    #[serde(borrow)]
    username: Cow<'a, str>,
    #[serde(borrow)]
    password: Cow<'a, str>,
}

/// Why a stored value is not a credential. Never carries any part of the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadValue(pub &'static str);

impl Credential {
    /// Parses a stored value. The error names what is wrong, never the content.
    pub fn parse(value: &SecretValue) -> Result<Self, BadValue> {
        let raw: Raw<'_> = serde_json::from_slice(value.expose()).map_err(|_| {
            BadValue("is not JSON of the form {\"username\": \"…\", \"password\": \"…\"}")
        })?;
        let Raw { username, password } = raw;
        let secret = SecretValue::from_slice(password.as_bytes());
        if let Cow::Owned(mut owned) = password {
            owned.zeroize();
        }
        if username.is_empty() {
            return Err(BadValue("has an empty username"));
        }
        if secret.is_empty() {
            return Err(BadValue("has an empty password"));
        }
        if username.contains('\0') || secret.expose().contains(&0) {
            return Err(BadValue("contains a NUL character"));
        }
        Ok(Self {
            username: username.into_owned(),
            password: secret,
        })
    }

    /// A credential from its parts.
    pub fn new(username: impl Into<String>, password: SecretValue) -> Self {
        Self {
            username: username.into(),
            password,
        }
    }

    pub fn password(&self) -> &SecretValue {
        &self.password
    }

    /// The stored form, `{"username":"…","password":"…"}`, built straight into the
    /// zeroizing buffer (no intermediate `serde_json::Value` holding the password).
    pub fn to_value(&self) -> Result<SecretValue, BadValue> {
        let user = serde_json::to_string(&self.username)
            .map_err(|_| BadValue("username cannot be encoded"))?;
        let pw = self
            .password
            .expose_str()
            .map_err(|_| BadValue("password is not UTF-8"))?;
        // Room for the worst case (`\u00XX` per byte), so the buffer never reallocates and
        // leaves an unzeroized copy behind.
        let mut out = Vec::with_capacity(user.len() + pw.len() * 6 + 32);
        out.extend_from_slice(b"{\"username\":");
        out.extend_from_slice(user.as_bytes());
        out.extend_from_slice(b",\"password\":");
        if serde_json::to_writer(&mut out, pw).is_err() {
            out.zeroize();
            return Err(BadValue("password cannot be encoded"));
        }
        out.push(b'}');
        Ok(SecretValue::new(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_escapes() {
        let c = Credential::new("app\"user", SecretValue::from_slice(b"p\"w\\x"));
        let v = c.to_value().expect("encode");
        let back = Credential::parse(&v).expect("parse");
        assert_eq!(back.username, "app\"user");
        assert!(back.password().ct_eq(&SecretValue::from_slice(b"p\"w\\x")));
    }

    #[test]
    fn bad_values_never_echo_content() {
        let v = SecretValue::from_slice(b"{\"username\":\"u\",\"password\":");
        let e = Credential::parse(&v).expect_err("truncated");
        assert!(!e.0.contains("username\":\"u"));
        let v = SecretValue::from_slice(b"{\"username\":\"\",\"password\":\"x\"}");
        assert_eq!(
            Credential::parse(&v).expect_err("empty").0,
            "has an empty username"
        );
    }
}
