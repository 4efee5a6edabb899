//! Removes secret values from what a plugin prints before rotor logs or stores it.

use rotor_core::SecretValue;
use zeroize::Zeroizing;

/// The values one call handed to (or got from) a plugin.
#[derive(Debug, Default)]
pub struct Redactor {
    values: Vec<SecretValue>,
}

impl Redactor {
    pub fn add(&mut self, value: &[u8]) {
        if !value.is_empty() {
            self.values.push(SecretValue::from_slice(value));
        }
    }

    /// `text` with every occurrence of a known value, raw or JSON-escaped (a plugin that
    /// echoes its request prints the escaped form), replaced by `<redacted>`.
    pub fn clean(&self, text: &str) -> String {
        // Intermediate copies still hold values: zeroize each one as it is replaced.
        let mut out = Zeroizing::new(text.to_owned());
        for v in &self.values {
            let Ok(raw) = v.expose_str() else {
                continue;
            };
            out = Zeroizing::new(out.replace(raw, "<redacted>"));
            if let Ok(quoted) = serde_json::to_string(raw) {
                let escaped = &quoted[1..quoted.len() - 1];
                if escaped != raw {
                    out = Zeroizing::new(out.replace(escaped, "<redacted>"));
                }
            }
        }
        out.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_and_escaped_forms_are_redacted() {
        let mut r = Redactor::default();
        r.add(b"s3cr\"et");
        r.add(b"");
        let shown = r.clean("got s3cr\"et and {\"value\":\"s3cr\\\"et\"} and nothing else");
        assert_eq!(
            shown,
            "got <redacted> and {\"value\":\"<redacted>\"} and nothing else"
        );
    }
}
