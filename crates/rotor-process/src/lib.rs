//! The one way rotor runs another program (plugins, hooks).
//!
//! Every child gets:
//! - an environment cleared of everything but a short allow-list (`PATH`, `HOME`, `LANG`, …)
//!   plus what the caller sets, so rotor's own variables (a master key, tokens) never leak
//!   into a program that did not ask for them;
//! - its own process group, so a timeout (or a dropped future) kills the program *and*
//!   everything it started with one `SIGKILL` to the group: no orphan keeps a pipe open or
//!   holds a lock after rotor gave up on it;
//! - bounded capture of stdout and stderr: past the limit the bytes are read and dropped, so
//!   a chatty child neither blocks on a full pipe nor grows rotor's memory;
//! - its input on stdin (a request that may hold secret values: they never go in argv or the
//!   environment, which other users can read in `/proc`). Input and stdout buffers are
//!   zeroized when dropped.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use zeroize::Zeroizing;

/// Variables a child inherits from rotor when they are set; everything else is cleared.
pub const INHERITED_ENV: &[&str] = &["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"];

/// Captured output beyond this many bytes per stream is dropped, unless the caller says.
pub const DEFAULT_OUTPUT_LIMIT: usize = 1 << 20;

/// What to run. Built with [`Spec::new`] and the setters.
pub struct Spec {
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    stdin: Option<Zeroizing<Vec<u8>>>,
    timeout: Duration,
    output_limit: usize,
    current_dir: Option<PathBuf>,
}

impl Spec {
    /// `program` with a timeout; no arguments, empty stdin.
    pub fn new(program: impl Into<PathBuf>, timeout: Duration) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
            timeout,
            output_limit: DEFAULT_OUTPUT_LIMIT,
            current_dir: None,
        }
    }

    /// Arguments: never secret (they are visible to every user through `/proc`).
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// A variable set for the child on top of [`INHERITED_ENV`]. Never a secret value.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Bytes written to the child's stdin, then stdin is closed.
    pub fn stdin(mut self, bytes: Zeroizing<Vec<u8>>) -> Self {
        self.stdin = Some(bytes);
        self
    }

    pub fn output_limit(mut self, bytes: usize) -> Self {
        self.output_limit = bytes;
        self
    }

    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.current_dir = Some(dir.into());
        self
    }

    pub fn program(&self) -> &std::path::Path {
        &self.program
    }

    /// `sh -c COMMAND`: an operator's hook from the config (`on_change`, `on_emergency`).
    /// Its output is read and dropped, none of it kept (a hook may print values, and its
    /// caller only reads the exit status), so a hook that prints without end neither
    /// blocks nor grows rotor's memory.
    pub fn hook(command: &str, timeout: Duration) -> Self {
        Self::new("sh", timeout)
            .args(["-c", command])
            .output_limit(0)
    }
}

impl fmt::Debug for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The input may hold values: only its size is shown.
        f.debug_struct("Spec")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field("stdin_bytes", &self.stdin.as_ref().map(|s| s.len()))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// One stream's capture.
pub struct Captured {
    /// At most the output limit; zeroized on drop (stdout of a plugin can carry a value).
    pub bytes: Zeroizing<Vec<u8>>,
    /// The child wrote more than the limit; the rest was dropped.
    pub truncated: bool,
}

impl fmt::Debug for Captured {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Captured(<{} bytes>{})",
            self.bytes.len(),
            if self.truncated { ", truncated" } else { "" }
        )
    }
}

/// A child that ran to its end.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Captured,
    pub stderr: Captured,
}

