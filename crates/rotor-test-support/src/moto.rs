//! moto's AWS emulator server (for AWS Secrets Manager).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::net::{free_port, loopback, says_address_in_use};
use crate::process::{is_executable, log_tail, repo_root};
use crate::{Error, Result};

const START_ATTEMPTS: usize = 5;
const START_TIMEOUT: Duration = Duration::from_secs(90);
const REGION: &str = "us-east-1";

/// The venv `scripts/install-deps` makes: `$ROTOR_VENV`, else the repository's `.venv`.
fn venv() -> PathBuf {
    std::env::var_os("ROTOR_VENV")
        .filter(|v| !v.is_empty())
        .map_or_else(|| repo_root().join(".venv"), PathBuf::from)
}

/// The Python interpreter of the test venv (with boto3, moto, pyjwt, requests):
/// `$ROTOR_PYTHON`, else `$ROTOR_VENV/bin/python`, else the repository's `.venv/bin/python`.
pub fn python() -> Result<PathBuf> {
    let path = std::env::var_os("ROTOR_PYTHON")
        .filter(|v| !v.is_empty())
        .map_or_else(|| venv().join("bin/python"), PathBuf::from);
    if is_executable(&path) {
        Ok(path)
    } else {
        Err(Error::MissingTool(format!(
            "the test venv's Python is not at {} (set ROTOR_PYTHON): run scripts/install-deps",
            path.display()
        )))
    }
}

/// How to run moto's server: `$ROTOR_MOTO_SERVER`, else `$ROTOR_PYTHON -m moto.server`,
/// else the venv's `moto_server`.
fn moto_command() -> Result<Command> {
    if let Some(server) = std::env::var_os("ROTOR_MOTO_SERVER").filter(|v| !v.is_empty()) {
        let server = PathBuf::from(server);
        if !is_executable(&server) {
            return Err(Error::MissingTool(format!(
                "ROTOR_MOTO_SERVER={} is not an executable: run scripts/install-deps",
                server.display()
            )));
        }
        return Ok(Command::new(server));
    }
    if std::env::var_os("ROTOR_PYTHON").is_some_and(|v| !v.is_empty()) {
        let mut cmd = Command::new(python()?);
        cmd.args(["-m", "moto.server"]);
        return Ok(cmd);
    }
    let server = venv().join("bin/moto_server");
    if is_executable(&server) {
        Ok(Command::new(server))
    } else {
        Err(Error::MissingTool(format!(
            "moto's server is not installed (no ROTOR_MOTO_SERVER, no ROTOR_PYTHON, no {}): run scripts/install-deps",
            server.display()
        )))
    }
}

/// A real moto server (AWS emulator, used for Secrets Manager) on a free port on
/// 127.0.0.1. Any credentials are accepted; see [`aws_env`](Self::aws_env).
///
/// Dropping it kills the server and removes its directory (which holds its log).
#[derive(Debug)]
pub struct Moto {
    dir: Option<TempDir>,
    child: Option<Child>,
    port: u16,
}

impl Moto {
    /// Starts the server and waits until `GET /moto-api/` answers 200 (a few seconds).
    pub fn start() -> Result<Moto> {
        // Check the command before making anything.
        moto_command()?;
        let dir = tempfile::Builder::new()
            .prefix("rotor-moto-")
            .tempdir()
            .map_err(|e| Error::io("creating a temporary directory", e))?;
        let mut moto = Moto {
            dir: Some(dir),
            child: None,
            port: 0,
        };
        let log = moto.log_path();
        let mut last_reason = String::new();
        for _ in 0..START_ATTEMPTS {
            moto.port = free_port()?;
            let log_before = std::fs::metadata(&log).map_or(0, |m| m.len());
            let out = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .map_err(|e| Error::io(format!("opening {}", log.display()), e))?;
            let err = out
                .try_clone()
                .map_err(|e| Error::io(format!("opening {}", log.display()), e))?;
            let mut cmd = moto_command()?;
            cmd.args(["-H", "127.0.0.1", "-p"])
                .arg(moto.port.to_string())
                .env("PYTHONUNBUFFERED", "1")
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err);
            let child = cmd
                .spawn()
                .map_err(|e| Error::io("starting moto's server", e))?;
            moto.child = Some(child);
            match moto.wait_ready() {
                Ok(()) => return Ok(moto),
                Err(reason) => {
                    last_reason = reason;
                    moto.kill();
                    let new_log = std::fs::read(&log)
                        .map(|b| {
                            String::from_utf8_lossy(&b[(log_before as usize).min(b.len())..])
                                .into_owned()
                        })
                        .unwrap_or_default();
                    if !says_address_in_use(&new_log) {
                        return Err(moto.start_error(last_reason));
                    }
                }
            }
        }
        Err(moto.start_error(format!(
            "{last_reason} (ports kept being taken, {START_ATTEMPTS} attempts)"
        )))
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!("moto's server exited early ({status})"));
            }
            if let Ok((200, _)) = http_request(self.addr(), "GET", "/moto-api/") {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "GET /moto-api/ did not answer 200 within {START_TIMEOUT:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn start_error(&self, reason: String) -> Error {
        Error::Start {
            server: "moto",
            reason,
            log_tail: log_tail(&self.log_path(), 40),
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `http://127.0.0.1:PORT`, for `endpoint_url` of an AWS SDK client.
    pub fn endpoint_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        loopback(self.port)
    }

    /// `"us-east-1"`.
    pub fn region(&self) -> &str {
        REGION
    }

    /// Environment for an AWS client (boto3, the AWS CLI or SDK) talking to this server:
    /// dummy static credentials `testing`/`testing`, the region, and `AWS_ENDPOINT_URL`.
    pub fn aws_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
            ("AWS_SESSION_TOKEN", "testing".to_owned()),
            ("AWS_DEFAULT_REGION", REGION.to_owned()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_ENDPOINT_URL", self.endpoint_url()),
        ]
    }

    /// Forgets every resource (`POST /moto-api/reset`).
    pub fn reset(&self) -> Result<()> {
        match http_request(self.addr(), "POST", "/moto-api/reset") {
            Ok((200, _)) => Ok(()),
            Ok((status, body)) => Err(Error::Command {
                command: "POST /moto-api/reset".to_owned(),
                detail: format!("HTTP {status}: {body}"),
            }),
            Err(e) => Err(Error::io("POST /moto-api/reset", e)),
        }
    }

    /// The server's log file (stdout and stderr).
    pub fn log_path(&self) -> PathBuf {
        self.dir
            .as_ref()
            .map_or(Path::new("/nonexistent"), |d| d.path())
            .join("moto.log")
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.kill();
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}

/// A minimal HTTP/1.0 request with an empty body; returns the status code and body.
fn http_request(addr: SocketAddr, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = String::from_utf8_lossy(&response);
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("not an HTTP response"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}
