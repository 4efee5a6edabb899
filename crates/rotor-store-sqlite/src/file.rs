//! The store file itself, checked before SQLite opens it: a rotor store by its header, not
//! truncated, and its `-wal`/`-shm` sidecars kept at mode 0600.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rotor_core::StoreError;
use rusqlite::OpenFlags;

use crate::{APPLICATION_ID, show};

pub(crate) fn sidecars(path: &Path) -> [PathBuf; 2] {
    let with = |suffix: &str| {
        let mut s = path.as_os_str().to_owned();
        s.push(suffix);
        PathBuf::from(s)
    };
    [with("-wal"), with("-shm")]
}

/// SQLite creates `-wal`/`-shm` with the database file's mode (minus the umask), so they are
/// never wider than 0600; this makes it explicit and umask-independent.
pub(crate) fn restrict_sidecars(path: &Path) -> Result<(), StoreError> {
    for p in sidecars(path) {
        match fs::set_permissions(&p, fs::Permissions::from_mode(0o600)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(StoreError::Backend(format!(
                    "cannot restrict the permissions of {}: {e}",
                    show(&p)
                )));
            }
        }
    }
    Ok(())
}

/// Checks the file before SQLite opens it: exists, is a regular file, has a SQLite header
/// with rotor's application id, and is not shorter than the header says.
pub(crate) fn check_file(path: &Path) -> Result<(), StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt {
        path: show(path),
        detail,
    };
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(StoreError::NotInitialized { path: show(path) });
        }
        Err(e) => {
            return Err(StoreError::Backend(format!(
                "cannot read {}: {e}",
                show(path)
            )));
        }
    };
    if !meta.is_file() {
        return Err(corrupt("it is not a regular file".into()));
    }
    let len = meta.len();
    let mut header = [0u8; 100];
    let mut file = fs::File::open(path)
        .map_err(|e| StoreError::Backend(format!("cannot read {}: {e}", show(path))))?;
    let mut read = 0;
    while read < header.len() {
        match file.read(&mut header[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(StoreError::Backend(format!(
                    "cannot read {}: {e}",
                    show(path)
                )));
            }
        }
    }
    if read < header.len() {
        return Err(corrupt(format!(
            "the file is {len} bytes long, shorter than a SQLite header (truncated, or not a rotor store)"
        )));
    }
    if &header[..16] != b"SQLite format 3\0" {
        return Err(corrupt(
            "it does not start with a SQLite header (not a rotor store, or overwritten)".into(),
        ));
    }
    let be32 = |at: usize| {
        u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65_536u64,
        n if n >= 512 && n.is_power_of_two() => u64::from(n),
        n => return Err(corrupt(format!("the header has an invalid page size {n}"))),
    };
    // The size checks are only sound when the file is all there is: with a non-empty WAL
    // a concurrent checkpoint may have written the new header (page 1) before growing the
    // file. Then SQLite's own integrity check (in `validate`, under a read lock) decides.
    let wal_len = fs::metadata(&sidecars(path)[0]).map_or(0, |m| m.len());
    if wal_len > 0 {
        return check_app_id(path, be32(68));
    }
    if len % page_size != 0 {
        return Err(corrupt(format!(
            "the file is {len} bytes long, not a whole number of {page_size}-byte pages (truncated)"
        )));
    }
    let pages = u64::from(be32(28));
    if pages > 0 && be32(24) == be32(92) && len < pages * page_size {
        return Err(corrupt(format!(
            "the header says {pages} pages of {page_size} bytes but the file is {len} bytes long (truncated)"
        )));
    }
    check_app_id(path, be32(68))
}

pub(crate) fn check_app_id(path: &Path, app_id: u32) -> Result<(), StoreError> {
    if app_id as i32 == APPLICATION_ID {
        Ok(())
    } else {
        Err(StoreError::Corrupt {
            path: show(path),
            detail: format!(
                "it is a SQLite database but not a rotor store (application id {app_id:#x})"
            ),
        })
    }
}

pub(crate) fn open_flags() -> OpenFlags {
    // No CREATE: SQLite must never make the file; `create` does, with mode 0600.
    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX
}
