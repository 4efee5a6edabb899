//! [`GithubApi`]: a loopback server that follows GitHub's documented Actions secrets
//! endpoints (`fixtures/github_api.py`) and decrypts every value it is sent with PyNaCl
//! (libsodium's Python binding) using its own key pair, as GitHub does.
//!
//! GitHub itself cannot be reached from the tests; this is the stand-in for the HTTP
//! exchange. Special names trigger GitHub's documented failures (see the script): owner
//! `limited` (primary rate limit), owner `secondary` (secondary rate limit), repository
//! `missing` (404), any other token (401).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::{Error, Result, python};

/// The fixture server; killed on drop.
#[derive(Debug)]
pub struct GithubApi {
    child: Child,
    port: u16,
}

impl Drop for GithubApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl GithubApi {
    /// The fixture script.
    pub fn script() -> PathBuf {
        PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/github_api.py"
        ))
    }

    /// Starts the server; it accepts only `token`.
    pub fn start(token: &str) -> Result<GithubApi> {
        let mut child = Command::new(python()?)
            .arg(Self::script())
            .arg(token)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| Error::io("start the GitHub API fixture", e))?;
        let mut line = String::new();
        let stdout = child.stdout.take().ok_or_else(|| Error::Start {
            server: "github fixture",
            reason: "no stdout".into(),
            log_tail: String::new(),
        })?;
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| Error::io("read the GitHub fixture's port", e))?;
        let port = line.trim().parse().map_err(|_| Error::Start {
            server: "github fixture",
            reason: format!("it said {line:?} instead of its port (is PyNaCl installed? run scripts/install-deps)"),
            log_tail: String::new(),
        })?;
        Ok(GithubApi { child, port })
    }

    /// `http://127.0.0.1:PORT`, the `api_url` to use.
    pub fn api(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What the server holds: `{"stored": {"OWNER/REPO[/ENV]": {NAME: plaintext}},
    /// "counts": {"public_key": n, "put": n}, "problems": [missing documented headers]}`.
    pub fn state(&self) -> Result<serde_json::Value> {
        let io = |e| Error::io("query the GitHub fixture", e);
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).map_err(io)?;
        s.write_all(b"GET /_fixture HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .map_err(io)?;
        let mut answer = String::new();
        s.read_to_string(&mut answer).map_err(io)?;
        let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        serde_json::from_str(body).map_err(|e| Error::Command {
            command: "GET /_fixture".into(),
            detail: format!("not JSON ({e}): {answer}"),
        })
    }
}
