//! `[[render]] kind = "github"`: a repository's (or an environment's) Actions secrets; the
//! token only ever named by its variable, its API URL https or loopback.

use std::path::Path;

use toml_edit::{Item, TableLike};

use super::Walker;
use super::render::FILE_ONLY_KEYS;
use crate::Duration;
use crate::config::render::{
    GITHUB_API, GithubRender, RenderKind, RenderSpec, valid_github_secret_name,
};

impl Walker<'_> {
    pub(super) fn github_render(
        &mut self,
        t: &dyn TableLike,
        dir: &Path,
        known: &[&str],
        earlier: &[RenderSpec],
    ) -> Option<RenderSpec> {
        self.foreign_render_keys(
            t,
            FILE_ONLY_KEYS,
            "github",
            "a GitHub target takes repository, environment, token_env, api_url, secrets and path (its state file)",
        );
        let kind_span = t.get("kind").and_then(Item::span).unwrap_or(0..0);
        let Some((repository, repo_span)) = self.string(t, "repository") else {
            if t.get("repository").is_none() {
                self.error(
                    kind_span,
                    "a kind = \"github\" render needs `repository`".into(),
                    Some("add repository = \"OWNER/REPO\"".into()),
                );
            }
            return None;
        };
        let Some((owner, repo)) = github_repository(&repository) else {
            self.error(
                repo_span,
                format!("`repository` = {repository:?} is not OWNER/REPO"),
                Some("write repository = \"divan/app\": the owner (letters, digits, -) and the repository name (letters, digits, -, _, .)".into()),
            );
            return None;
        };
        let environment = match self.string(t, "environment") {
            Some((e, span)) => {
                if e.trim().is_empty() || e.chars().count() > 255 || e.chars().any(char::is_control)
                {
                    self.error(
                        span,
                        format!("`environment` = {e:?} is not a GitHub environment name"),
                        Some("use the deployment environment's name as GitHub shows it (1 to 255 characters), or leave it out for repository secrets".into()),
                    );
                    return None;
                }
                Some(e)
            }
            None => None,
        };
        let token_env = self.github_token_env(t)?;
        let api_url = self.github_api_url(t)?;
        let secrets = match self.render_templates(t, "secrets", known) {
            Some(s) if !s.is_empty() => s,
            _ => {
                self.error(
                    kind_span,
                    "a kind = \"github\" render needs `secrets` (at least one)".into(),
                    Some("add a [render.secrets] section: JWT_SIGNING_KEY = \"{{ jwt-signing.current }}\"".into()),
                );
                return None;
            }
        };
        let secrets_span = t.get("secrets").and_then(Item::span).unwrap_or(0..0);
        let mut seen: Vec<String> = Vec::new();
        for (name, tpl) in &secrets {
            if !valid_github_secret_name(name) {
                self.error(
                    secrets_span.clone(),
                    format!("{name:?} is not a valid GitHub secret name"),
                    Some("use letters, digits and _ only, not starting with a digit or GITHUB_ (GitHub's rules)".into()),
                );
            } else if seen.contains(&name.to_ascii_uppercase()) {
                self.error(
                    secrets_span.clone(),
                    format!("GitHub secret {name:?} is named twice (GitHub ignores case)"),
                    Some("give each GitHub secret its own name".into()),
                );
            } else {
                seen.push(name.to_ascii_uppercase());
            }
            if tpl.refs().next().is_none() {
                self.error(
                    secrets_span.clone(),
                    format!("GitHub secret {name:?} references no secret of the inventory"),
                    Some("a GitHub target delivers rotor's values: write NAME = \"{{ SECRET.current }}\"".into()),
                );
            }
        }
        let github = GithubRender {
            owner,
            repo,
            environment,
            token_env,
            api_url,
        };
        let path = match self.string(t, "path") {
            Some((p, _)) => dir.join(p),
            None => dir.join(github_state_file(&github)),
        };
        if let Some(other) = earlier.iter().find(|o| {
            o.github.as_ref().is_some_and(|g| {
                g.owner.eq_ignore_ascii_case(&github.owner)
                    && g.repo.eq_ignore_ascii_case(&github.repo)
                    && g.environment == github.environment
                    && g.api_url == github.api_url
            }) || o.path == path
        }) {
            self.error(
                kind_span,
                format!(
                    "this GitHub target repeats {} (same secrets or the same state file)",
                    other.target()
                ),
                Some("merge the two [render.secrets] tables into one [[render]] entry".into()),
            );
            return None;
        }
        Some(RenderSpec {
            kind: RenderKind::Github,
            path,
            template: None,
            vars: secrets,
            on_change: None,
            timeout: Duration::from_secs(60),
            github: Some(github),
        })
    }

    /// `token_env`: the name of the variable (never the token). Unset now is a warning: the
    /// variable may be set only where rotor runs.
    pub(super) fn github_token_env(&mut self, t: &dyn TableLike) -> Option<String> {
        let span = t.get("token_env").and_then(Item::span).unwrap_or(0..0);
        // Read as written: `${GITHUB_TOKEN}` would put the token itself into the config.
        let raw = match t.get("token_env") {
            None => "GITHUB_TOKEN".to_owned(),
            Some(item) => match item.as_str() {
                Some(s) => s.to_owned(),
                None => {
                    self.error(
                        span,
                        "`token_env` must be a string".into(),
                        Some("write token_env = \"GITHUB_TOKEN\"".into()),
                    );
                    return None;
                }
            },
        };
        if looks_like_github_token(&raw) {
            // Never echo it.
            self.error(
                span,
                "`token_env` holds what looks like a GitHub token, not a variable name".into(),
                Some("revoke that token (it is in the config file now), put the new one in an environment variable and write its name: token_env = \"GITHUB_TOKEN\"".into()),
            );
            return None;
        }
        if !valid_env_name(&raw) {
            let help = if raw.contains('$') {
                "write the variable's name (token_env = \"GITHUB_TOKEN\"), not ${...}: the token never goes in the config"
            } else {
                "write the name of the environment variable holding the token, e.g. token_env = \"GITHUB_TOKEN\"; never the token itself"
            };
            // Never echo it: it may be a pasted token.
            self.error(
                span,
                "`token_env` is not an environment variable name".into(),
                Some(help.into()),
            );
            return None;
        }
        if (self.env)(&raw).is_none_or(|v| v.trim().is_empty()) {
            self.warn(
                span,
                format!("GitHub token variable {raw} is not set here; deliveries to this target fail until it is"),
                Some(format!("export {raw} where rotor runs: a fine-grained token with \"Secrets: write\" on the repository (\"Environments: write\" for environment secrets), or a classic token with `repo`")),
            );
        }
        Some(raw)
    }

    /// `api_url`: https, or http only to a loopback host (a token never crosses a network
    /// in plaintext).
    pub(super) fn github_api_url(&mut self, t: &dyn TableLike) -> Option<String> {
        let Some((url, span)) = self.string(t, "api_url") else {
            return (t.get("api_url").is_none()).then(|| GITHUB_API.to_owned());
        };
        match check_api_url(&url) {
            Ok(()) => Some(url.trim_end_matches('/').to_owned()),
            Err(why) => {
                self.error(
                    span,
                    // Not echoed: it may carry credentials or a token in its query.
                    format!("`api_url`: {why}"),
                    Some("use https://api.github.com (the default) or https://HOST/api/v3 for GitHub Enterprise Server; http:// only for a loopback host".into()),
                );
                None
            }
        }
    }
}

