//! Slow and idle clients cannot hold the server: header, idle and connection limits on a real
//! listener, while other clients are served.

mod common;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rotor_daemon::{Daemon, Running, ServeOptions};
use rotor_engine::SystemClock;

const LIMITS: &str = r#"
[server]
header_timeout = "1s"
request_timeout = "2s"
idle_timeout = "3s"
max_connections = 8
max_header_bytes = 8192
public = ["health", "jwks"]
"#;

async fn start() -> (common::Fixture, Running) {
    let fx = common::fixture(LIMITS);
    let engine = fx.engine(Arc::new(SystemClock), None);
    let running = Daemon::new(engine, Arc::new(SystemClock))
        .start(ServeOptions {
            listen: Some("127.0.0.1:0".parse().expect("loopback listen address")),
            scheduler: None,
            ..ServeOptions::default()
        })
        .await
        .expect("start the daemon");
    (fx, running)
}

/// Whether the server closed `s` (EOF or reset) within `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within))
        .expect("set the read timeout of the raw connection");
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

fn healthz(addr: SocketAddr) -> u16 {
    let mut s = TcpStream::connect(addr).expect("connect to the daemon for /healthz");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("set the read timeout of the /healthz connection");
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write GET /healthz");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_is_cut_off_while_others_are_served() {
    let (_fx, running) = start().await;
    let addr = running.addr();
    let outcome = tokio::task::spawn_blocking(move || {
        // A client sending its headers at 5 bytes/s.
        let slow = std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            let started = Instant::now();
            for b in b"GET /healthz HTTP/1.1\r\nHost: slow\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            {
                if s.write_all(&[*b]).is_err() {
                    return started.elapsed();
                }
                std::thread::sleep(Duration::from_millis(200));
                if started.elapsed() > Duration::from_secs(10) {
                    break;
                }
            }
            // Cut off: the server closed (EOF, maybe after a 408).
            assert!(
                closed_within(&mut s, Duration::from_secs(3)),
                "slow client still connected"
            );
            started.elapsed()
        });
        // Meanwhile, other clients are answered at once.
        let mut served = 0;
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(1500) {
            assert_eq!(healthz(addr), 200);
            served += 1;
            std::thread::sleep(Duration::from_millis(50));
        }
        (slow.join().unwrap(), served)
    })
    .await
    .unwrap();
    let (cut_after, served) = outcome;
    println!("slow client cut after {cut_after:?}; {served} other requests served meanwhile");
    assert!(cut_after < Duration::from_secs(4), "{cut_after:?}");
    assert!(served >= 10, "{served}");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_big_headers_and_the_connection_cap() {
    let (_fx, running) = start().await;
    let addr = running.addr();
    tokio::task::spawn_blocking(move || {
        // A connection that never sends anything is closed after the header timeout.
        let mut idle = TcpStream::connect(addr).unwrap();
        let t = Instant::now();
        assert!(closed_within(&mut idle, Duration::from_secs(4)));
        assert!(
            t.elapsed() < Duration::from_millis(3500),
            "{:?}",
            t.elapsed()
        );

        // An HTTP/2 connection (no header timeout there) that goes quiet after its preface is
        // closed by the idle timeout.
        let mut h2 = TcpStream::connect(addr).unwrap();
        h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            .unwrap();
        let t = Instant::now();
        assert!(
            closed_within(&mut h2, Duration::from_secs(6)),
            "idle HTTP/2 connection kept"
        );
        let quiet = t.elapsed();
        assert!(
            quiet >= Duration::from_millis(2500) && quiet < Duration::from_secs(5),
            "{quiet:?}"
        );

        // A 100 KB header is refused.
        let mut big = TcpStream::connect(addr).unwrap();
        big.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let req = format!(
            "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "a".repeat(100 * 1024)
        );
        let _ = big.write_all(req.as_bytes());
        let mut out = Vec::new();
        let _ = big.read_to_end(&mut out);
        let head = String::from_utf8_lossy(&out);
        assert!(
            head.is_empty() || head.starts_with("HTTP/1.1 431"),
            "a 100 KB header is not served: {head}"
        );

        // Connections beyond the cap are closed at once; the ones inside are kept.
        let mut held: Vec<TcpStream> = (0..8).map(|_| TcpStream::connect(addr).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(200));
        let mut extra = TcpStream::connect(addr).unwrap();
        assert!(
            closed_within(&mut extra, Duration::from_millis(800)),
            "the 9th connection is closed"
        );
        held[0]
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        held[0]
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        let _ = held[0].read_to_string(&mut out);
        assert!(
            out.starts_with("HTTP/1.1 200"),
            "a connection inside the cap is served: {out}"
        );
        drop(held);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(healthz(addr), 200, "slots are freed when connections close");
    })
    .await
    .unwrap();
    running.stop().await;
}
