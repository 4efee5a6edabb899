//! Running a target's `on_change` command.
//!
//! `sh -c COMMAND` (the operator's command from the config), in the config's directory,
//! through rotor's one child-process runner (`rotor-process`, as the `on_emergency` hooks
//! are): stdin closed, an environment cleared but for its allow-list (never the master key),
//! output read and dropped (the command may print secrets, so its output is never logged
//! nor put in an error), and its own process group, killed on timeout and once the command
//! exits, so nothing it started outlives it.

use std::path::Path;
use std::time::Duration;

/// Runs `command` for the target `path`. The error names the target and the exit status or
/// the timeout.
pub(crate) async fn run(
    path: &Path,
    command: &str,
    cwd: &Path,
    timeout: Duration,
) -> Result<(), String> {
    let target = path.display();
    let spec = rotor_process::Spec::hook(command, timeout).current_dir(cwd);
    match rotor_process::run(spec).await {
        Ok(done) if done.status.success() => Ok(()),
        Ok(done) => Err(format!(
            "render {target}: on_change command failed ({}); its output is not shown because it may contain secrets",
            done.status
        )),
        Err(rotor_process::ProcessError::Spawn { source, .. }) => Err(format!(
            "render {target}: cannot start on_change command (sh -c): {source}"
        )),
        Err(rotor_process::ProcessError::Wait { source, .. }) => Err(format!(
            "render {target}: cannot wait for on_change command: {source}"
        )),
        Err(rotor_process::ProcessError::TimedOut { .. }) => Err(format!(
            "render {target}: on_change command timed out after {} and was killed",
            humantime(timeout)
        )),
    }
}

fn humantime(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}
