//! Whether a directory rotor writes secret-bearing files into is safe to write into.
//!
//! Files rotor writes are 0600, but a directory that group or others may write lets another
//! user replace or remove them between writes (a rendered `.env` swapped for their own, a
//! report deleted). A sticky directory (`/tmp`, mode 1777) is accepted: there, only the
//! owner may rename over or remove a file. Used for `[[render]]` targets and
//! `[emergency] report_dir`, as the key file's mode is checked before it is read.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

/// `Err` with the reason and the fix when `dir` is writable by group or others (and not
/// sticky); `Ok` when it is private or does not exist yet (rotor creates it 0700).
pub fn check(dir: &Path) -> Result<(), String> {
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot read directory {}: {e}", dir.display())),
    };
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
            (true, true) => "group and others",
            (true, false) => "its group",
            _ => "others",
        };
        return Err(format!(
            "refusing directory {}: its mode is {mode:04o}, which lets {who} replace or remove the files rotor writes there; run `chmod go-w {}`",
            dir.display(),
            dir.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn group_or_other_writable_is_refused_unless_sticky() {
        let d = tempfile::tempdir().unwrap();
        let set = |m: u32| fs::set_permissions(d.path(), fs::Permissions::from_mode(m)).unwrap();
        for ok in [0o700, 0o755, 0o750, 0o1777, 0o1770] {
            set(ok);
            assert!(check(d.path()).is_ok(), "{ok:o}");
        }
        for bad in [0o777, 0o770, 0o702, 0o2775] {
            set(bad);
            let e = check(d.path()).unwrap_err();
            assert!(e.contains("chmod go-w"), "{e}");
        }
        set(0o700);
        assert!(check(&d.path().join("missing")).is_ok());
    }
}
