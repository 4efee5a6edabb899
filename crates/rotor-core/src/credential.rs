//! [`Credential`]: a login (username and password) as rotor stores it, the UTF-8 JSON
//! `{"username": "…", "password": "…"}` of the `postgres` and `redis` kinds.
//!
//! One type, so every reader (the rotators, `rotor put`'s value check, the AWS store's
//! database JSON) refuses the same values with the same words, and none of them holds the
//! password outside a zeroizing buffer: parsing unescapes the password straight into one
//! (serde would unescape into its own scratch buffer, which is freed without zeroizing),
//! and serialising writes into a zeroizing buffer sized for the worst case, so it never
//! reallocates and leaves no copy behind. Errors say what is wrong with the shape, never any part of
//! the value; `Debug` shows the username only.

use std::fmt;

use zeroize::{Zeroize, Zeroizing};

use crate::SecretValue;

/// A username with its password. The password lives only in a [`SecretValue`].
#[derive(Clone)]
pub struct Credential {
    /// Not secret: it is also the version's metadata and appears in errors and plans.
    pub username: String,
    password: SecretValue,
}

/// Why a value is not a credential. Never carries any part of the value; each message
/// completes a sentence that begins with what the value is ("the current value …").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// Not JSON at all (position only: serde's own messages may quote the input).
    #[error(
        "is not JSON of the form {{\"username\": \"…\", \"password\": \"…\"}} (line {line}, column {column})"
    )]
    NotJson { line: usize, column: usize },
    /// JSON, but not an object with string fields `username` and `password` (once each).
    #[error(
        "is not a JSON object with the string fields \"username\" and \"password\" (each once)"
    )]
    WrongShape,
    #[error("has an empty username")]
    EmptyUsername,
    #[error("has an empty password")]
    EmptyPassword,
    /// PostgreSQL's protocol and C-string clients cannot carry a NUL.
    #[error("contains a NUL character")]
    Nul,
    /// Unescaped, the text is not UTF-8 (a lone surrogate escape), or the password given
    /// to [`Credential::new`] is not text, so it cannot be written as JSON.
    #[error("is not UTF-8 text")]
    NotUtf8,
}

impl Credential {
    /// A credential from its parts.
    pub fn new(username: impl Into<String>, password: SecretValue) -> Self {
        Self {
            username: username.into(),
            password,
        }
    }

    /// The password.
    pub fn password(&self) -> &SecretValue {
        &self.password
    }

    /// Parses a stored value. Other fields of the object are allowed and ignored (AWS's
    /// database JSON has `engine`, `host`, …); username and password must be non-empty
    /// strings without NUL.
    pub fn parse(value: &SecretValue) -> Result<Self, CredentialError> {
        let bytes = value.expose();
        // Validation only: `IgnoredAny` scans strings without copying them anywhere.
        serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(|e| {
            CredentialError::NotJson {
                line: e.line(),
                column: e.column(),
            }
        })?;
        let mut scan = Scanner { b: bytes, i: 0 };
        let mut username: Option<String> = None;
        let mut password: Option<SecretValue> = None;
        scan.ws();
        if !scan.eat(b'{') {
            return Err(CredentialError::WrongShape);
        }
        scan.ws();
        if !scan.eat(b'}') {
            loop {
                scan.ws();
                let mut key = Vec::new();
                unescape(scan.string()?, &mut key)?;
                scan.ws();
                if !scan.eat(b':') {
                    return Err(CredentialError::WrongShape);
                }
                scan.ws();
                match key.as_slice() {
                    b"username" if username.is_none() => {
                        let mut out = Vec::new();
                        unescape(scan.string()?, &mut out)?;
                        username =
                            Some(String::from_utf8(out).map_err(|_| CredentialError::NotUtf8)?);
                    }
                    b"password" if password.is_none() => {
                        let raw = scan.string()?;
                        // Unescaping never lengthens: this buffer never reallocates.
                        let mut out = Zeroizing::new(Vec::with_capacity(raw.len()));
                        unescape(raw, &mut out)?;
                        if std::str::from_utf8(&out).is_err() {
                            return Err(CredentialError::NotUtf8);
                        }
                        password = Some(SecretValue::from_slice(&out));
                    }
                    b"username" | b"password" => return Err(CredentialError::WrongShape),
                    _ => scan.skip_value(),
                }
                scan.ws();
                match scan.next() {
                    Some(b',') => {}
                    Some(b'}') => break,
                    _ => return Err(CredentialError::WrongShape),
                }
            }
        }
        let (Some(username), Some(password)) = (username, password) else {
            return Err(CredentialError::WrongShape);
        };
        if username.is_empty() {
            return Err(CredentialError::EmptyUsername);
        }
        if password.is_empty() {
            return Err(CredentialError::EmptyPassword);
        }
        if username.contains('\0') || password.expose().contains(&0) {
            return Err(CredentialError::Nul);
        }
        Ok(Self { username, password })
    }