impl Finished {
    /// The exit code, or `None` when a signal ended the child.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} did not finish within {}s; it and every process it started were killed", after.as_secs_f64())]
    TimedOut {
        program: String,
        after: Duration,
        /// What it had written to stderr before it was killed.
        stderr: Vec<u8>,
    },
    #[error("waiting for {program} failed: {source}")]
    Wait {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

/// Kills the child's process group when dropped, unless disarmed: a cancelled future (a
/// shutdown, an outer timeout) never leaves the child and its descendants running.
struct GroupGuard {
    pgid: Option<rustix::process::Pid>,
}

impl GroupGuard {
    fn kill(&self) {
        if let Some(pgid) = self.pgid {
            // ESRCH (the group is already gone) is the normal case after a clean exit.
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `spec` to completion or timeout. A non-zero exit is not an error here: the caller
/// reads [`Finished::status`]; only a child that could not start, or did not end in time, is.
pub async fn run(spec: Spec) -> Result<Finished, ProcessError> {
    let program = spec.program.display().to_string();
    let mut cmd = tokio::process::Command::new(&spec.program);
    cmd.args(&spec.args)
        .env_clear()
        .stdin(if spec.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group (pgid = its pid), so one kill reaches its descendants too.
        .process_group(0)
        .kill_on_drop(true);
    for key in INHERITED_ENV {
        if let Some(v) = std::env::var_os(key) {
            cmd.env(key, v);
        }
    }
    for (k, v) in &spec.env {
        cmd.env(k, v);
    }
    if let Some(dir) = &spec.current_dir {
        cmd.current_dir(dir);
    }
    let mut child = cmd.spawn().map_err(|source| ProcessError::Spawn {
        program: program.clone(),
        source,
    })?;
    let guard = GroupGuard {
        pgid: child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(rustix::process::Pid::from_raw),
    };

    let writer = match (child.stdin.take(), spec.stdin) {
        (Some(mut pipe), Some(input)) => Some(tokio::spawn(async move {
            // A child that exits without reading its input closes the pipe: not our error.
            let _ = pipe.write_all(&input).await;
            let _ = pipe.shutdown().await;
        })),
        _ => None,
    };
    let limit = spec.output_limit;
    let out = child.stdout.take().map(|s| tokio::spawn(capture(s, limit)));
    let err = child.stderr.take().map(|s| tokio::spawn(capture(s, limit)));

    let status = match tokio::time::timeout(spec.timeout, child.wait()).await {
        Ok(Ok(status)) => status,
        Ok(Err(source)) => {
            guard.kill();
            return Err(ProcessError::Wait { program, source });
        }
        Err(_) => {
            guard.kill();
            let _ = child.wait().await;
            if let Some(w) = writer {
                w.abort();
            }
            if let Some(o) = out {
                o.abort();
            }
            let stderr = match err {
                Some(e) => collect(e).await.bytes.to_vec(),
                None => Vec::new(),
            };
            return Err(ProcessError::TimedOut {
                program,
                after: spec.timeout,
                stderr,
            });
        }
    };
    // The child is gone; anything it left behind in its group goes too, so no straggler
    // keeps the pipes open and the reads below end now.
    drop(guard);
    if let Some(w) = writer {
        let _ = w.await;
    }
    Ok(Finished {
        status,
        stdout: match out {
            Some(o) => collect(o).await,
            None => empty(),
        },
        stderr: match err {
            Some(e) => collect(e).await,
            None => empty(),
        },
    })
}

fn empty() -> Captured {
    Captured {
        bytes: Zeroizing::new(Vec::new()),
        truncated: false,
    }
}

/// How long the pipes may stay open after the group was killed: only a descendant that
/// left the group (`setsid`) can hold them, and rotor does not wait on it.
const DRAIN: Duration = Duration::from_secs(2);

async fn collect(mut task: tokio::task::JoinHandle<Captured>) -> Captured {
    match tokio::time::timeout(DRAIN, &mut task).await {
        Ok(Ok(c)) => c,
        Ok(Err(_)) => empty(),
        Err(_) => {
            task.abort();
            empty()
        }
    }
}

/// Reads a stream to its end, keeping at most `limit` bytes.
async fn capture(mut stream: impl AsyncRead + Unpin, limit: usize) -> Captured {
    let mut bytes = Zeroizing::new(Vec::new());
    let mut truncated = false;
    let mut buf = Zeroizing::new([0u8; 8192]);
    loop {
        match stream.read(&mut buf[..]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = limit.saturating_sub(bytes.len());
                if n > room {
                    truncated = true;
                }
                let take = n.min(room);
                if bytes.len() + take > bytes.capacity() {
                    // Grow by hand: a plain `extend` would leave the old allocation's copy
                    // of the bytes behind, unzeroized.
                    let mut bigger =
                        Vec::with_capacity((bytes.len() + take).max(bytes.capacity() * 2));
                    bigger.extend_from_slice(&bytes);
                    bytes = Zeroizing::new(bigger);
                }
                bytes.extend_from_slice(&buf[..take]);
            }
        }
    }
    Captured { bytes, truncated }
}
