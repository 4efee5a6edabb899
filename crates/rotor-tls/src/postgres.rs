//! PostgreSQL: a libpq connection URL (with `sslmode`, `sslrootcert`, `sslcert`, `sslkey`,
//! `sslsni`) → a tokio-postgres [`Config`] plus the TLS connector that carries out the mode,
//! through `tokio-postgres-rustls`. Shared by the rotator and the store, so both read the
//! same URL the same way.

use std::fmt;
use std::str::FromStr;

use tokio_postgres::config::{Host, SslMode as DriverMode};
use tokio_postgres::{Client, Config, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::explain::{TlsFailure, explain_rustls, no_tls_on_server};
use crate::mode::SslMode;
use crate::options::{Raw, TlsOptions};
use crate::{TlsError, client_config};

/// How to secure connections to one PostgreSQL URL.
#[derive(Clone)]
pub struct PgTls {
    opts: TlsOptions,
    connector: Option<MakeRustlsConnect>,
    /// The first host, for messages.
    host: String,
}

impl fmt::Debug for PgTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgTls")
            .field("opts", &self.opts)
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

/// Parses a `postgres://` or `postgresql://` URL as libpq would, TLS parameters included.
/// Errors never repeat the URL (it may hold a password).
pub fn parse_url(url: &str) -> Result<(Config, PgTls), TlsError> {
    let lower = url.get(..13).unwrap_or(url).to_ascii_lowercase();
    if !(lower.starts_with("postgres://") || lower.starts_with("postgresql://")) {
        return Err(TlsError::Url(
            "expected a URL that starts with postgres:// or postgresql://".to_owned(),
        ));
    }
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let (raw, rest) = Raw::split_query(query)?;
    let driver_url = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    let mut config = Config::from_str(&driver_url).map_err(|e| TlsError::Url(e.to_string()))?;
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(h) => h.clone(),
            Host::Unix(p) => p.display().to_string(),
        })
        .collect();
    let host_refs: Vec<&str> = if hosts.is_empty() {
        // libpq's default host is the local unix socket (tokio-postgres: localhost).
        vec!["localhost"]
    } else {
        hosts.iter().map(String::as_str).collect()
    };
    let opts = raw.resolve(&host_refs)?;
    config.ssl_mode(match opts.mode {
        SslMode::Disable => DriverMode::Disable,
        SslMode::Prefer => DriverMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => DriverMode::Require,
    });
    let connector = client_config(&opts)?.map(|c| MakeRustlsConnect::new((*c).clone()));
    let host = host_refs.first().copied().unwrap_or("localhost").to_owned();
    Ok((
        config,
        PgTls {
            opts,
            connector,
            host,
        },
    ))
}

impl PgTls {
    /// The options in force.
    pub fn options(&self) -> &TlsOptions {
        &self.opts
    }

    /// The host certificates are checked against (the url's first host).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Connects with `config` (from [`parse_url`], possibly with user, password and
    /// timeouts added) and spawns the connection's task on the current tokio runtime; it
    /// ends when the client is dropped.
    pub async fn connect(&self, config: &Config) -> Result<Client, tokio_postgres::Error> {
        match &self.connector {
            None => {
                let (client, connection) = config.connect(NoTls).await?;
                tokio::spawn(async move {
                    // Errors reach the client as a closed connection.
                    let _ = connection.await;
                });
                Ok(client)
            }
            Some(tls) => {
                let (client, connection) = config.connect(tls.clone()).await?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                Ok(client)
            }
        }
    }

    /// Explains `e` when it is a TLS failure (a refused certificate, a server without TLS
    /// under a mode that requires it): those are configuration problems, not outages.
    pub fn explain(&self, e: &tokio_postgres::Error) -> Option<TlsFailure> {
        if !e.to_string().starts_with("error performing TLS handshake") {
            return None;
        }
        let source = std::error::Error::source(e).map(ToString::to_string);
        if source.as_deref() == Some("server does not support TLS") {
            return Some(no_tls_on_server(&self.opts, &self.host));
        }
        Some(
            explain_rustls(e, &self.opts, &self.host).unwrap_or_else(|| TlsFailure {
                message: format!(
                    "TLS with {} failed: {} ({})",
                    self.host,
                    source.unwrap_or_default(),
                    self.opts.choice.describe(self.opts.mode)
                ),
                fix:
                    "check the server's TLS setup and the url's sslmode/sslrootcert/sslcert/sslkey"
                        .to_owned(),
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mode::ModeChoice;

    #[test]
    fn provider_urls_parse_and_keep_other_params() {
        let (config, tls) = parse_url(
            "postgres://app@db.example.com:6432/app?sslmode=require&connect_timeout=7&sslsni=0",
        )
        .unwrap();
        assert_eq!(
            config.get_connect_timeout(),
            Some(&std::time::Duration::from_secs(7))
        );
        assert_eq!(config.get_ssl_mode(), DriverMode::Require);
        assert_eq!(tls.options().mode, SslMode::Require);
        assert!(!tls.options().sni);
    }

    #[test]
    fn defaults_loopback_prefer_remote_verify_full() {
        let (c, t) = parse_url("postgres://127.0.0.1:5432/app").unwrap();
        assert_eq!(
            (c.get_ssl_mode(), t.options().mode),
            (DriverMode::Prefer, SslMode::Prefer)
        );
        let (_, t) = parse_url("postgresql://db.internal/app").unwrap();
        assert_eq!(
            (t.options().mode, t.options().choice),
            (SslMode::VerifyFull, ModeChoice::RemoteDefault)
        );
        let (c, t) = parse_url("postgres://db.internal/app?sslmode=disable").unwrap();
        assert_eq!(
            (c.get_ssl_mode(), t.options().mode),
            (DriverMode::Disable, SslMode::Disable)
        );
    }

    #[test]
    fn bad_input_names_the_thing_without_echoing_the_url() {
        let e = parse_url("postgres://u:hunter2@h/db?sslrootcert=/nonexistent/ca.pem")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sslrootcert") && e.contains("/nonexistent/ca.pem"),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");
        let e = parse_url("mysql://u:hunter2@h/db").unwrap_err().to_string();
        assert!(!e.contains("hunter2") && e.contains("postgres://"), "{e}");
    }
}
