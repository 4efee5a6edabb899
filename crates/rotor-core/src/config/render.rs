//! `[[render]]`: targets written for consumers (a file, or GitHub Actions secrets) and the
//! `{{ secret.stage[.field] }}` templates they are written from.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use crate::{Duration, SecretName, Stage};

/// `[[render]]`: a target written for consumers after every finish, retire and put: a file,
/// or (`kind = "github"`) GitHub Actions secrets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RenderSpec {
    pub kind: RenderKind,
    /// The file to write; for `github`, the state file recording what was written there
    /// (fingerprints only, never a value).
    pub path: PathBuf,
    /// For `kind = "template"`: the template file (with `{{ secret.stage[.field] }}` references).
    pub template: Option<PathBuf>,
    /// For `dotenv` and `json`: variable name → template, in file order; for `github`
    /// (`[render.secrets]`): GitHub secret name → template.
    pub vars: Vec<(String, Template)>,
    /// A shell command run after the file changed (e.g. `docker compose restart backend`).
    pub on_change: Option<String>,
    pub timeout: Duration,
    /// For `kind = "github"`: where the secrets go.
    pub github: Option<GithubRender>,
}

impl RenderSpec {
    /// What the target is called in messages and `rotor render`: the file, or
    /// `github:OWNER/REPO[/ENVIRONMENT]`.
    pub fn target(&self) -> String {
        match &self.github {
            Some(g) => g.to_string(),
            None => self.path.display().to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RenderKind {
    Dotenv,
    Json,
    Template,
    /// GitHub Actions repository or environment secrets (`rotor-deliver-github`).
    Github,
}

/// GitHub's API, unless `api_url` says otherwise (GitHub Enterprise: `https://HOST/api/v3`).
pub const GITHUB_API: &str = "https://api.github.com";

/// `[[render]] kind = "github"`: a repository's (or one of its environments') Actions
/// secrets. The token is never in the config: `token_env` names the variable holding it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GithubRender {
    pub owner: String,
    pub repo: String,
    /// Environment secrets of this deployment environment instead of repository secrets.
    pub environment: Option<String>,
    /// The environment variable holding the token (read at every delivery).
    pub token_env: String,
    /// `https://api.github.com` by default; `http://` only for a loopback host.
    pub api_url: String,
}

impl fmt::Display for GithubRender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "github:{}/{}", self.owner, self.repo)?;
        if let Some(env) = &self.environment {
            write!(f, "/{env}")?;
        }
        Ok(())
    }
}

/// Whether GitHub accepts `name` as an Actions secret name: letters, digits and `_`, not
/// starting with a digit or `GITHUB_` (GitHub's documented naming rules; GitHub compares
/// names case-insensitively and stores them upper-case).
pub fn valid_github_secret_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.to_ascii_uppercase().starts_with("GITHUB_")
}

/// A string with `{{ secret.stage[.field] }}` references.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Template {
    pub parts: Vec<TemplatePart>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum TemplatePart {
    Text(String),
    Ref(ValueRef),
}

/// `secret.stage` (the whole value) or `secret.stage.field` (a field of a JSON value, such as
/// a database credential's `username` or `password`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValueRef {
    pub secret: SecretName,
    pub stage: Stage,
    pub field: Option<String>,
}

impl Template {
    /// Parses `text`, resolving each reference against `known` secret names (a secret name
    /// may itself contain dots: the longest known prefix wins).
    pub fn parse(text: &str, known: &[&str]) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(TemplatePart::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| "a `{{` has no closing `}}`".to_owned())?;
            parts.push(TemplatePart::Ref(ValueRef::parse(
                after[..end].trim(),
                known,
            )?));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(TemplatePart::Text(rest.to_owned()));
        }
        Ok(Template { parts })
    }

    /// The references in this template.
    pub fn refs(&self) -> impl Iterator<Item = &ValueRef> {
        self.parts.iter().filter_map(|p| match p {
            TemplatePart::Ref(r) => Some(r),
            TemplatePart::Text(_) => None,
        })
    }
}

impl ValueRef {
    pub fn parse(expr: &str, known: &[&str]) -> Result<ValueRef, String> {
        let secret = known
            .iter()
            .filter(|k| expr.starts_with(**k) && expr[k.len()..].starts_with('.'))
            .max_by_key(|k| k.len())
            .ok_or_else(|| {
                format!("`{{{{ {expr} }}}}` names no secret of the inventory; write {{{{ SECRET.current }}}} or {{{{ SECRET.current.password }}}}")
            })?;
        let tail = &expr[secret.len() + 1..];
        let (stage, field) = match tail.split_once('.') {
            Some((s, f)) => (s, Some(f.to_owned())),
            None => (tail, None),
        };
        let stage = Stage::parse(stage).ok_or_else(|| {
            format!("`{{{{ {expr} }}}}`: unknown stage {stage:?}; use current, previous or pending")
        })?;
        Ok(ValueRef {
            secret: SecretName::new(secret).map_err(|e| e.to_string())?,
            stage,
            field,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_resolve_dotted_names() {
        let t = Template::parse(
            "postgres://{{ database.current.username }}:{{database.current.password}}@db/app {{ a.b.previous }}",
            &["database", "a.b", "a"],
        )
        .expect("valid");
        let refs: Vec<_> = t.refs().collect();
        assert_eq!(refs.len(), 3);
        assert_eq!(refs[0].field.as_deref(), Some("username"));
        assert_eq!(refs[2].secret.as_str(), "a.b");
        assert_eq!(refs[2].stage, Stage::Previous);
        assert!(Template::parse("{{ nope.current }}", &["database"]).is_err());
        assert!(Template::parse("{{ database.latest }}", &["database"]).is_err());
        assert!(Template::parse("{{ database.current", &["database"]).is_err());
    }
}
