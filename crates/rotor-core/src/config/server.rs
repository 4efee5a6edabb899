//! `[server]`: how `rotor serve` listens, retries and leases, what answers without a token,
//! and its connection limits.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Serialize;

use crate::Duration;

/// `[server]`: `rotor serve`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Serve HTTPS with these PEM files (both or neither).
    pub tls: Option<TlsFiles>,
    /// Rotations the scheduler runs at once.
    pub max_concurrent_rotations: usize,
    /// Attempts of a failed scheduled rotation before the secret is left `failed`.
    pub retry_attempts: u32,
    /// First delay between attempts; doubles each time.
    pub retry_backoff: Duration,
    /// How long a rotation's lease lasts without renewal (each step renews it). Another
    /// replica takes over a rotation whose holder died once this has passed.
    pub lease: Duration,
    /// What answers without a token (`public = [...]`). Default: health and JWKS only; the
    /// page and metrics list every secret name and state, so they need a token unless listed.
    pub public: Vec<PublicEndpoint>,
    /// A second listener serving only `/metrics` (and `/healthz`) without a token, for
    /// scrapers on a private network (`metrics_listen`).
    pub metrics_listen: Option<SocketAddr>,
    /// Connection limits of the HTTP server (slow and idle clients cannot hold it).
    pub limits: HttpLimits,
}

/// An endpoint that may be made public with `[server] public`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PublicEndpoint {
    /// `/healthz` and `/readyz`.
    Health,
    /// `/.well-known/jwks.json` and `/v1/secrets/{name}/jwks.json`.
    Jwks,
    /// The HTML status page `/`.
    Page,
    /// `/metrics`.
    Metrics,
}

impl PublicEndpoint {
    pub const ALL: [PublicEndpoint; 4] = [
        PublicEndpoint::Health,
        PublicEndpoint::Jwks,
        PublicEndpoint::Page,
        PublicEndpoint::Metrics,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            PublicEndpoint::Health => "health",
            PublicEndpoint::Jwks => "jwks",
            PublicEndpoint::Page => "page",
            PublicEndpoint::Metrics => "metrics",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// `[server]` limits on connections, with defaults safe for an internet-facing listener.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpLimits {
    /// A client must send its request headers within this (`header_timeout`).
    pub header_timeout: Duration,
    /// A request (reading the body and answering; not the watch stream) must finish within
    /// this (`request_timeout`).
    pub request_timeout: Duration,
    /// A keep-alive connection with no request in flight is closed after this (`idle_timeout`).
    pub idle_timeout: Duration,
    /// Connections served at once; more wait in the kernel's backlog (`max_connections`).
    pub max_connections: usize,
    /// Largest request head (request line and headers) in bytes (`max_header_bytes`).
    pub max_header_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 256,
            max_header_bytes: 16 * 1024,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8700)),
            tls: None,
            max_concurrent_rotations: 4,
            retry_attempts: 5,
            retry_backoff: Duration::from_secs(30),
            lease: Duration::from_mins(5),
            public: vec![PublicEndpoint::Health, PublicEndpoint::Jwks],
            metrics_listen: None,
            limits: HttpLimits::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}
