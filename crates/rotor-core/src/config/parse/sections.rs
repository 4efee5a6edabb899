//! The walker for `[server]`, `[[tokens]]`, `[[notify]]`, `[[render]]` and `[emergency]`.

use std::path::Path;

use toml_edit::{Item, TableLike};

use super::Walker;
use crate::Duration;
use crate::config::service::{
    EmergencyConfig, NotifyEvent, NotifyFormat, NotifySpec, PublicEndpoint, RenderKind, RenderSpec,
    Scope, ServerConfig, Template, TlsFiles, TokenSpec, Window,
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
const RENDER_KEYS: &[&str] = &["kind", "path", "template", "vars", "on_change", "timeout"];
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
        let mut out = Vec::new();
        for t in self.tables(root, "render") {
            self.unknown_keys(t, RENDER_KEYS, "[[render]]");
            let kind = match self.string(t, "kind") {
                None => {
                    self.error(
                        0..0,
                        "a [[render]] entry needs `kind`".into(),
                        Some("add kind = \"dotenv\", \"json\" or \"template\"".into()),
                    );
                    continue;
                }
                Some((k, span)) => match k.as_str() {
                    "dotenv" => RenderKind::Dotenv,
                    "json" => RenderKind::Json,
                    "template" => RenderKind::Template,
                    other => {
                        self.error(
                            span,
                            format!("unknown render kind {other:?}"),
                            Some("use dotenv, json or template".into()),
                        );
                        continue;
                    }
                },
            };
            let Some((path, _)) = self.string(t, "path") else {
                self.error(
                    t.get("kind").and_then(Item::span).unwrap_or(0..0),
                    "a [[render]] entry needs `path`".into(),
                    Some("add path = \".env\"".into()),
                );
                continue;
            };
            let template = self.string(t, "template").map(|(p, _)| dir.join(p));
            if kind == RenderKind::Template && template.is_none() {
                self.error(
                    t.get("kind").and_then(Item::span).unwrap_or(0..0),
                    "kind = \"template\" needs `template` (the template file)".into(),
                    None,
                );
                continue;
            }
            let mut vars = Vec::new();
            if let Some(item) = t.get("vars") {
                match item.as_table_like() {
                    Some(vt) => {
                        for (name, v) in vt.iter() {
                            let span = v.span().unwrap_or(0..0);
                            let Some(text) = v.as_str() else {
                                self.error(
                                    span,
                                    format!("render var `{name}` must be a string"),
                                    None,
                                );
                                continue;
                            };
                            match Template::parse(text, known) {
                                Ok(tpl) => vars.push((name.to_owned(), tpl)),
                                Err(e) => {
                                    self.error(span, format!("render var `{name}`: {e}"), None)
                                }
                            }
                        }
                    }
                    None => self.error(
                        item.span().unwrap_or(0..0),
                        "`vars` must be a table".into(),
                        Some(
                            "write a [render.vars] section: NAME = \"{{ secret.current }}\"".into(),
                        ),
                    ),
                }
            } else if kind != RenderKind::Template {
                self.error(
                    t.get("kind").and_then(Item::span).unwrap_or(0..0),
                    "a dotenv or json render needs `vars`".into(),
                    Some("add a [render.vars] section: NAME = \"{{ secret.current }}\"".into()),
                );
            }
            let on_change = self.string(t, "on_change").map(|(s, _)| s);
            let timeout = self
                .duration(t, "timeout")
                .unwrap_or(Duration::from_secs(60));
            out.push(RenderSpec {
                kind,
                path: dir.join(path),
                template,
                vars,
                on_change,
                timeout,
            });
        }
        out
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
