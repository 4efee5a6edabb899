//! A minimal RESP2 client over a tokio `TcpStream`, or TLS on one (`rediss://`, through
//! `rotor_tls`): just what the rotator needs.
//!
//! Why not the `redis` crate: the rotator needs exact control over three things the crate
//! hides — a failed `AUTH` does **not** close a Redis connection (so the caller must decide
//! to drop it), every error reply must be classified (`WRONGPASS`, `NOPERM`, unknown
//! command), and every network operation must be bounded by a timeout. Commands are sent as
//! arrays of bulk strings, so no argument is ever interpreted by a parser on our side.
//!
//! Invariants:
//! - every encoded command lives in a [`Zeroizing`] buffer (an `AUTH` carries a password);
//! - connect and each round trip are bounded by the timeouts given to [`Conn::connect`];
//! - after any [`ConnError`] the connection is in an unknown state: callers drop it.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rotor_tls::ClientConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use zeroize::Zeroizing;

/// A byte stream to a server: plain TCP or TLS over TCP.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Largest bulk string or array accepted from a server (replies here are small).
const MAX_LEN: i64 = 64 * 1024 * 1024;

/// One RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The text of a status or bulk reply.
    pub(crate) fn text(&self) -> Option<String> {
        match self {
            Reply::Status(s) => Some(s.clone()),
            Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }
}

/// Why a round trip failed (not an error *reply*: those are [`Reply::Error`]).
#[derive(Debug)]
pub(crate) enum ConnError {
    /// The TCP connection could not be made.
    Connect(std::io::Error),
    /// Connecting took longer than the connect timeout.
    ConnectTimeout(Duration),
    /// The TLS handshake failed (a refused certificate, a server that does not speak TLS).
    Tls(std::io::Error),
    /// The TCP connection was made but no TLS handshake completed within the connect
    /// timeout: most likely a plaintext port.
    TlsTimeout(Duration),
    /// Reading or writing failed, or the server closed the connection.
    Io(std::io::Error),
    /// No complete reply within the command timeout.
    Timeout(Duration),
    /// The server sent something that is not RESP2.
    Protocol(String),
}

impl fmt::Display for ConnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnError::Connect(e) => write!(f, "{e}"),
            ConnError::ConnectTimeout(d) => write!(f, "no connection within {d:?}"),
            ConnError::Tls(e) => write!(f, "TLS handshake failed: {e}"),
            ConnError::TlsTimeout(d) => write!(
                f,
                "no TLS handshake within {d:?}: the port answers TCP but not TLS (a plaintext \
                 redis-server?)"
            ),
            ConnError::Io(e) => write!(f, "connection lost: {e}"),
            ConnError::Timeout(d) => write!(f, "no reply within {d:?}"),
            ConnError::Protocol(e) => write!(f, "not a Redis reply: {e}"),
        }
    }
}

