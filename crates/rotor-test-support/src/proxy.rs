//! A TCP proxy whose connections can be cut, to simulate network failures.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::{Error, Result};

const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A TCP proxy on a free port on 127.0.0.1 that forwards bytes both ways to `upstream`,
/// for "network cut in the middle of a step" tests: point the code under test at
/// [`addr`](Self::addr) instead of the server, then
///
/// * [`cut_all`](Self::cut_all) closes every live connection at once (both sides see the
///   connection end; the server sees its client go away);
/// * [`set_refusing(true)`](Self::set_refusing) closes each new connection as soon as it
///   is accepted, before anything reaches the server (the network stays down);
/// * [`set_stalled(true)`](Self::set_stalled) holds bytes in the proxy, with connections
///   left open, until `set_stalled(false)` (a network that hangs, to test timeouts).
///
/// Plain threads (two per connection), so it works the same in sync tests and under any
/// async runtime. Dropping it stops accepting and cuts every connection.
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    accept_thread: Option<JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct Shared {
    refusing: AtomicBool,
    stalled: AtomicBool,
    stopping: AtomicBool,
    next_id: AtomicU64,
    accepted: AtomicU64,
    /// Live connections: (client side, upstream side) clones, to shut them down.
    live: Mutex<HashMap<u64, (TcpStream, TcpStream)>>,
}

impl Shared {
    fn live(&self) -> MutexGuard<'_, HashMap<u64, (TcpStream, TcpStream)>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl TcpProxy {
    /// Starts a proxy to `upstream` on a free port on 127.0.0.1 (bound at once: no race).
    pub fn start(upstream: SocketAddr) -> Result<TcpProxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| Error::io("binding the proxy on 127.0.0.1:0", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("reading the proxy's address", e))?;
        let shared = Arc::new(Shared::default());
        let accept_thread = std::thread::Builder::new()
            .name(format!("proxy-{}-accept", addr.port()))
            .spawn({
                let shared = Arc::clone(&shared);
                move || accept_loop(&listener, upstream, &shared)
            })
            .map_err(|e| Error::io("spawning the proxy's accept thread", e))?;
        Ok(TcpProxy {
            addr,
            upstream,
            shared,
            accept_thread: Some(accept_thread),
        })
    }

    /// Where clients connect: `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The proxy's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The address connections are forwarded to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// Closes every live connection, both towards the client and towards the server.
    /// New connections are still accepted unless [`set_refusing`](Self::set_refusing).
    /// Returns how many connections were cut.
    pub fn cut_all(&self) -> usize {
        let cut: Vec<_> = self.shared.live().drain().collect();
        for (_, (client, server)) in &cut {
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
        }
        cut.len()
    }

    /// While `true`, each new connection is closed right after it is accepted, without
    /// reaching the server. Live connections are left alone (see [`cut_all`](Self::cut_all)).
    pub fn set_refusing(&self, refusing: bool) {
        self.shared.refusing.store(refusing, Ordering::SeqCst);
    }

    /// While `true`, bytes read on either side are held instead of forwarded; connections
    /// stay open. `false` delivers what was held and resumes.
    pub fn set_stalled(&self, stalled: bool) {
        self.shared.stalled.store(stalled, Ordering::SeqCst);
    }

    /// How many connections are live (forwarding) now.
    pub fn connections(&self) -> usize {
        self.shared.live().len()
    }

    /// How many connections were accepted and forwarded since the start (refused ones
    /// are not counted).
    pub fn total_connections(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking accept().
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
        self.set_stalled(false);
        self.cut_all();
    }
}

fn accept_loop(listener: &TcpListener, upstream: SocketAddr, shared: &Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else {
            // e.g. EMFILE: back off a little instead of spinning.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        if shared.refusing.load(Ordering::SeqCst) {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let Ok(server) = TcpStream::connect_timeout(&upstream, UPSTREAM_CONNECT_TIMEOUT) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let (Ok(c2), Ok(s2), Ok(c3), Ok(s3)) = (
            client.try_clone(),
            server.try_clone(),
            client.try_clone(),
            server.try_clone(),
        ) else {
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
            continue;
        };
        let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
        shared.live().insert(id, (c3, s3));
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        let finished = Arc::new(AtomicUsize::new(0));
        for (name, from, to) in [("up", client, s2), ("down", server, c2)] {
            let conn_shared = Arc::clone(shared);
            let finished = Arc::clone(&finished);
            let spawned = std::thread::Builder::new()
                .name(format!("proxy-conn-{id}-{name}"))
                .spawn(move || {
                    pump(from, &to, &conn_shared);
                    if finished.fetch_add(1, Ordering::SeqCst) == 1 {
                        // Both directions are done: the connection is over.
                        if let Some((c, s)) = conn_shared.live().remove(&id) {
                            let _ = c.shutdown(Shutdown::Both);
                            let _ = s.shutdown(Shutdown::Both);
                        }
                    }
                });
            if spawned.is_err()
                && let Some((c, s)) = shared.live().remove(&id)
            {
                let _ = c.shutdown(Shutdown::Both);
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

/// Copies `from` to `to` until EOF or an error, honouring the stall switch; then
/// half-closes `to` (EOF) or, on an error, closes both.
fn pump(mut from: TcpStream, mut to: &TcpStream, shared: &Shared) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        while shared.stalled.load(Ordering::SeqCst) && !shared.stopping.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
