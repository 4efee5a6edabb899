//! Issue 11.8 (last paragraph): a store file others may read is refused like a 0640 key
//! file, and so are directories of rendered files and reports that others may write.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt as _;

use common::Env;

const CONFIG: &str = r#"
[emergency]
report_dir = "reports"

[secrets.session]
kind = "random"
tier = "high"
grace = "0s"

[[render]]
kind = "dotenv"
path = "shared/app.env"
[render.vars]
SECRET_KEY = "{{ session.current }}"
"#;

fn chmod(path: &std::path::Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

#[test]
fn loose_store_file_and_shared_directories_are_refused() {
    let env = Env::new(CONFIG);
    let db = env.path("rotor.db");
    assert_eq!(
        fs::metadata(&db).expect("store").permissions().mode() & 0o777,
        0o600
    );

    // The store file: refused with the fix, exit 5 (the store cannot be opened).
    chmod(&db, 0o644);
    let r = env.rotor(&["status"]);
    assert_eq!(r.code, 5, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("refusing store file") && r.stderr.contains("chmod 600"),
        "{}",
        r.stderr
    );
    chmod(&db, 0o600);
    env.rotor(&["status"]).ok();

    // A render directory others may write: the target is not written; the fix is named.
    let shared = env.path("shared");
    fs::create_dir(&shared).expect("mkdir");
    chmod(&shared, 0o777);
    env.rotor(&["rotate", "session"]).ok();
    assert!(!shared.join("app.env").exists());
    let r = env.rotor(&["render"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("refusing directory") && r.stderr.contains("chmod go-w"),
        "{}",
        r.stderr
    );
    assert!(!shared.join("app.env").exists());
    chmod(&shared, 0o700);
    env.rotor(&["render"]).ok();
    assert!(shared.join("app.env").exists());

    // A report directory others may write: refused before anything is rotated.
    let reports = env.path("reports");
    fs::create_dir(&reports).expect("mkdir");
    chmod(&reports, 0o777);
    let before = env.history("session")["rotations"]
        .as_array()
        .expect("rotations")
        .len();
    let r = env.rotor(&["drill"]);
    assert_ne!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("report_dir") && r.stderr.contains("chmod go-w"),
        "{}",
        r.stderr
    );
    let after = env.history("session")["rotations"]
        .as_array()
        .expect("rotations")
        .len();
    assert_eq!(before, after, "nothing was rotated");
    chmod(&reports, 0o700);
    env.rotor(&["drill"]).ok();
}
