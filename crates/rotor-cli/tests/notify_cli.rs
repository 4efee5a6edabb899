//! Issue 9.6: `rotor rotate`, `retire`, `put` and emergencies run from cron or a shell send
//! the `[[notify]]` webhooks the daemon sends, with a bounded wait that never fails the
//! command. A loopback HTTP receiver records the POSTs.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Env;

/// A webhook on loopback: records each POSTed JSON body and answers 200.
struct Receiver {
    port: u16,
    bodies: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let seen = bodies.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream);
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0u8; len];
                if reader.read_exact(&mut body).is_ok()
                    && let Ok(v) = serde_json::from_slice(&body)
                {
                    seen.lock().expect("lock").push(v);
                }
                let _ = reader.get_mut().write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            }
        });
        Receiver { port, bodies }
    }

    /// `(event, secret)` of every POST so far.
    fn events(&self) -> Vec<(String, String)> {
        self.bodies
            .lock()
            .expect("lock")
            .iter()
            .map(|b| {
                (
                    b["event"].as_str().unwrap_or("-").to_owned(),
                    b["secret"].as_str().unwrap_or("-").to_owned(),
                )
            })
            .collect()
    }
}

fn config(notify_url: &str) -> String {
    format!(
        r#"
[[notify]]
url = "{notify_url}"
format = "json"

[secrets.session]
kind = "random"
tier = "high"
grace = "0s"

[secrets.cache]
kind = "redis"
url = "redis://127.0.0.1:9"
user = "app"
rotate_every = "1d"
grace = "0s"

[secrets.vendor]
kind = "manual"
tier = "low"
"#
    )
}

#[test]
fn cli_commands_send_the_daemons_webhooks() {
    let rec = Receiver::start();
    let env = Env::new(&config(&format!("http://127.0.0.1:{}/hook", rec.port)));
    let cred = br#"{"username": "app", "password": "initial-password-0123456789"}"#;

    env.rotor(&["put", "session", "--generate"]).ok();
    assert_eq!(rec.events(), [("rotated".into(), "session".into())]);
    env.rotor_stdin(&["put", "cache"], Some(cred)).ok();
    env.rotor(&["rotate", "session"]).ok();
    // A rotation whose target is down fails: `failed`, and the exit status is the rotation's.
    let r = env.rotor(&["rotate", "cache"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    env.rotor(&["retire", "--due"]).ok();
    let r = env.rotor(&[
        "rotate",
        "--emergency",
        "session",
        "--reason",
        "leaked in a log",
    ]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);

    let events = rec.events();
    let want: Vec<(String, String)> = [
        ("rotated", "session"),
        ("rotated", "cache"),
        ("rotated", "session"),
        ("failed", "cache"),
        ("emergency", "session"),
    ]
    .iter()
    .map(|(e, s)| ((*e).to_owned(), (*s).to_owned()))
    .collect();
    assert_eq!(events, want, "{:#?}", rec.bodies.lock().expect("lock"));
    // Never a value in a notification.
    let all = serde_json::to_string(&*rec.bodies.lock().expect("lock")).expect("json");
    assert!(!all.contains("initial-password"), "{all}");
}

#[test]
fn a_dead_or_silent_webhook_never_fails_nor_holds_up_the_command() {
    // Refused: the command succeeds, and the failure is audited.
    let port = rotor_test_support::free_port().expect("port");
    let env = Env::new(&config(&format!("http://127.0.0.1:{port}/hook")));
    let r = env.rotor(&["rotate", "session"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let audit = env.rotor(&["audit", "tail", "-n", "50"]);
    assert!(audit.stdout.contains("notify.failed"), "{}", audit.stdout);

    // Accepts the connection and never answers: the wait is bounded.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!(
        "http://127.0.0.1:{}/hook",
        silent.local_addr().expect("addr").port()
    );
    let env = Env::new(&config(&url));
    let started = Instant::now();
    let r = env.rotor(&["rotate", "session"]);
    let took = started.elapsed();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("did not answer within"), "{}", r.stderr);
    assert!(took < Duration::from_secs(9), "the command waited {took:?}");
    drop(silent);
}
