//! GitHub's REST endpoints for Actions secrets, as documented (API version 2022-11-28):
//!
//! - `GET  /repos/{owner}/{repo}/actions/secrets/public-key`
//! - `PUT  /repos/{owner}/{repo}/actions/secrets/{name}` `{"encrypted_value", "key_id"}`
//! - `GET  /repos/{owner}/{repo}/environments/{environment}/secrets/public-key`
//! - `PUT  /repos/{owner}/{repo}/environments/{environment}/secrets/{name}`
//!
//! `PUT` answers 201 (created) or 204 (updated). Errors are mapped to what an operator can
//! act on: a bad token (401), missing permission (403), an unknown repository or
//! environment (404), a refused name (422), the primary rate limit (403/429 with
//! `x-ratelimit-remaining: 0`, until `x-ratelimit-reset`) and secondary limits
//! (`retry-after`), outages (5xx, no connection: transient).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, USER_AGENT};
use reqwest::{StatusCode, Url};
use rotor_core::SecretValue;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::GithubError;
use crate::seal::RepoKey;

/// GitHub's API, unless configured otherwise (GitHub Enterprise: `https://HOST/api/v3`).
pub const DEFAULT_API: &str = rotor_core::config::GITHUB_API;

/// Where the secrets go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Repository secrets.
    Repository { owner: String, repo: String },
    /// Secrets of one deployment environment of a repository.
    Environment {
        owner: String,
        repo: String,
        environment: String,
    },
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Repository { owner, repo } => write!(f, "repository {owner}/{repo}"),
            Scope::Environment {
                owner,
                repo,
                environment,
            } => write!(f, "environment {environment} of {owner}/{repo}"),
        }
    }
}

impl Scope {
    fn segments(&self) -> Vec<&str> {
        match self {
            Scope::Repository { owner, repo } => vec!["repos", owner, repo, "actions", "secrets"],
            Scope::Environment {
                owner,
                repo,
                environment,
            } => vec!["repos", owner, repo, "environments", environment, "secrets"],
        }
    }
}

/// Whether GitHub accepts `name` as a secret name (the rule lives in rotor-core, where
/// `rotor check` applies it to `[render.secrets]`).
pub use rotor_core::config::valid_github_secret_name as valid_secret_name;

/// What a `PUT` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Created,
    Updated,
}

/// A client for one scope, authenticated with a token (never shown).
pub struct GithubClient {
    http: reqwest::Client,
    api: Url,
    token: SecretString,
    scope: Scope,
}

impl fmt::Debug for GithubClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GithubClient")
            .field("api", &self.api.as_str())
            .field("scope", &self.scope)
            .field("token", &"<redacted>")
            .finish()
    }
}

#[derive(Deserialize)]
struct KeyAnswer {
    key_id: String,
    key: String,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    message: Option<String>,
}

impl GithubClient {
    /// A client for `scope` at `api` (e.g. [`DEFAULT_API`]).
    pub fn new(api: &str, token: SecretString, scope: Scope) -> Result<Self, GithubError> {
        let api = Url::parse(api).map_err(|e| {
            GithubError::permanent(
                format!("the GitHub API URL does not parse ({e})"),
                "use https://api.github.com, or https://HOST/api/v3 for GitHub Enterprise",
            )
        })?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| GithubError::permanent(format!("HTTP client: {e}"), "report this"))?;
        Ok(Self {
            http,
            api,
            token,
            scope,
        })
    }

    /// As [`new`](Self::new), the token read from the environment variable `var` (values
    /// never come from arguments or the config file).
    pub fn from_env(api: &str, var: &str, scope: Scope) -> Result<Self, GithubError> {
        let token = std::env::var(var).ok().filter(|t| !t.trim().is_empty()).ok_or_else(|| {
            GithubError::permanent(
                format!("no GitHub token: {var} is not set"),
                format!(
                    "export {var} with a fine-grained token that has \"Secrets: write\" on the repository (or a classic token with `repo`)"
                ),
            )
        })?;
        Self::new(api, SecretString::from(token), scope)
    }

    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    fn url(&self, last: &[&str]) -> Result<Url, GithubError> {
        let mut url = self.api.clone();
        {
            let mut segs = url.path_segments_mut().map_err(|_| {
                GithubError::permanent(
                    "the GitHub API URL cannot have a path",
                    "use an https:// URL",
                )
            })?;
            segs.pop_if_empty();
            segs.extend(self.scope.segments());
            segs.extend(last);
        }
        Ok(url)
    }

    fn request(&self, method: reqwest::Method, url: Url) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .header(
                AUTHORIZATION,
                format!("Bearer {}", self.token.expose_secret()),
            )
            .header(ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
            .header(USER_AGENT, concat!("rotor/", env!("CARGO_PKG_VERSION")))
    }

    /// The scope's public key, which every value is sealed for.
    pub async fn public_key(&self) -> Result<RepoKey, GithubError> {
        let url = self.url(&["public-key"])?;
        let resp = self
            .request(reqwest::Method::GET, url)
            .send()
            .await
            .map_err(|e| self.unreachable("reading the public key", &e))?;
        if !resp.status().is_success() {
            return Err(self.refused("reading the public key", resp).await);
        }
        let key: KeyAnswer = resp.json().await.map_err(|e| {
            GithubError::permanent(
                format!(
                    "GitHub's public key answer for {} is not the documented JSON ({e})",
                    self.scope
                ),
                "check the API URL points at GitHub's REST API",
            )
        })?;
        RepoKey::new(key.key_id, &key.key)
    }

    /// Writes secret `name` = `value`, sealed for `key`.
    pub async fn put(
        &self,
        name: &str,
        key: &RepoKey,
        value: &SecretValue,
    ) -> Result<PutOutcome, GithubError> {
        if !valid_secret_name(name) {
            return Err(GithubError::permanent(
                format!("{name:?} is not a valid GitHub secret name"),
                "use letters, digits and _ only, not starting with a digit or GITHUB_",
            ));
        }
        let body = serde_json::json!({
            "encrypted_value": key.seal(value)?,
            "key_id": key.key_id,
        });
        let url = self.url(&[name])?;
        let what = format!("writing secret {name}");
        let resp = self
            .request(reqwest::Method::PUT, url)
            .json(&body)
            .send()
            .await
            .map_err(|e| self.unreachable(&what, &e))?;
        match resp.status() {
            StatusCode::CREATED => Ok(PutOutcome::Created),
            StatusCode::NO_CONTENT | StatusCode::OK => Ok(PutOutcome::Updated),
            _ => Err(self.refused(&what, resp).await),
        }
    }

    fn unreachable(&self, what: &str, e: &reqwest::Error) -> GithubError {
        // Without the URL: it carries nothing secret, but keep messages short.
        let e = e.without_url_ref();
        GithubError::transient(
            format!("{what} for {}: GitHub is unreachable ({e})", self.scope),
            "check the network and https://www.githubstatus.com; rotor retries",
        )
    }

    async fn refused(&self, what: &str, resp: reqwest::Response) -> GithubError {
        let status = resp.status();
        let headers = resp.headers().clone();
        // GitHub's error body is `{"message": ..., "documentation_url": ...}`; it never
        // echoes the (encrypted) value.
        let message = resp
            .json::<ErrorAnswer>()
            .await
            .ok()
            .and_then(|a| a.message)
            .unwrap_or_default();
        classify(&self.scope, what, status, &headers, &message)
    }
}

