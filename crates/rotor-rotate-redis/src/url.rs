//! The target: where a server is (`redis://` / `rediss://` urls) and how the connection
//! is secured.

use std::fmt;
use std::sync::Arc;

/// Where a server is, and how to secure the connection.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) tls: Option<TargetTls>,
}

/// `rediss://`: the TLS options from the url and the rustls configuration they make.
#[derive(Clone)]
pub(crate) struct TargetTls {
    pub(crate) opts: rotor_tls::TlsOptions,
    pub(crate) config: Arc<rotor_tls::ClientConfig>,
}

impl fmt::Debug for TargetTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TargetTls")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)?;
        } else {
            write!(f, "{}:{}", self.host, self.port)?;
        }
        if self.tls.is_some() {
            f.write_str(" (TLS)")?;
        }
        Ok(())
    }
}

/// Parses `redis://host[:port][/db]` or `rediss://host[:port][/db][?sslmode=..&sslrootcert=..
/// &sslcert=..&sslkey=..&sslsni=0]` (no credentials). The TLS parameters have libpq's names
/// and meanings (see `rotor_tls`); `rediss://` always uses TLS, so only `require`,
/// `verify-ca` and `verify-full` apply, and `verify-full` is the default for a host that is
/// not loopback.
pub(crate) fn parse_url(url: &str) -> Result<Target, String> {
    let lower = url.to_ascii_lowercase();
    let tls = lower.starts_with("rediss://");
    let Some(rest) = url
        .get(
            if tls {
                "rediss://".len()
            } else {
                "redis://".len()
            }..,
        )
        .filter(|_| tls || lower.starts_with("redis://"))
    else {
        return Err("the url must look like redis://host:port or rediss://host:port".to_owned());
    };
    let query = rest.split_once('?').map_or("", |(_, q)| q);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(
            "the url must not carry credentials: they come from the managed secrets".to_owned(),
        );
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| "unclosed '[' in the url's host".to_owned())?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("the url has no host".to_owned());
    }
    let port = match port {
        None => 6379,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("bad port {p:?} in the url"))?,
    };
    let tls = if tls {
        Some(target_tls(query, host)?)
    } else {
        if query.split('&').any(|p| p.starts_with("ssl")) {
            return Err("TLS parameters (ssl...) need a rediss:// url".to_owned());
        }
        None
    };
    Ok(Target {
        host: host.to_owned(),
        port,
        tls,
    })
}

/// The TLS settings of a `rediss://` url's query for `host`.
fn target_tls(query: &str, host: &str) -> Result<TargetTls, String> {
    let (mut opts, rest) =
        rotor_tls::options_from_query(query, &[host]).map_err(|e| e.to_string())?;
    if let Some(other) = rest.first() {
        let name = other.split('=').next().unwrap_or_default();
        return Err(format!(
            "unknown url parameter {name:?} (a rediss:// url takes sslmode, sslrootcert, sslcert, \
             sslkey, sslsni)"
        ));
    }
    match (opts.mode, opts.choice) {
        (
            rotor_tls::SslMode::Disable | rotor_tls::SslMode::Prefer,
            rotor_tls::ModeChoice::Explicit,
        ) => {
            return Err(format!(
                "sslmode={} does not apply to rediss://, which always uses TLS (use redis:// \
                 for a plaintext connection on a trusted network)",
                opts.mode
            ));
        }
        // Redis has no TLS negotiation: on loopback the default is TLS without an
        // identity check, libpq's `prefer` as far as a rediss:// url can go.
        (rotor_tls::SslMode::Prefer, _) => opts.mode = rotor_tls::SslMode::Require,
        _ => {}
    }
    let config = rotor_tls::client_config(&opts)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "rediss:// needs TLS".to_owned())?;
    Ok(TargetTls { opts, config })
}
