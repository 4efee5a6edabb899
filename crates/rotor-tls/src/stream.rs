//! TLS over an established TCP stream, for clients that speak their protocol themselves
//! (the Redis rotator): `rediss://` starts TLS at once, there is no negotiation.

use std::sync::Arc;

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Runs the TLS handshake with `host` (its name is checked by the configuration's
/// verifier and sent as SNI unless the configuration turned SNI off).
pub async fn connect(
    config: Arc<ClientConfig>,
    host: &str,
    tcp: TcpStream,
) -> std::io::Result<TlsStream<TcpStream>> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let name = ServerName::try_from(bare.to_owned()).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{host:?} is not a valid TLS server name"),
        )
    })?;
    TlsConnector::from(config).connect(name, tcp).await
}