/// `OWNER/REPO` as GitHub allows them: an owner of letters, digits and inner single `-` (at
/// most 39), a repository of letters, digits, `-`, `_` and `.` (at most 100, not `.` or `..`).
fn github_repository(s: &str) -> Option<(String, String)> {
    let (owner, repo) = s.split_once('/')?;
    let owner_ok = (1..=39).contains(&owner.len())
        && owner.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !owner.starts_with('-')
        && !owner.ends_with('-')
        && !owner.contains("--");
    let repo_ok = (1..=100).contains(&repo.len())
        && repo
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && repo != "."
        && repo != "..";
    (owner_ok && repo_ok).then(|| (owner.to_owned(), repo.to_owned()))
}

/// GitHub's token formats: `ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_` (classic, OAuth, user,
/// server, refresh) and `github_pat_` (fine-grained). Some are valid variable names too.
fn looks_like_github_token(s: &str) -> bool {
    ["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"]
        .iter()
        .any(|p| s.starts_with(p))
}

/// `[A-Za-z_][A-Za-z0-9_]*`.
fn valid_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The default state file of a GitHub target, beside the config.
fn github_state_file(g: &GithubRender) -> String {
    let mut name = format!(".rotor-github-{}-{}", g.owner, g.repo);
    if let Some(env) = &g.environment {
        name.push('-');
        name.extend(env.chars().map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        }));
    }
    name.push_str(".json");
    name
}

/// Why `url` is not an acceptable GitHub API URL: https (or http to a loopback host), a
/// host, no credentials, no query.
fn check_api_url(url: &str) -> Result<(), String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| "not a URL (no scheme)".to_owned())?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err("a URL with credentials; the token comes from token_env".into());
    }
    if rest.contains('?') || rest.contains('#') {
        return Err("a URL with a query or fragment".into());
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map(|(h, _)| h).unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    if host.is_empty() {
        return Err("no host".into());
    }
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(()),
        "http" if crate::host::is_loopback(host) => Ok(()),
        "http" => Err(format!(
            "plain http to {host}, which is not loopback: the token would cross the network unencrypted"
        )),
        other => Err(format!("scheme {other:?}; use https")),
    }
}
