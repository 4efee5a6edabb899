//! Running client commands with a bounded time, and reading server logs.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// Output of a finished command.
#[derive(Debug)]
pub(crate) struct Output {
    pub success: bool,
    pub status: String,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// `stdout` if the command succeeded, else an [`Error::Command`] with both streams.
    pub fn into_stdout(self, what: &str) -> Result<String> {
        if self.success {
            Ok(self.stdout)
        } else {
            Err(Error::Command {
                command: what.to_owned(),
                detail: format!(
                    "{}\nstdout: {}\nstderr: {}",
                    self.status,
                    self.stdout.trim_end(),
                    self.stderr.trim_end()
                ),
            })
        }
    }
}

/// Runs `cmd` to completion, feeding `stdin`, killing it after `timeout`.
/// `what` names the command in errors and must not contain secrets.
pub(crate) fn run(
    mut cmd: Command,
    stdin: Option<&str>,
    timeout: Duration,
    what: &str,
) -> Result<Output> {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::io(format!("starting {what}"), e))?;

    let stdin_thread = match (child.stdin.take(), stdin) {
        (Some(mut pipe), Some(input)) => {
            let input = input.to_owned();
            // A closed pipe (the command exited early) shows in its status and output.
            Some(std::thread::spawn(move || {
                let _ = pipe.write_all(input.as_bytes());
            }))
        }
        _ => None,
    };
    let stdout = child.stdout.take().map(reader_thread);
    let stderr = child.stderr.take().map(reader_thread);

    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::Timeout {
                    what: what.to_owned(),
                    after: timeout,
                });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(Error::io(format!("waiting for {what}"), e)),
        }
    };
    if let Some(t) = stdin_thread {
        let _ = t.join();
    }
    let join = |t: Option<std::thread::JoinHandle<String>>| {
        t.map(|t| t.join().unwrap_or_default()).unwrap_or_default()
    };
    Ok(Output {
        success: status.success(),
        status: status.to_string(),
        stdout: join(stdout),
        stderr: join(stderr),
    })
}

fn reader_thread(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// The last `lines` lines of a log file (or a note that it cannot be read).
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            let start = all.len().saturating_sub(lines);
            if all.is_empty() {
                format!("({} is empty)", path.display())
            } else {
                all[start..].join("\n")
            }
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// Whether this process runs as root (effective uid 0), read from `/proc/self/status`.
pub(crate) fn running_as_root() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .is_some_and(|euid| euid == "0")
}

/// uid and gid of a local user, from `/etc/passwd`.
pub(crate) fn user_ids(name: &str) -> Result<(u32, u32)> {
    let passwd =
        std::fs::read_to_string("/etc/passwd").map_err(|e| Error::io("reading /etc/passwd", e))?;
    passwd
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let user = f.next()?;
            let _pw = f.next()?;
            let uid = f.next()?.parse().ok()?;
            let gid = f.next()?.parse().ok()?;
            (user == name).then_some((uid, gid))
        })
        .next()
        .ok_or_else(|| {
            Error::MissingTool(format!(
                "no local user {name:?} (it comes with Debian's postgresql package): run scripts/install-deps"
            ))
        })
}

/// Finds `name` on `PATH`.
pub(crate) fn which(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

pub(crate) fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The repository root (this crate lives in `crates/rotor-test-support`).
pub(crate) fn repo_root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
