//! Atomic, 0600, write-only-on-change file replacement.
//!
//! The new content goes to a temporary file beside the target (same directory, so the
//! rename is atomic on one filesystem), created with `O_EXCL` and mode 0600, written and
//! fsynced, then renamed over the target; the directory is fsynced so the rename survives a
//! crash. Any failure before the rename removes the temporary file. A target whose bytes
//! are already the new content is left alone (same inode, same mtime); only its mode is
//! tightened to 0600 if it was looser. Temporary files left by a process that crashed
//! mid-write (their pid is gone) are removed at the next write of the same target.
//!
//! The one atomic file write of rotor-daemon too ([`write_atomic`]: emergency and drill
//! reports), so every file rotor writes for people or programs to read is replaced the
//! same way.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use zeroize::Zeroizing;

use crate::DeliverError;

/// Distinguishes temporary files of concurrent writes within this process.
static SEQ: AtomicU64 = AtomicU64::new(0);

/// Writes `content` to `path` unless it already holds exactly these bytes. Returns whether
/// the file was written. Runs on the blocking pool.
pub(crate) async fn write_if_changed(
    path: &Path,
    content: Zeroizing<Vec<u8>>,
) -> Result<bool, DeliverError> {
    let owned = path.to_path_buf();
    tokio::task::spawn_blocking(move || write_atomic(&owned, &content))
        .await
        .map_err(|e| DeliverError::Io {
            path: path.to_path_buf(),
            op: "finish the write task",
            source: io::Error::other(e.to_string()),
        })?
}

/// Whether `path` already holds exactly `content` (a missing file holds nothing).
pub(crate) async fn holds(path: &Path, content: &[u8]) -> Result<bool, DeliverError> {
    match tokio::fs::read(path).await {
        Ok(existing) => Ok(Zeroizing::new(existing).as_slice() == content),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(DeliverError::Io {
            path: path.to_path_buf(),
            op: "read the existing file",
            source,
        }),
    }
}

/// Writes `content` to `path` unless it already holds exactly these bytes: 0600, through a
/// temporary file beside it (`O_EXCL`, fsynced), renamed over it, the directory fsynced.
/// Returns whether the file was written. Blocking: async callers use `write_if_changed`.
pub fn write_atomic(path: &Path, content: &[u8]) -> Result<bool, DeliverError> {
    let io_err = |op: &'static str| {
        let path = path.to_path_buf();
        move |source| DeliverError::Io { path, op, source }
    };
    match fs::read(path) {
        Ok(existing) => {
            let existing = Zeroizing::new(existing);
            if existing.as_slice() == content {
                let mode = fs::metadata(path)
                    .map_err(io_err("read the existing file's mode"))?
                    .permissions()
                    .mode();
                if mode & 0o7777 != 0o600 {
                    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
                        .map_err(io_err("set mode 0600 on the existing file"))?;
                }
                return Ok(false);
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("read the existing file")(e)),
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| DeliverError::Io {
        path: path.to_path_buf(),
        op: "write it",
        source: io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"),
    })?;
    let prefix = format!(".{}.rotor-", name.to_string_lossy());
    remove_stale_temporaries(&dir, &prefix);
    let tmp = dir.join(format!(
        "{prefix}{}-{}.tmp",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err("create a temporary file beside it"))?;
    if let Err(e) = fill_and_rename(file, &tmp, path, content) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    // The rename is done: the new content is in place. A failed directory fsync only means
    // the rename might not survive a power loss; report it without undoing anything.
    if let Err(e) = File::open(&dir).and_then(|d| d.sync_all()) {
        tracing::warn!(path = %path.display(), error = %e, "cannot fsync the directory after rename");
    }
    Ok(true)
}

/// Removes `{prefix}{pid}-{n}.tmp` files of processes that no longer run (a crash between
/// create and rename). Best effort: a failure here never stops the write.
fn remove_stale_temporaries(dir: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|r| r.strip_suffix(".tmp"))
        else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn fill_and_rename(
    mut file: File,
    tmp: &Path,
    path: &Path,
    content: &[u8],
) -> Result<(), DeliverError> {
    let io_err = |op: &'static str| {
        let path = path.to_path_buf();
        move |source| DeliverError::Io { path, op, source }
    };
    // The umask can only clear bits; make the mode exactly 0600 whatever it is.
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(io_err("set mode 0600 on the temporary file"))?;
    file.write_all(content)
        .map_err(io_err("write the temporary file"))?;
    file.sync_all()
        .map_err(io_err("fsync the temporary file"))?;
    drop(file);
    #[cfg(test)]
    if tests::FAIL_RENAME.with(std::cell::Cell::get) {
        return Err(io_err("rename the temporary file over it")(
            io::Error::other("injected failure"),
        ));
    }
    fs::rename(tmp, path).map_err(io_err("rename the temporary file over it"))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    thread_local! {
        /// Makes the rename fail on this thread (after the temporary file was written).
        pub(super) static FAIL_RENAME: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".rotor-"))
            .collect()
    }

    #[test]
    fn writes_0600_and_skips_identical_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.env");
        assert!(write_atomic(&path, b"one").unwrap());
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o600);
        assert!(!write_atomic(&path, b"one").unwrap());
        let again = fs::metadata(&path).unwrap();
        assert_eq!(
            (meta.ino(), meta.mtime_nsec()),
            (again.ino(), again.mtime_nsec())
        );
        // A looser mode is tightened without a rewrite.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(!write_atomic(&path, b"one").unwrap());
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o7777, 0o600);
        assert!(write_atomic(&path, b"two").unwrap());
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_ne!(fs::metadata(&path).unwrap().ino(), meta.ino());
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn failure_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("target");
        fs::write(&path, b"old").unwrap();
        FAIL_RENAME.with(|f| f.set(true));
        let err = write_atomic(&path, b"secret-bytes").unwrap_err();
        FAIL_RENAME.with(|f| f.set(false));
        let msg = err.to_string();
        assert!(msg.contains("target") && msg.contains("rename"), "{msg}");
        assert!(!msg.contains("secret-bytes"), "{msg}");
        assert!(leftovers(dir.path()).is_empty());
        assert_eq!(fs::read(&path).unwrap(), b"old");
        // A target that cannot be read (a directory) fails before any temporary file.
        let sub = dir.path().join("sub");
        fs::create_dir(&sub).unwrap();
        assert!(write_atomic(&sub, b"x").is_err());
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn temporaries_of_crashed_writers_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.env");
        // A pid above the kernel's maximum (4194304) never runs.
        let stale = dir.path().join(".app.env.rotor-4999999-0.tmp");
        let other_target = dir.path().join(".other.env.rotor-4999999-0.tmp");
        fs::write(&stale, b"half").unwrap();
        fs::write(&other_target, b"half").unwrap();
        assert!(write_atomic(&path, b"new").unwrap());
        assert!(!stale.exists());
        assert!(
            other_target.exists(),
            "only this target's temporaries are touched"
        );
    }
}
