//! Which hosts are loopback: the one rule for "may this go over plaintext" (database and
//! Redis TLS defaults in `rotor-tls`, a GitHub `api_url` in the config).

use std::net::IpAddr;

/// `localhost`, `127.0.0.0/8`, `::1` (with or without brackets), or a unix socket path:
/// hosts whose traffic never leaves the machine. Names are not resolved: a DNS name that
/// happens to point at 127.0.0.1 is treated as remote, which errs on the safe side.
pub fn is_loopback(host: &str) -> bool {
    if host.starts_with('/') || host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
