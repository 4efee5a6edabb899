//! `[[tokens]]`: API tokens (stored as their SHA-256) and the scopes that say what each may
//! do on which secrets.

use serde::Serialize;

/// `[[tokens]]`: an API token, stored as the SHA-256 of the token (the token itself is
/// printed once by `rotor token new` and never stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenSpec {
    pub name: String,
    /// Lowercase hex SHA-256 of the token.
    pub sha256: String,
    pub scopes: Vec<Scope>,
}

/// What a token may do, on which secrets: `read:jwt-*`, `rotate:*`, `write:sendgrid-*`,
/// `confirm:refresh-pepper`, `emergency:*`, `admin`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Scope {
    pub action: ScopeAction,
    /// A glob over secret names (`*` any run, `?` one character); `*` for `admin`.
    pub pattern: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ScopeAction {
    /// See metadata only: list, get, watch, rotations, the page and metrics, for matching
    /// secrets (every other action also lets a token see the secrets it matches).
    View,
    /// Read values.
    Read,
    /// Start ordinary rotations.
    Rotate,
    /// Store values (`put`).
    Write,
    /// Rotate a secret marked `requires_confirmation` (with `"confirm": true`). Distinct from
    /// `rotate` because such secrets are the ones whose rotation is disruptive.
    Confirm,
    /// Emergency rotations (grace 0, session eviction, `on_emergency` hooks). Distinct from
    /// `rotate` because an emergency cuts off every holder of the old value at once.
    Emergency,
    /// Everything, including the audit log.
    Admin,
}

impl ScopeAction {
    /// The word used in scopes (`read`, `rotate`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeAction::View => "view",
            ScopeAction::Read => "read",
            ScopeAction::Rotate => "rotate",
            ScopeAction::Write => "write",
            ScopeAction::Confirm => "confirm",
            ScopeAction::Emergency => "emergency",
            ScopeAction::Admin => "admin",
        }
    }
}

impl Scope {
    /// Parses `action:glob` or `admin`.
    pub fn parse(s: &str) -> Result<Scope, String> {
        if s == "admin" {
            return Ok(Scope {
                action: ScopeAction::Admin,
                pattern: "*".into(),
            });
        }
        let (action, pattern) = s.split_once(':').ok_or_else(|| {
            format!("scope {s:?} is not `action:glob`; use e.g. \"view:*\", \"read:jwt-*\", \"rotate:*\", \"write:sendgrid-*\", \"confirm:NAME\", \"emergency:NAME\" or \"admin\"")
        })?;
        let action = match action {
            "view" => ScopeAction::View,
            "read" => ScopeAction::Read,
            "rotate" => ScopeAction::Rotate,
            "write" => ScopeAction::Write,
            "confirm" => ScopeAction::Confirm,
            "emergency" => ScopeAction::Emergency,
            other => {
                return Err(format!(
                    "unknown scope action {other:?}; use view, read, rotate, write, confirm, emergency or admin"
                ));
            }
        };
        if pattern.is_empty()
            || !pattern
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '*' | '?'))
        {
            return Err(format!(
                "scope {s:?} has a bad secret pattern; use secret-name characters with * and ?"
            ));
        }
        Ok(Scope {
            action,
            pattern: pattern.to_owned(),
        })
    }

    /// Whether this scope allows `action` on `secret`. `admin` allows everything; any action
    /// on a secret includes seeing its metadata (`view`).
    pub fn allows(&self, action: ScopeAction, secret: &str) -> bool {
        self.action == ScopeAction::Admin
            || ((self.action == action || action == ScopeAction::View)
                && glob_match(&self.pattern, secret))
    }
}

/// `*` matches any run of characters, `?` one character; everything else itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_and_globs() {
        let s = Scope::parse("read:jwt-*").expect("valid");
        assert!(s.allows(ScopeAction::Read, "jwt-signing"));
        assert!(!s.allows(ScopeAction::Read, "database"));
        assert!(!s.allows(ScopeAction::Rotate, "jwt-signing"));
        assert!(
            Scope::parse("admin")
                .expect("admin")
                .allows(ScopeAction::Write, "x")
        );
        assert!(Scope::parse("delete:*").is_err());
        assert!(Scope::parse("read").is_err());
        assert!(glob_match("a?c*", "abcdef"));
        assert!(!glob_match("a?c", "abcd"));
        assert!(glob_match("*", ""));
    }
}