trait WithoutUrl {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref(&self) -> String {
        let mut s = self.to_string();
        if let Some(url) = self.url() {
            s = s.replace(url.as_str(), "<url>");
        }
        s
    }
}

/// Seconds from a header, as a duration.
fn header_secs(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// Maps an error answer to what the operator can do.
pub(crate) fn classify(
    scope: &Scope,
    what: &str,
    status: StatusCode,
    headers: &HeaderMap,
    message: &str,
) -> GithubError {
    let said = if message.is_empty() {
        format!("HTTP {}", status.as_u16())
    } else {
        format!("HTTP {}: {message}", status.as_u16())
    };
    let exhausted = headers
        .get("x-ratelimit-remaining")
        .and_then(|v| v.to_str().ok())
        == Some("0");
    if (status == StatusCode::FORBIDDEN || status == StatusCode::TOO_MANY_REQUESTS) && exhausted {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let wait = header_secs(headers, "x-ratelimit-reset").map(|r| r.saturating_sub(now));
        let mut e = GithubError::transient(
            format!(
                "{what} for {scope}: GitHub's rate limit for this token is used up ({said}){}",
                wait.map(|w| format!("; it resets in {w} s"))
                    .unwrap_or_default()
            ),
            "rotor retries after the reset; a GitHub App token has a higher limit",
        );
        e.retry_after = wait.map(Duration::from_secs);
        return e;
    }
    if let Some(after) = header_secs(headers, "retry-after")
        && (status == StatusCode::FORBIDDEN || status == StatusCode::TOO_MANY_REQUESTS)
    {
        let mut e = GithubError::transient(
            format!(
                "{what} for {scope}: GitHub's secondary rate limit ({said}); retry in {after} s"
            ),
            "rotor retries after the wait; avoid many writes at once",
        );
        e.retry_after = Some(Duration::from_secs(after));
        return e;
    }
    match status {
        StatusCode::UNAUTHORIZED => GithubError::permanent(
            format!("{what} for {scope}: GitHub rejected the token ({said})"),
            "the token is wrong, expired or revoked: set a new one in the token variable",
        ),
        StatusCode::FORBIDDEN => GithubError::permanent(
            format!("{what} for {scope}: the token may not do this ({said})"),
            "give the token \"Secrets: write\" on this repository (fine-grained; \"Environments: write\" for environment secrets) or the `repo` scope (classic)",
        ),
        StatusCode::NOT_FOUND => GithubError::permanent(
            format!("{what} for {scope}: not found ({said})"),
            "check owner, repository and environment names; GitHub also answers 404 when the token cannot see the repository",
        ),
        StatusCode::UNPROCESSABLE_ENTITY => GithubError::permanent(
            format!("{what} for {scope}: GitHub refused the request ({said})"),
            "check the secret name; if the public key changed meanwhile, the next run reads it again",
        ),
        s if s.is_server_error() => GithubError::transient(
            format!("{what} for {scope}: GitHub failed ({said})"),
            "rotor retries; see https://www.githubstatus.com",
        ),
        _ => GithubError::permanent(
            format!("{what} for {scope}: unexpected answer ({said})"),
            "report this",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names() {
        for ok in ["JWT_KEY", "_x", "a1"] {
            assert!(valid_secret_name(ok), "{ok}");
        }
        for bad in ["", "1A", "A-B", "GITHUB_TOKEN", "github_x", "A B"] {
            assert!(!valid_secret_name(bad), "{bad}");
        }
    }
}