    /// The stored form, `{"username":"…","password":"…"}` (the bytes rotor has always
    /// stored for these kinds).
    pub fn to_value(&self) -> Result<SecretValue, CredentialError> {
        let user = serde_json::to_vec(&self.username).map_err(|_| CredentialError::NotUtf8)?;
        let mut out = self.buffer(user.len())?;
        out.extend_from_slice(b"{\"username\":");
        out.extend_from_slice(&user);
        out.extend_from_slice(b",\"password\":");
        self.write_password(&mut out)?;
        out.push(b'}');
        Ok(SecretValue::from_slice(&out))
    }

    /// The credential with non-secret `fields` (AWS's database JSON: `engine`, `host`,
    /// `port`, `dbname`), all keys in sorted order as `serde_json` writes a map: the bytes
    /// the AWS store has always written, so values already in AWS still compare equal. A
    /// `username` or `password` among `fields` is replaced by the credential's own.
    pub fn to_value_with(
        &self,
        fields: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<SecretValue, CredentialError> {
        let user = serde_json::to_vec(&self.username).map_err(|_| CredentialError::NotUtf8)?;
        let others = serde_json::to_vec(fields).map_err(|_| CredentialError::WrongShape)?;
        let mut keys: Vec<&str> = fields
            .keys()
            .map(String::as_str)
            .filter(|k| !matches!(*k, "username" | "password"))
            .chain(["username", "password"])
            .collect();
        keys.sort_unstable();
        let mut out = self.buffer(user.len() + others.len() + 32)?;
        out.push(b'{');
        for (n, key) in keys.into_iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut *out, key).map_err(|_| CredentialError::WrongShape)?;
            out.push(b':');
            match key {
                "username" => out.extend_from_slice(&user),
                "password" => self.write_password(&mut out)?,
                _ => serde_json::to_writer(&mut *out, &fields[key])
                    .map_err(|_| CredentialError::WrongShape)?,
            }
        }
        out.push(b'}');
        Ok(SecretValue::from_slice(&out))
    }

    /// A zeroizing buffer with room for `rest` bytes plus the password in its worst case
    /// (`\u00XX` for each byte), so it never reallocates: a reallocation would free a copy
    /// of the password without zeroizing it.
    fn buffer(&self, rest: usize) -> Result<Zeroizing<Vec<u8>>, CredentialError> {
        Ok(Zeroizing::new(Vec::with_capacity(
            rest + self.password.len() * 6 + 32,
        )))
    }

    /// Writes the password as a JSON string into `out` (no intermediate copy).
    fn write_password(&self, out: &mut Vec<u8>) -> Result<(), CredentialError> {
        let pw = self
            .password
            .expose_str()
            .map_err(|_| CredentialError::NotUtf8)?;
        serde_json::to_writer(out, pw).map_err(|_| CredentialError::NotUtf8)
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("password", &format_args!("<redacted>"))
            .finish()
    }
}

