//! What each target was last written from: a state file beside it.
//!
//! `.{name}.rotor-state` (0600, written atomically like the target) records the stage set
//! the target's content came from (`secret.stage` → version id, or none) and whether its
//! `on_change` is still owed. It holds ids only, never a value.
//!
//! Why beside the target and not in the store: the store is shared by every host (a
//! PostgreSQL store, replicas), but rendered files are local; each host knows what its own
//! files hold. Why "owed": the marker is written *before* the target is replaced and cleared
//! only after `on_change` succeeded, so a crash (or a failed command) between the two is
//! repaired by the next render, which runs `on_change` again even though the bytes already
//! match. A target with no state file (written by an older rotor) is compared by content
//! only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::DeliverError;

/// A target's delivery state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct State {
    /// `secret.stage` → the version the content was rendered from (`None`: the stage held
    /// no version).
    pub(crate) from: BTreeMap<String, Option<String>>,
    /// The content is (or is about to be) in place but `on_change` has not succeeded yet.
    pub(crate) on_change_owed: bool,
}

/// Where the state of `target` lives.
pub(crate) fn path_of(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{name}.rotor-state"))
}

/// The recorded state; `None` when there is none or it cannot be read (then the target is
/// judged by its content alone, and the state is rewritten after this render).
pub(crate) async fn read(target: &Path) -> Option<State> {
    let path = path_of(target);
    let bytes = match tokio::fs::read(&path).await {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the render state; judging the target by its content");
            return None;
        }
    };
    match serde_json::from_slice(&bytes) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "unreadable render state; judging the target by its content");
            None
        }
    }
}

/// Records `state` (atomically, 0600).
pub(crate) async fn write(target: &Path, state: &State) -> Result<(), DeliverError> {
    let path = path_of(target);
    let bytes = serde_json::to_vec(state).map_err(|e| DeliverError::Io {
        path: path.clone(),
        op: "encode the render state",
        source: std::io::Error::other(e.to_string()),
    })?;
    crate::write::write_if_changed(&path, Zeroizing::new(bytes)).await?;
    Ok(())
}
