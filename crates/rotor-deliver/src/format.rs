//! The bytes of `dotenv` and `json` targets.
//!
//! The dotenv dialect, chosen so that `bash` (`set -a; . FILE`) and docker-compose-style
//! readers (compose-go's dotenv, python-dotenv) read every value back byte for byte:
//!
//! - one `NAME="value"` assignment per variable, after a `#` comment line;
//! - inside the double quotes, `\` → `\\`, `"` → `\"`, `$` → `\$`, `` ` `` → `` \` ``
//!   (the four characters bash treats specially inside double quotes; the dotenv readers
//!   drop the backslash before them too);
//! - a newline stays a literal newline inside the quotes (bash does not turn `\n` into a
//!   newline inside double quotes, so the `\n` escape would read back differently there);
//!   readers that only know one line per variable cannot read such a value at all;
//! - a value with a NUL byte is refused (no environment variable can hold one);
//! - names must be `[A-Za-z_][A-Za-z0-9_]*` (anything else would be shell code to `bash`).

use std::path::Path;

use zeroize::Zeroizing;

use crate::DeliverError;

/// The header line of a rendered dotenv file.
const DOTENV_HEADER: &str = "# Written by rotor from its store; edits are overwritten.\n";

/// Whether `name` is a portable environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn valid_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `value` double-quoted in rotor's dotenv dialect (see the module docs), appended to `out`.
pub fn dotenv_quote(value: &str, out: &mut String) {
    out.push('"');
    for c in value.chars() {
        if matches!(c, '\\' | '"' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

pub(crate) fn dotenv(
    path: &Path,
    vars: &[(&str, Zeroizing<String>)],
) -> Result<Zeroizing<Vec<u8>>, DeliverError> {
    let mut out = Zeroizing::new(String::from(DOTENV_HEADER));
    for (name, value) in vars {
        check(path, name, value)?;
        out.push_str(name);
        out.push('=');
        dotenv_quote(value, &mut out);
        out.push('\n');
    }
    Ok(Zeroizing::new(std::mem::take(&mut *out).into_bytes()))
}

/// A JSON object of the variables (string values), in config order, with a final newline.
pub(crate) fn json(vars: &[(&str, Zeroizing<String>)]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(String::from("{"));
    for (i, (name, value)) in vars.iter().enumerate() {
        out.push_str(if i == 0 { "\n  " } else { ",\n  " });
        push_json_string(name, &mut out);
        out.push_str(": ");
        push_json_string(value, &mut out);
    }
    out.push_str(if vars.is_empty() { "}\n" } else { "\n}\n" });
    Zeroizing::new(std::mem::take(&mut *out).into_bytes())
}

fn check(path: &Path, name: &str, value: &str) -> Result<(), DeliverError> {
    if !valid_var_name(name) {
        return Err(DeliverError::Var {
            path: path.to_path_buf(),
            name: name.to_owned(),
            what: "not a valid variable name; use letters, digits and _ (not first a digit)".into(),
        });
    }
    if value.contains('\0') {
        return Err(DeliverError::Var {
            path: path.to_path_buf(),
            name: name.to_owned(),
            what: "its value contains a NUL byte, which no environment variable can hold".into(),
        });
    }
    Ok(())
}

/// A JSON string literal, escaped as RFC 8259 requires, written straight into `out` (no
/// intermediate copy of the value).
fn push_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn z(s: &str) -> Zeroizing<String> {
        Zeroizing::new(s.to_owned())
    }

    #[test]
    fn quoting() {
        let mut out = String::new();
        dotenv_quote("a\"b$c\\d`e\nf", &mut out);
        assert_eq!(out, "\"a\\\"b\\$c\\\\d\\`e\nf\"");
    }

    #[test]
    fn names() {
        assert!(valid_var_name("DATABASE_URL"));
        assert!(valid_var_name("_x1"));
        assert!(!valid_var_name("1X"));
        assert!(!valid_var_name("A-B"));
        assert!(!valid_var_name("A;rm"));
        assert!(!valid_var_name(""));
        let err = dotenv(Path::new("/x/.env"), &[("A B", z("v"))]).unwrap_err();
        assert!(err.to_string().contains("\"A B\""), "{err}");
        let err = dotenv(Path::new("/x/.env"), &[("A", z("s3cr\0t"))]).unwrap_err();
        assert!(!err.to_string().contains("s3cr"), "{err}");
    }

    #[test]
    fn json_is_valid_and_ordered() {
        let out = json(&[("Z", z("1\"\\\n\u{1}é")), ("A", z(""))]);
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.find("\"Z\"").unwrap() < text.find("\"A\"").unwrap());
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(v["Z"], "1\"\\\n\u{1}é");
        assert_eq!(v["A"], "");
        assert_eq!(&*json(&[]), b"{}\n");
    }
}
