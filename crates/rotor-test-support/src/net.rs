//! Port allocation and readiness polling.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// Ports this process already handed out: never hand out the same one twice, so parallel
/// tests in one test binary do not race each other for it.
fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(|| Mutex::new(HashSet::new()))
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read it, release it).
///
/// Another process may still take it before the caller binds it: the server starters in
/// this crate retry with a new port when a server reports "address in use".
pub fn free_port() -> Result<u16> {
    for _ in 0..50 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| Error::io("binding 127.0.0.1:0 to find a free port", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| Error::io("reading the address of a bound socket", e))?
            .port();
        drop(listener);
        let mut ports = handed_out()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if ports.insert(port) {
            return Ok(port);
        }
    }
    Err(Error::io(
        "finding a free port",
        std::io::Error::other("50 attempts returned ports already handed out"),
    ))
}

/// Waits until something accepts TCP connections on `addr`, polling every 50 ms.
pub fn wait_for_port(addr: SocketAddr, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                what: format!("a listener on {addr}"),
                after: timeout,
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `127.0.0.1:port`.
pub(crate) fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Whether a server log says its port was taken (so a retry on another port makes sense).
pub(crate) fn says_address_in_use(log: &str) -> bool {
    let log = log.to_ascii_lowercase();
    log.contains("address already in use")
        || log.contains("could not bind")
        || log.contains("could not create any tcp/ip sockets")
        || log.contains("errno 98")
}
