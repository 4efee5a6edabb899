//! `[server]`: the daemon's listener, TLS, retries, leases, what is public and the
//! connection limits.

use std::path::Path;

use toml_edit::{Item, TableLike};

use super::Walker;
use crate::config::server::{PublicEndpoint, ServerConfig, TlsFiles};

pub(super) const SERVER_KEYS: &[&str] = &[
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

impl Walker<'_> {
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
    pub(super) fn server_exposure(&mut self, t: &dyn TableLike, server: &mut ServerConfig) {
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
}