/// One connection to a Redis server.
pub(crate) struct Conn {
    stream: Box<dyn Io>,
    peer: Option<SocketAddr>,
    buf: Vec<u8>,
    command_timeout: Duration,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// Opens a TCP connection to `host:port`, with TLS when `tls` is given, all within
    /// `connect_timeout`.
    pub(crate) async fn connect(
        host: &str,
        port: u16,
        tls: Option<Arc<ClientConfig>>,
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> Result<Conn, ConnError> {
        let started = tokio::time::Instant::now();
        let tcp = tokio::time::timeout(connect_timeout, TcpStream::connect((host, port)))
            .await
            .map_err(|_| ConnError::ConnectTimeout(connect_timeout))?
            .map_err(ConnError::Connect)?;
        let _ = tcp.set_nodelay(true);
        let peer = tcp.peer_addr().ok();
        let stream: Box<dyn Io> = match tls {
            None => Box::new(tcp),
            Some(config) => {
                // Redis has no TLS negotiation: a plaintext server just waits for more of
                // what it takes for an inline command, so silence here has its own error.
                let left = connect_timeout.saturating_sub(started.elapsed());
                let handshake = rotor_tls::connect_stream(config, host, tcp);
                Box::new(
                    tokio::time::timeout(left, handshake)
                        .await
                        .map_err(|_| ConnError::TlsTimeout(connect_timeout))?
                        .map_err(ConnError::Tls)?,
                )
            }
        };
        Ok(Conn {
            stream,
            peer,
            buf: Vec::with_capacity(512),
            command_timeout,
        })
    }

    /// Sends one command and reads its reply. An error *reply* is `Ok(Reply::Error(_))`.
    pub(crate) async fn call(&mut self, args: &[&[u8]]) -> Result<Reply, ConnError> {
        let timeout = self.command_timeout;
        tokio::time::timeout(timeout, self.round_trip(args))
            .await
            .map_err(|_| ConnError::Timeout(timeout))?
    }

    async fn round_trip(&mut self, args: &[&[u8]]) -> Result<Reply, ConnError> {
        let command = encode(args);
        self.stream
            .write_all(&command)
            .await
            .map_err(ConnError::Io)?;
        loop {
            if let Some((reply, used)) = parse(&self.buf, 0).map_err(ConnError::Protocol)? {
                self.buf.drain(..used);
                return Ok(reply);
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await.map_err(ConnError::Io)?;
            if n == 0 {
                return Err(ConnError::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                )));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Encodes a command as a RESP array of bulk strings.
fn encode(args: &[&[u8]]) -> Zeroizing<Vec<u8>> {
    let size: usize = args.iter().map(|a| a.len() + 16).sum::<usize>() + 16;
    let mut out = Zeroizing::new(Vec::with_capacity(size));
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Parses one reply starting at `pos`: `Ok(None)` when more bytes are needed, else the
/// reply and the position after it.
fn parse(buf: &[u8], pos: usize) -> Result<Option<(Reply, usize)>, String> {
    let Some(rest) = buf.get(pos..) else {
        return Ok(None);
    };
    let Some(nl) = rest.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let Some((&kind, line)) = rest[..nl].split_first() else {
        return Err("empty line".to_owned());
    };
    let line = std::str::from_utf8(line).map_err(|_| "a reply line is not UTF-8".to_owned())?;
    let after = pos + nl + 2;
    let number = || {
        line.parse::<i64>()
            .map_err(|_| format!("bad length or integer {line:?}"))
    };
    match kind {
        b'+' => Ok(Some((Reply::Status(line.to_owned()), after))),
        b'-' => Ok(Some((Reply::Error(line.to_owned()), after))),
        b':' => Ok(Some((Reply::Int(number()?), after))),
        b'$' => {
            let len = number()?;
            if len < 0 {
                return Ok(Some((Reply::Bulk(None), after)));
            }
            if len > MAX_LEN {
                return Err(format!("bulk string of {len} bytes"));
            }
            let len = len as usize;
            if buf.len() < after + len + 2 {
                return Ok(None);
            }
            if &buf[after + len..after + len + 2] != b"\r\n" {
                return Err("bulk string not followed by CRLF".to_owned());
            }
            Ok(Some((
                Reply::Bulk(Some(buf[after..after + len].to_vec())),
                after + len + 2,
            )))
        }
        b'*' => {
            let len = number()?;
            if len < 0 {
                return Ok(Some((Reply::Array(None), after)));
            }
            if len > MAX_LEN {
                return Err(format!("array of {len} elements"));
            }
            let mut items = Vec::with_capacity((len as usize).min(1024));
            let mut at = after;
            for _ in 0..len {
                match parse(buf, at)? {
                    Some((item, next)) => {
                        items.push(item);
                        at = next;
                    }
                    None => return Ok(None),
                }
            }
            Ok(Some((Reply::Array(Some(items)), at)))
        }
        other => Err(format!("unknown reply type byte {other:#04x}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_bulk_array() {
        assert_eq!(
            &encode(&[b"AUTH", b"u", b"p w"])[..],
            b"*3\r\n$4\r\nAUTH\r\n$1\r\nu\r\n$3\r\np w\r\n"
        );
    }

    #[test]
    fn parses_every_type_and_waits_for_more() {
        let full = b"*4\r\n+OK\r\n-ERR x\r\n:7\r\n*2\r\n$3\r\nabc\r\n$-1\r\n";
        let (reply, used) = parse(full, 0).unwrap().unwrap();
        assert_eq!(used, full.len());
        assert_eq!(
            reply,
            Reply::Array(Some(vec![
                Reply::Status("OK".into()),
                Reply::Error("ERR x".into()),
                Reply::Int(7),
                Reply::Array(Some(vec![
                    Reply::Bulk(Some(b"abc".to_vec())),
                    Reply::Bulk(None)
                ])),
            ]))
        );
        for cut in 0..full.len() {
            assert_eq!(parse(&full[..cut], 0).unwrap(), None, "cut at {cut}");
        }
        assert!(parse(b"?x\r\n", 0).is_err());
        assert!(parse(b"$3\r\nabcd\r\n", 0).is_err());
    }
}