/// A cursor over JSON text that `serde_json` has already validated, so it only has to
/// find where things start and end.
struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    fn ws(&mut self) {
        while matches!(self.b.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.b.get(self.i).copied();
        self.i += 1;
        c
    }

    /// The raw (still escaped) contents of the string that starts here.
    fn string(&mut self) -> Result<&'a [u8], CredentialError> {
        if !self.eat(b'"') {
            return Err(CredentialError::WrongShape);
        }
        let start = self.i;
        while let Some(&c) = self.b.get(self.i) {
            match c {
                b'\\' => self.i += 2,
                b'"' => {
                    self.i += 1;
                    return Ok(&self.b[start..self.i - 1]);
                }
                _ => self.i += 1,
            }
        }
        Err(CredentialError::WrongShape)
    }

    /// Skips the value that starts here (of any type).
    fn skip_value(&mut self) {
        let mut depth = 0usize;
        while let Some(&c) = self.b.get(self.i) {
            match c {
                b'"' => {
                    let _ = self.string();
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' if depth == 0 => return,
                b'}' | b']' => depth -= 1,
                b',' if depth == 0 => return,
                _ => {}
            }
            self.i += 1;
        }
    }
}

/// Appends the unescaped contents of a JSON string to `out`.
fn unescape(raw: &[u8], out: &mut Vec<u8>) -> Result<(), CredentialError> {
    let mut i = 0;
    while i < raw.len() {
        let c = raw[i];
        if c != b'\\' {
            out.push(c);
            i += 1;
            continue;
        }
        let e = *raw.get(i + 1).ok_or(CredentialError::WrongShape)?;
        i += 2;
        let simple = match e {
            b'"' => Some(b'"'),
            b'\\' => Some(b'\\'),
            b'/' => Some(b'/'),
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'u' => None,
            _ => return Err(CredentialError::WrongShape),
        };
        if let Some(b) = simple {
            out.push(b);
            continue;
        }
        let hi = hex4(raw, i)?;
        i += 4;
        let code = if (0xD800..0xDC00).contains(&hi) {
            // A surrogate pair: `\uD8xx\uDCxx`.
            if raw.get(i..i + 2) != Some(b"\\u") {
                return Err(CredentialError::NotUtf8);
            }
            let lo = hex4(raw, i + 2)?;
            i += 6;
            if !(0xDC00..0xE000).contains(&lo) {
                return Err(CredentialError::NotUtf8);
            }
            0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
        } else {
            hi
        };
        let ch = char::from_u32(code).ok_or(CredentialError::NotUtf8)?;
        let mut buf = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        buf.zeroize();
    }
    Ok(())
}

