//! [`SecretUrl`]: a URL that may carry a credential (a Slack webhook's token in its path, a
//! store URL's password interpolated from `${VAR}`), kept out of `Debug` output.
//!
//! The config holds these URLs for the whole life of a process, and `Config` derives
//! `Debug` (for tests, panics and tracing of the structures that contain it); a derived
//! `Debug` on a plain `String` would print the token with them. `Debug` shows the scheme
//! and host only; reading the whole URL takes an explicit [`SecretUrl::expose`], so
//! `rg expose` lists every use, as for [`SecretValue`](crate::SecretValue). There is no
//! `Display` and no `Serialize`; the text is zeroized on drop.

use std::fmt;

use zeroize::Zeroizing;

/// A URL with a secret somewhere in it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(Zeroizing<String>);

impl SecretUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(Zeroizing::new(url.into()))
    }

    /// The whole URL, secret parts included. Call it where the URL is used (a connection,
    /// a request), never to keep or print a copy.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = self.0.as_str();
        match url.find("://") {
            Some(i) => write!(f, "SecretUrl({}://{}/<redacted>)", &url[..i], self.host()),
            None => f.write_str("SecretUrl(<redacted>)"),
        }
    }
}

impl SecretUrl {
    /// The host (and port), without userinfo; `<redacted>` when the authority does not
    /// look like one (a password with an unescaped `/` would otherwise show up here).
    fn host(&self) -> &str {
        let url = self.0.as_str();
        let Some(i) = url.find("://") else {
            return "";
        };
        let rest = &url[i + 3..];
        let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
        let host = authority
            .rfind('@')
            .map_or(authority, |at| &authority[at + 1..]);
        let (name, port) = match host.strip_prefix('[') {
            // An IPv6 literal: `[::1]:5432`.
            Some(v6) => match v6.split_once(']') {
                Some((addr, port)) if addr.chars().all(|c| c.is_ascii_hexdigit() || c == ':') => {
                    ("", port)
                }
                _ => return "<redacted>",
            },
            None => host.split_once(':').map_or((host, ""), |(n, p)| (n, p)),
        };
        let port_ok = port.is_empty()
            || port
                .strip_prefix(':')
                .unwrap_or(port)
                .chars()
                .all(|c| c.is_ascii_digit());
        let name_ok = name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        if port_ok && name_ok {
            host
        } else {
            "<redacted>"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_scheme_and_host_only() {
        for (url, shown) in [
            (
                "https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX",
                "SecretUrl(https://hooks.slack.com/<redacted>)",
            ),
            (
                "postgres://rotor:pa%40ss-secret@db.internal:5432/rotor?sslmode=verify-full",
                "SecretUrl(postgres://db.internal:5432/<redacted>)",
            ),
            (
                "http://127.0.0.1:9/hook?token=secret",
                "SecretUrl(http://127.0.0.1:9/<redacted>)",
            ),
            ("not a url secret", "SecretUrl(<redacted>)"),
            // A password with an unescaped `/` ends the authority early: not shown.
            (
                "postgres://rotor:pa/ss-secret@db:5432/rotor",
                "SecretUrl(postgres://<redacted>/<redacted>)",
            ),
            (
                "postgres://[::1]:5432/db?password=secret",
                "SecretUrl(postgres://[::1]:5432/<redacted>)",
            ),
        ] {
            let u = SecretUrl::new(url);
            let d = format!("{u:?} {u:#?}");
            assert!(!d.contains("secret"), "{d}");
            assert_eq!(format!("{u:?}"), shown);
            assert_eq!(u.expose(), url);
        }
    }
}
