//! The walker for `[server]`, `[[tokens]]`, `[[notify]]`, `[[render]]` and `[emergency]`.

use std::path::Path;

use toml_edit::{Item, TableLike};

use super::Walker;
use crate::Duration;
use crate::config::service::{
    EmergencyConfig, GITHUB_API, GithubRender, NotifyEvent, NotifyFormat, NotifySpec,
    PublicEndpoint, RenderKind, RenderSpec, Scope, ServerConfig, Template, TlsFiles, TokenSpec,
    Window, valid_github_secret_name,
};

const SERVER_KEYS: &[&str] = &[
    "listen",
    "tls_cert",
    "tls_key",
    "max_concurrent_rotations",
    "retry_attempts",
    "retry_backoff",
    "lease",
    "public",
    "metrics_listen",
    "header_timeout",
    "request_timeout",
    "idle_timeout",
    "max_connections",
    "max_header_bytes",
];
const TOKEN_KEYS: &[&str] = &["name", "sha256", "scopes"];
const NOTIFY_KEYS: &[&str] = &["url", "format", "events"];
const RENDER_KEYS: &[&str] = &[
    "kind",
    "path",
    "template",
    "vars",
    "on_change",
    "timeout",
    "repository",
    "environment",
    "token_env",
    "api_url",
    "secrets",
];
/// The keys of `[[render]]` that only `kind = "github"` has.
const GITHUB_ONLY_KEYS: &[&str] = &[
    "repository",
    "environment",
    "token_env",
    "api_url",
    "secrets",
];
/// The keys of `[[render]]` that only files have (a GitHub target runs no command).
const FILE_ONLY_KEYS: &[&str] = &["template", "vars", "on_change", "timeout"];
const EMERGENCY_KEYS: &[&str] = &["health_urls", "error_rate_url", "report_dir"];