fn hex4(raw: &[u8], at: usize) -> Result<u32, CredentialError> {
    let digits = raw.get(at..at + 4).ok_or(CredentialError::WrongShape)?;
    let mut v = 0u32;
    for &d in digits {
        let n = (d as char)
            .to_digit(16)
            .ok_or(CredentialError::WrongShape)?;
        v = v * 16 + n;
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(s: &str) -> SecretValue {
        SecretValue::from_slice(s.as_bytes())
    }

    #[test]
    fn round_trip_with_escapes_and_unicode() {
        for pw in [
            "plain",
            "p\"w\\x/y",
            "tab\there\nnew",
            "\u{1}ctl\u{1f}",
            "ünïcødé-€-😀",
        ] {
            let c = Credential::new("app\"user", SecretValue::from_slice(pw.as_bytes()));
            let v = c.to_value().expect("encode");
            // The bytes rotor has always stored: username first, then password.
            assert_eq!(
                v.expose(),
                format!(
                    "{{\"username\":{},\"password\":{}}}",
                    serde_json::to_string("app\"user").expect("json"),
                    serde_json::to_string(pw).expect("json")
                )
                .as_bytes()
            );
            let back = Credential::parse(&v).expect("parse");
            assert_eq!(back.username, "app\"user");
            assert!(
                back.password()
                    .ct_eq(&SecretValue::from_slice(pw.as_bytes())),
                "{pw:?}"
            );
            // What a JSON reader that nobody here wrote reads.
            let read: serde_json::Value =
                serde_json::from_slice(v.expose()).expect("serde_json reads it");
            assert_eq!(read["password"], pw);
            assert_eq!(read["username"], "app\"user");
        }
    }

    #[test]
    fn parses_what_other_writers_write() {
        // Escaped forms serde_json does not write, whitespace, other fields in any place.
        let c = Credential::parse(&value(
            " {\n \"engine\": \"postgres\", \"port\": 5432, \"tags\": {\"a\": [1, \"}\"]},\n \
             \"username\" : \"app\",\"password\":\"\\u0041\\u00e9\\ud83d\\ude00\\/x\", \"z\": null } ",
        ))
        .expect("parse");
        assert_eq!(c.username, "app");
        assert_eq!(c.password().expose(), "Aé😀/x".as_bytes());
        // An escaped key names the field too.
        let c = Credential::parse(&value(r#"{"user\u006eame":"u","password":"p"}"#)).expect("key");
        assert_eq!(c.username, "u");
    }

    #[test]
    fn extra_fields_are_written_in_sorted_order_with_the_credential() {
        let mut fields = serde_json::Map::new();
        fields.insert("engine".into(), "postgres".into());
        fields.insert("port".into(), 5432.into());
        fields.insert("password".into(), "not-this-one".into());
        let c = Credential::new("app", value("pw-1"));
        let v = c.to_value_with(&fields).expect("encode");
        // Byte for byte what `serde_json` writes for the whole map (sorted keys).
        let all = serde_json::json!({"engine": "postgres", "port": 5432, "username": "app", "password": "pw-1"});
        assert_eq!(
            v.expose(),
            serde_json::to_vec(&all).expect("json").as_slice()
        );
        assert!(
            Credential::parse(&v)
                .expect("parse")
                .password()
                .ct_eq(&value("pw-1"))
        );
    }

    #[test]
    fn errors_name_the_shape_and_never_echo_the_value() {
        let secret = "s3cr3t-value";
        let cases = [
            (secret.to_owned(), "is not JSON"),
            (
                format!(r#"{{"username":"app","password":"{secret}""#),
                "is not JSON",
            ),
            (
                format!(r#"{{"username":"app","pasword":"{secret}"}}"#),
                "string fields",
            ),
            (
                format!(r#"{{"username":"{secret}","password":5}}"#),
                "string fields",
            ),
            (format!(r#"["{secret}"]"#), "string fields"),
            (format!(r#""{secret}""#), "string fields"),
            (
                format!(r#"{{"username":"a","password":"{secret}","password":"x"}}"#),
                "each once",
            ),
            (
                format!(r#"{{"username":"","password":"{secret}"}}"#),
                "empty username",
            ),
            (
                format!(r#"{{"username":"{secret}","password":""}}"#),
                "empty password",
            ),
            (
                format!(r#"{{"username":"app","password":"{secret}\u0000"}}"#),
                "NUL",
            ),
            (
                format!(r#"{{"username":"app","password":"{secret}\ud800"}}"#),
                "UTF-8",
            ),
        ];
        for (text, want) in cases {
            let e = Credential::parse(&value(&text))
                .expect_err(&text)
                .to_string();
            assert!(e.contains(want), "{text}: {e}");
            assert!(!e.contains("s3cr3t"), "{text}: {e}");
        }
        let e = Credential::new("app", SecretValue::from_slice(&[0xff, b's']))
            .to_value()
            .expect_err("not text");
        assert_eq!(e, CredentialError::NotUtf8);
    }

    #[test]
    fn debug_redacts_the_password() {
        let c = Credential::new("app", value("hunter2-password"));
        let shown = format!("{c:?} {c:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("app") && shown.contains("<redacted>"),
            "{shown}"
        );
    }
}
