//! Running a target's `on_change` command.
//!
//! `sh -c COMMAND` (the operator's command from the config), in the config's directory, with
//! stdin closed and stdout/stderr captured and discarded: the command may print secrets, so
//! its output is never logged nor put in an error. It runs in its own process group so a
//! timeout kills everything it started, not just the shell.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

/// How long to keep draining output after the command exited (a background process it
/// started may hold the pipes open; it is not waited for).
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(200);

/// Runs `command` for the target `path`. The error names the target and the exit status or
/// the timeout.
pub(crate) async fn run(
    path: &Path,
    command: &str,
    cwd: &Path,
    timeout: Duration,
) -> Result<(), String> {
    let target = path.display();
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("render {target}: cannot start on_change command (sh -c): {e}"))?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let pid = child.id();

    let waited = tokio::time::timeout(timeout, async {
        let drain = async { tokio::join!(discard(stdout), discard(stderr)) };
        tokio::pin!(drain);
        tokio::select! {
            status = child.wait() => {
                // Output still buffered in the pipes is read briefly, then left.
                let _ = tokio::time::timeout(DRAIN_AFTER_EXIT, drain).await;
                status
            }
            _ = &mut drain => child.wait().await,
        }
    })
    .await;

    match waited {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!(
            "render {target}: on_change command failed ({status}); its output is not shown because it may contain secrets"
        )),
        Ok(Err(e)) => Err(format!(
            "render {target}: cannot wait for on_change command: {e}"
        )),
        Err(_) => {
            kill_group(pid).await;
            let _ = child.kill().await;
            Err(format!(
                "render {target}: on_change command timed out after {} and was killed",
                humantime(timeout)
            ))
        }
    }
}

/// Reads a pipe to its end, keeping nothing.
async fn discard<R: AsyncRead + Unpin>(pipe: Option<R>) -> u64 {
    let Some(mut pipe) = pipe else { return 0 };
    let mut buf = zeroize::Zeroizing::new([0u8; 4096]);
    let mut total = 0u64;
    loop {
        match pipe.read(&mut buf[..]).await {
            Ok(0) | Err(_) => return total,
            Ok(n) => total = total.saturating_add(n as u64),
        }
    }
}

/// SIGKILL to the command's whole process group (the shell and whatever it started).
/// `kill(1)` rather than a libc call: this crate has no unsafe code.
async fn kill_group(pid: Option<u32>) {
    let Some(pid) = pid else { return };
    let result = tokio::process::Command::new("kill")
        .args(["-s", "KILL", "--", &format!("-{pid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "cannot run kill(1) for the on_change process group; killing the shell only");
    }
}

fn humantime(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}