impl Walker<'_> {
    /// The array-of-tables items of `key` (also accepts an inline array of tables).
    fn tables<'d>(&mut self, root: &'d toml_edit::Table, key: &str) -> Vec<&'d dyn TableLike> {
        let Some(item) = root.get(key) else {
            return Vec::new();
        };
        if let Some(aot) = item.as_array_of_tables() {
            return aot.iter().map(|t| t as &dyn TableLike).collect();
        }
        if let Some(arr) = item.as_array() {
            let tables: Vec<&dyn TableLike> = arr
                .iter()
                .filter_map(|v| v.as_inline_table().map(|t| t as &dyn TableLike))
                .collect();
            if tables.len() == arr.len() {
                return tables;
            }
        }
        self.error(
            item.span().unwrap_or(0..0),
            format!("`{key}` must be a list of tables"),
            Some(format!("write each entry as a [[{key}]] section")),
        );
        Vec::new()
    }

    fn strings(&mut self, t: &dyn TableLike, key: &str) -> Option<Vec<String>> {
        let item = t.get(key)?;
        let span = item.span().unwrap_or(0..0);
        match item.as_array() {
            Some(arr) if arr.iter().all(|v| v.as_str().is_some()) => {
                let mut out = Vec::new();
                for v in arr.iter().filter_map(|v| v.as_str()) {
                    out.push(self.interpolate(v, span.clone())?);
                }
                Some(out)
            }
            _ => {
                self.error(
                    span,
                    format!("`{key}` must be a list of strings"),
                    Some(format!("write {key} = [\"...\", \"...\"]")),
                );
                None
            }
        }
    }

    pub(super) fn server(&mut self, item: Option<&Item>, dir: &Path) -> ServerConfig {
        let mut server = ServerConfig::default();
        let Some(item) = item else { return server };
        let Some(t) = item.as_table_like() else {
            self.error(
                item.span().unwrap_or(0..0),
                "`server` must be a table".into(),
                Some("write a [server] section".into()),
            );
            return server;
        };
        self.unknown_keys(t, SERVER_KEYS, "[server]");
        if let Some((listen, span)) = self.string(t, "listen") {
            match listen.parse() {
                Ok(addr) => server.listen = addr,
                Err(_) => self.error(
                    span,
                    format!("`listen` = {listen:?} is not an address"),
                    Some("write listen = \"127.0.0.1:8700\" (IP and port)".into()),
                ),
            }
        }
        let cert = self.string(t, "tls_cert");
        let key = self.string(t, "tls_key");
        match (cert, key) {
            (Some((c, _)), Some((k, _))) => {
                server.tls = Some(TlsFiles {
                    cert: dir.join(c),
                    key: dir.join(k),
                })
            }
            (Some((_, span)), None) | (None, Some((_, span))) => self.error(
                span,
                "TLS needs both `tls_cert` and `tls_key`".into(),
                Some("set both PEM files, or neither for plain HTTP on loopback".into()),
            ),
            (None, None) => {}
        }
        if let Some(n) = self.integer(t, "max_concurrent_rotations", 1, 1024) {
            server.max_concurrent_rotations = n as usize;
        }
        if let Some(n) = self.integer(t, "retry_attempts", 1, 100) {
            server.retry_attempts = n as u32;
        }
        if let Some(d) = self.duration(t, "retry_backoff") {
            server.retry_backoff = d;
        }
        if let Some(d) = self.duration(t, "lease") {
            if d.as_secs() < 2 {
                self.error(
                    t.get("lease").and_then(Item::span).unwrap_or(0..0),
                    "`lease` must be at least 2s".into(),
                    Some(
                        "leases are renewed at every step; use e.g. \"30s\" or the default \"5m\""
                            .into(),
                    ),
                );
            } else {
                server.lease = d;
            }
        }
        self.server_exposure(t, &mut server);
        server
    }

    /// `public`, `metrics_listen` and the connection limits.
    fn server_exposure(&mut self, t: &dyn TableLike, server: &mut ServerConfig) {
        if let Some(list) = self.strings(t, "public") {
            let span = t.get("public").and_then(Item::span).unwrap_or(0..0);
            let mut public = Vec::new();
            for name in &list {
                match PublicEndpoint::parse(name) {
                    Some(e) => public.push(e),
                    None => self.error(
                        span.clone(),
                        format!("`public` names {name:?}, which is not an endpoint that can be public"),
                        Some("use any of \"health\", \"jwks\", \"page\", \"metrics\" (e.g. public = [\"health\", \"jwks\"])".into()),
                    ),
                }
            }
            server.public = public;
        }
        if let Some((addr, span)) = self.string(t, "metrics_listen") {
            match addr.parse() {
                Ok(a) => server.metrics_listen = Some(a),
                Err(_) => self.error(
                    span,
                    format!("`metrics_listen` = {addr:?} is not an address"),
                    Some("write metrics_listen = \"127.0.0.1:9700\" (IP and port)".into()),
                ),
            }
        }
        let limits = &mut server.limits;
        for (key, slot) in [
            ("header_timeout", &mut limits.header_timeout),
            ("request_timeout", &mut limits.request_timeout),
            ("idle_timeout", &mut limits.idle_timeout),
        ] {
            if let Some(d) = self.duration(t, key) {
                if d.is_zero() {
                    self.error(
                        t.get(key).and_then(Item::span).unwrap_or(0..0),
                        format!("`{key}` must be longer than 0"),
                        Some(format!("write e.g. {key} = \"30s\"; a zero timeout would never let a request in")),
                    );
                } else {
                    *slot = d;
                }
            }
        }
        if limits.idle_timeout <= limits.request_timeout {
            self.error(
                t.get("idle_timeout")
                    .or_else(|| t.get("request_timeout"))
                    .and_then(Item::span)
                    .unwrap_or(0..0),
                "`idle_timeout` must be longer than `request_timeout`".into(),
                Some("a connection waiting for its answer is idle; e.g. request_timeout = \"30s\", idle_timeout = \"60s\"".into()),
            );
        }
        if let Some(n) = self.integer(t, "max_connections", 1, 1_000_000) {
            limits.max_connections = n as usize;
        }
        // hyper's read buffer cannot be smaller than 8 KiB.
        if let Some(n) = self.integer(t, "max_header_bytes", 8192, 1024 * 1024) {
            limits.max_header_bytes = n as usize;
        }
    }

    pub(super) fn tokens(&mut self, root: &toml_edit::Table) -> Vec<TokenSpec> {
        let mut out: Vec<TokenSpec> = Vec::new();
        for t in self.tables(root, "tokens") {
            self.unknown_keys(t, TOKEN_KEYS, "[[tokens]]");
            let span = t.get("name").and_then(Item::span).unwrap_or(0..0);
            let name = self.string(t, "name").map(|(s, _)| s);
            let sha = self.string(t, "sha256");
            let scopes = self.strings(t, "scopes");
            let (Some(name), Some((sha, sha_span)), Some(scopes)) = (name, sha, scopes) else {
                self.error(
                    span,
                    "a token needs `name`, `sha256` and `scopes`".into(),
                    Some("paste the lines `rotor token new NAME --scope ...` printed".into()),
                );
                continue;
            };
            if sha.len() != 64 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
                self.error(
                    sha_span,
                    format!("token {name:?}: `sha256` must be 64 hex characters"),
                    Some(
                        "paste the hash `rotor token new` printed (never the token itself)".into(),
                    ),
                );
                continue;
            }
            let mut parsed = Vec::new();
            for s in &scopes {
                match Scope::parse(s) {
                    Ok(sc) => parsed.push(sc),
                    Err(e) => self.error(
                        t.get("scopes").and_then(Item::span).unwrap_or(0..0),
                        format!("token {name:?}: {e}"),
                        None,
                    ),
                }
            }
            if out.iter().any(|o| o.name == name) {
                self.error(
                    span.clone(),
                    format!("duplicate token name {name:?}"),
                    Some("give each token its own name".into()),
                );
            }
            out.push(TokenSpec {
                name,
                sha256: sha.to_ascii_lowercase(),
                scopes: parsed,
            });
        }
        out
    }

    pub(super) fn notify(&mut self, root: &toml_edit::Table) -> Vec<NotifySpec> {
        let mut out = Vec::new();
        for t in self.tables(root, "notify") {
            self.unknown_keys(t, NOTIFY_KEYS, "[[notify]]");
            let Some((url, span)) = self.string(t, "url") else {
                if t.get("url").is_none() {
                    self.error(
                        0..0,
                        "a [[notify]] entry needs `url`".into(),
                        Some("add url = \"${SLACK_WEBHOOK}\"".into()),
                    );
                }
                continue;
            };
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                self.error(
                    span,
                    "`url` must be an http:// or https:// URL".into(),
                    None,
                );
                continue;
            }
            let format = match self.string(t, "format") {
                None => NotifyFormat::Slack,
                Some((f, span)) => match f.as_str() {
                    "slack" => NotifyFormat::Slack,
                    "json" => NotifyFormat::Json,
                    other => {
                        self.error(
                            span,
                            format!("unknown notify format {other:?}"),
                            Some("use \"slack\" or \"json\"".into()),
                        );
                        continue;
                    }
                },
            };
            let events = match self.strings(t, "events") {
                None => NotifyEvent::ALL.to_vec(),
                Some(list) => {
                    let mut evs = Vec::new();
                    for e in list {
                        match NotifyEvent::ALL.into_iter().find(|x| x.as_str() == e) {
                            Some(ev) => evs.push(ev),
                            None => self.error(
                                t.get("events").and_then(Item::span).unwrap_or(0..0),
                                format!("unknown notify event {e:?}"),
                                Some("use rotated, failed, overdue, emergency, blocked".into()),
                            ),
                        }
                    }
                    evs
                }
            };
            out.push(NotifySpec {
                url: crate::SecretUrl::new(url),
                format,
                events,
            });
        }
        out
    }

    pub(super) fn render(
        &mut self,
        root: &toml_edit::Table,
        dir: &Path,
        known: &[&str],
    ) -> Vec<RenderSpec> {
        let mut out: Vec<RenderSpec> = Vec::new();
        for t in self.tables(root, "render") {
            self.unknown_keys(t, RENDER_KEYS, "[[render]]");
            let kind = match self.string(t, "kind") {
                None => {
                    self.error(
                        0..0,
                        "a [[render]] entry needs `kind`".into(),
                        Some("add kind = \"dotenv\", \"json\", \"template\" or \"github\"".into()),
                    );
                    continue;
                }
                Some((k, span)) => match k.as_str() {
                    "dotenv" => RenderKind::Dotenv,
                    "json" => RenderKind::Json,
                    "template" => RenderKind::Template,
                    "github" => RenderKind::Github,
                    other => {
                        self.error(
                            span,
                            format!("unknown render kind {other:?}"),
                            Some("use dotenv, json, template or github".into()),
                        );
                        continue;
                    }
                },
            };
            let spec = if kind == RenderKind::Github {
                self.github_render(t, dir, known, &out)
            } else {
                self.file_render(t, kind, dir, known)
            };
            if let Some(spec) = spec {
                out.push(spec);
            }
        }
        out
    }

    /// Keys of `t` that belong to the other family of render kinds.
    fn foreign_render_keys(&mut self, t: &dyn TableLike, foreign: &[&str], kind: &str, help: &str) {
        for key in foreign {
            if let Some(item) = t.get(key) {
                let span = t
                    .key(key)
                    .and_then(|k| k.span())
                    .or_else(|| item.span())
                    .unwrap_or(0..0);
                self.error(
                    span,
                    format!("`{key}` is not a key of a kind = \"{kind}\" render"),
                    Some(help.to_owned()),
                );
            }
        }
    }

    /// A table of name → template string (`[render.vars]`, `[render.secrets]`).
    fn render_templates(
        &mut self,
        t: &dyn TableLike,
        key: &str,
        known: &[&str],
    ) -> Option<Vec<(String, Template)>> {
        let item = t.get(key)?;
        let Some(vt) = item.as_table_like() else {
            self.error(
                item.span().unwrap_or(0..0),
                format!("`{key}` must be a table"),
                Some(format!(
                    "write a [render.{key}] section: NAME = \"{{{{ secret.current }}}}\""
                )),
            );
            return Some(Vec::new());
        };
        let mut out = Vec::new();
        for (name, v) in vt.iter() {
            let span = v.span().unwrap_or(0..0);
            let Some(text) = v.as_str() else {
                self.error(
                    span,
                    format!("render {key} `{name}` must be a string"),
                    None,
                );
                continue;
            };
            match Template::parse(text, known) {
                Ok(tpl) => out.push((name.to_owned(), tpl)),
                Err(e) => self.error(span, format!("render {key} `{name}`: {e}"), None),
            }
        }
        Some(out)
    }

    fn file_render(
        &mut self,
        t: &dyn TableLike,
        kind: RenderKind,
        dir: &Path,
        known: &[&str],
    ) -> Option<RenderSpec> {
        self.foreign_render_keys(
            t,
            GITHUB_ONLY_KEYS,
            match kind {
                RenderKind::Dotenv => "dotenv",
                RenderKind::Json => "json",
                _ => "template",
            },
            "these keys are for kind = \"github\"; a file render takes path, vars or template, on_change, timeout",
        );
        let Some((path, _)) = self.string(t, "path") else {
            self.error(
                t.get("kind").and_then(Item::span).unwrap_or(0..0),
                "a [[render]] entry needs `path`".into(),
                Some("add path = \".env\"".into()),
            );
            return None;
        };
        let template = self.string(t, "template").map(|(p, _)| dir.join(p));
        if kind == RenderKind::Template && template.is_none() {
            self.error(
                t.get("kind").and_then(Item::span).unwrap_or(0..0),
                "kind = \"template\" needs `template` (the template file)".into(),
                None,
            );
            return None;
        }
        let vars = match self.render_templates(t, "vars", known) {
            Some(vars) => vars,
            None => {
                if kind != RenderKind::Template {
                    self.error(
                        t.get("kind").and_then(Item::span).unwrap_or(0..0),
                        "a dotenv or json render needs `vars`".into(),
                        Some("add a [render.vars] section: NAME = \"{{ secret.current }}\"".into()),
                    );
                }
                Vec::new()
            }
        };
        let on_change = self.string(t, "on_change").map(|(s, _)| s);
        let timeout = self
            .duration(t, "timeout")
            .unwrap_or(Duration::from_secs(60));
        Some(RenderSpec {
            kind,
            path: dir.join(path),
            template,
            vars,
            on_change,
            timeout,
            github: None,
        })
    }

    /// `kind = "github"`: repository, environment, token variable, API URL and the secrets.
    fn github_render(
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
    fn github_token_env(&mut self, t: &dyn TableLike) -> Option<String> {
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
    fn github_api_url(&mut self, t: &dyn TableLike) -> Option<String> {
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

    pub(super) fn emergency(&mut self, item: Option<&Item>, dir: &Path) -> EmergencyConfig {
        let mut cfg = EmergencyConfig {
            report_dir: dir.join("reports"),
            ..EmergencyConfig::default()
        };
        let Some(item) = item else { return cfg };
        let Some(t) = item.as_table_like() else {
            self.error(
                item.span().unwrap_or(0..0),
                "`emergency` must be a table".into(),
                None,
            );
            return cfg;
        };
        self.unknown_keys(t, EMERGENCY_KEYS, "[emergency]");
        if let Some(urls) = self.strings(t, "health_urls") {
            cfg.health_urls = urls;
        }
        cfg.error_rate_url = self.string(t, "error_rate_url").map(|(s, _)| s);
        if let Some((p, _)) = self.string(t, "report_dir") {
            cfg.report_dir = dir.join(p);
        }
        cfg
    }

    pub(super) fn window(&mut self, t: &dyn TableLike) -> Option<Window> {
        let (s, span) = self.string(t, "window")?;
        match Window::parse(&s) {
            Ok(w) => Some(w),
            Err(e) => {
                self.error(
                    span,
                    format!("`window`: {e}"),
                    Some("write e.g. window = \"Tue-Thu 02:00-04:00 Europe/Berlin\" (days, a local time range, an IANA time zone)".into()),
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

/// The keys of the service tables, with the header each is written under (the same lists
/// `unknown_keys` checks, so the docs test sees what the parser accepts).
pub(super) fn section_keys() -> [(&'static str, &'static [&'static str]); 5] {
    [
        ("[server]", SERVER_KEYS),
        ("[[tokens]]", TOKEN_KEYS),
        ("[[notify]]", NOTIFY_KEYS),
        ("[[render]]", RENDER_KEYS),
        ("[emergency]", EMERGENCY_KEYS),
    ]
}
