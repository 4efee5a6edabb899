//! The `rotor` binary end to end: init, check, status, put, get, rotate, history, audit,
//! exit codes and error messages.

mod common;

use common::{CONFIG, Env};

#[test]
fn init_creates_0600_files_and_never_overwrites() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::uninit(CONFIG);
    let r = env.rotor(&["init"]).ok();
    assert!(r.stdout.contains("created store"), "{}", r.stdout);
    assert!(
        r.stdout.contains("keep the master key safe"),
        "{}",
        r.stdout
    );
    for f in ["rotor.db", "rotor.key"] {
        let mode = std::fs::metadata(env.path(f))
            .expect(f)
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    let key_before = std::fs::read(env.path("rotor.key")).expect("key");
    let again = env.rotor(&["init"]);
    assert_eq!(again.code, 1, "{}", again.stderr);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    assert_eq!(
        std::fs::read(env.path("rotor.key")).expect("key"),
        key_before
    );
}

#[test]
fn check_reports_every_error_and_exits_2() {
    let env = Env::uninit(
        "[secrets.a]\nkind = \"randm\"\ntier = \"high\"\n[secrets.b]\nkind = \"random\"\nrotate_every = \"90 days\"\n",
    );
    let r = env.rotor(&["check"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("rotor.toml:2:8: secret \"a\": unknown kind `randm`"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("did you mean `random`?"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("secret \"b\": `rotate_every`: bad duration \"90 days\""),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("2 errors in the config"), "{}", r.stderr);
    let json = env.rotor(&["--format", "json", "check"]);
    assert_eq!(json.code, 2);
    assert_eq!(json.json()["errors"].as_array().map(Vec::len), Some(2));
    let ok = Env::uninit(CONFIG).rotor(&["check"]).ok();
    assert!(ok.stdout.contains("ok, 5 secrets"));
}

#[test]
fn status_states_and_fail_on_overdue() {
    let env = Env::new(CONFIG);
    let rows = env.rotor(&["--format", "json", "status"]).ok().json();
    assert!(
        rows.as_array()
            .expect("rows")
            .iter()
            .all(|r| r["state"] == "overdue" && r["never_rotated"] == true)
    );
    // A secret of unknown age is overdue (issue 10 item 1).
    assert_eq!(env.rotor(&["status", "--fail-on-overdue"]).code, 3);
    env.rotor(&["rotate", "session"]).ok();
    let rows = env.rotor(&["--format", "json", "status"]).ok().json();
    let session = rows
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["name"] == "session")
        .expect("session");
    assert_eq!(session["state"], "ok");
    assert!(session["next_due"].is_string());

    // A config whose period is 1s makes the secret overdue a second later.
    let fast = Env::new("[secrets.s]\nkind = \"random\"\nrotate_every = \"1s\"\ngrace = \"0s\"\n");
    fast.rotor(&["rotate", "s"]).ok();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let r = fast.rotor(&["status", "--fail-on-overdue"]);
    assert_eq!(r.code, 3, "{} {}", r.stdout, r.stderr);
    assert!(r.stdout.contains("overdue"));
}

#[test]
fn put_get_history_and_stage_moves() {
    let env = Env::new(CONFIG);
    env.rotor_stdin(
        &["put", "sendgrid", "--reason", "vendor rotated"],
        Some(b"SG.first\n"),
    )
    .ok();
    env.rotor_stdin(&["put", "sendgrid"], Some(b"SG.second"))
        .ok();
    assert_eq!(env.reveal("sendgrid", "current"), "SG.second");
    assert_eq!(env.reveal("sendgrid", "previous"), "SG.first");
    let meta = env.rotor(&["get", "sendgrid"]).ok();
    assert!(
        !meta.stdout.contains("SG.second"),
        "metadata only without --reveal"
    );
    let none = env.rotor(&["get", "sendgrid", "--stage", "pending"]);
    assert_eq!(none.code, 1);
    assert!(none.stderr.contains("no version holds stage pending"));
    assert_eq!(
        env.rotor_stdin(&["put", "sendgrid"], Some(b"")).code,
        1,
        "empty values are refused"
    );
    let h = env.history("sendgrid");
    assert_eq!(h["versions"].as_array().map(Vec::len), Some(2));
    assert_eq!(h["rotations"][1]["reason"], "vendor rotated");
    assert_eq!(h["rotations"][0]["trigger"], "put");
    // --generate only for random kinds
    let g = env.rotor(&["put", "sendgrid", "--generate"]);
    assert!(
        g.stderr
            .contains("--generate only works for random secrets"),
        "{}",
        g.stderr
    );
    env.rotor(&["put", "quick", "--generate"]).ok();
    assert_eq!(env.reveal("quick", "current").len(), 32);
    env.audit_verifies();
}

#[test]
fn rotate_rules_and_exit_codes() {
    let env = Env::new(CONFIG);
    let manual = env.rotor(&["rotate", "sendgrid"]);
    assert_eq!(manual.code, 2, "a usage error");
    assert!(
        manual.stderr.contains("rotor put sendgrid"),
        "{}",
        manual.stderr
    );
    let pepper = env.rotor(&["rotate", "pepper"]);
    assert_eq!(pepper.code, 2);
    assert!(
        pepper.stderr.contains("pass --confirm"),
        "{}",
        pepper.stderr
    );
    env.rotor(&["rotate", "pepper", "--confirm", "--reason", "planned"])
        .ok();
    let unknown = env.rotor(&["rotate", "sesion"]);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("did you mean \"session\"?"),
        "{}",
        unknown.stderr
    );

    env.rotor(&["rotate", "session"]).ok();
    let first = env.reveal("session", "current");
    env.rotor(&["rotate", "session"]).ok(); // the first had no previous: grace does not apply
    assert_eq!(env.reveal("session", "previous"), first);
    let again = env.rotor(&["rotate", "session"]);
    assert_eq!(again.code, 1);
    assert!(
        again.stderr.contains("grace period until"),
        "{}",
        again.stderr
    );
    // An emergency rotation does not wait for grace and retires at once.
    env.rotor(&[
        "rotate",
        "session",
        "--emergency",
        "--reason",
        "leaked in logs",
    ])
    .ok();
    assert!(env.holders("session", "previous").is_empty());
    assert_eq!(env.holders("session", "current").len(), 1);

    let dry = env.rotor(&["rotate", "jwt", "--dry-run"]).ok();
    assert!(dry.stdout.contains("dry run"), "{}", dry.stdout);
    assert!(dry.stdout.contains("sign and verify"), "{}", dry.stdout);
    assert!(
        env.holders("jwt", "current").is_empty(),
        "dry run touched nothing"
    );

    let due = env.rotor(&["rotate", "--due"]).ok();
    assert!(due.stdout.contains("jwt: rotated"), "{}", due.stdout);
    assert!(due.stdout.contains("quick: rotated"), "{}", due.stdout);
    assert!(
        !due.stdout.contains("pepper"),
        "manual secrets are not rotated by --due"
    );
    env.audit_verifies();
}

#[test]
fn plan_lists_what_comes_due() {
    let env = Env::new(CONFIG);
    env.rotor(&["rotate", "session", "quick"]).ok();
    let plan = env
        .rotor(&["--format", "json", "plan", "--days", "2"])
        .ok()
        .json();
    let names: Vec<&str> = plan
        .as_array()
        .expect("plan")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert!(names.contains(&"quick"), "{names:?}");
    assert!(!names.contains(&"session"), "{names:?}");
    assert!(
        names.contains(&"jwt"),
        "never rotated is due now: {names:?}"
    );
}

#[test]
fn abort_rolls_back_and_resume_reports_nothing() {
    let env = Env::new(CONFIG);
    let r = env.rotor(&["abort", "session"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("nothing to abort"), "{}", r.stderr);
    let r = env.rotor(&["resume"]).ok();
    assert!(r.stdout.contains("no interrupted rotations"));
}

#[test]
fn audit_tail_and_tamper_detection() {
    let env = Env::new(CONFIG);
    env.rotor(&["rotate", "session", "--reason", "quarterly"])
        .ok();
    let tail = env
        .rotor(&["--format", "json", "audit", "tail", "-n", "3"])
        .ok()
        .json();
    assert_eq!(tail.as_array().map(Vec::len), Some(3));
    env.audit_verifies();
    // Edit a record behind rotor's back.
    let db = env.path("rotor.db");
    let conn = rusqlite_edit(&db);
    assert!(conn, "edited a record");
    let r = env.rotor(&["audit", "verify"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("audit record #2"), "{}", r.stderr);
}

/// Rewrites the reason of audit record 2 behind rotor's back (python's sqlite3 module).
fn rusqlite_edit(db: &std::path::Path) -> bool {
    let py = "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(\"update audit set reason='monthly' where seq=2\"); c.commit(); print(c.total_changes)";
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(py)
        .arg(db)
        .output()
        .expect("python3");
    String::from_utf8_lossy(&out.stdout).trim() == "1"
}

#[test]
fn store_errors_are_clear() {
    let env = Env::uninit(CONFIG);
    let r = env.rotor(&["status"]);
    assert_eq!(r.code, 5);
    assert!(r.stderr.contains("run `rotor init` first"), "{}", r.stderr);

    let env = Env::new(CONFIG);
    std::fs::remove_file(env.path("rotor.key")).expect("rm key");
    let r = env.rotor(&["status"]);
    assert_eq!(r.code, 5);
    assert!(r.stderr.contains("ROTOR_MASTER_KEY"), "{}", r.stderr);

    let env = Env::new(CONFIG);
    let other = rotor_seal::MasterKey::generate().expect("key");
    use secrecy::ExposeSecret;
    let r = {
        let mut c = env.command(&["status"]);
        c.env("ROTOR_MASTER_KEY", other.encode().expose_secret());
        common::run_of(c.output().expect("run"))
    };
    assert_eq!(r.code, 5);
    assert!(
        r.stderr.contains("master key does not open this store"),
        "{}",
        r.stderr
    );

    let env = Env::new(CONFIG);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        env.path("rotor.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    let r = env.rotor(&["status"]);
    assert_eq!(r.code, 5);
    assert!(r.stderr.contains("chmod 600"), "{}", r.stderr);

    let env = Env::new(CONFIG);
    let db = env.path("rotor.db");
    let len = std::fs::metadata(&db).expect("db").len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&db)
        .expect("open");
    f.set_len(len / 3).expect("truncate");
    let r = env.rotor(&["status"]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(r.stderr.contains("corrupt"), "{}", r.stderr);
    assert!(
        std::fs::metadata(&db).expect("still there").len() == len / 3,
        "not recreated"
    );
}

#[test]
fn every_reveal_is_on_the_audit_record() {
    let env = Env::new(CONFIG);
    env.rotor_stdin(&["put", "sendgrid"], Some(b"SG.audited"))
        .ok();
    env.rotor(&["rotate", "jwt"]).ok();
    let reads = |env: &Env| -> Vec<serde_json::Value> {
        env.rotor(&["--format", "json", "audit", "tail", "-n", "100"])
            .ok()
            .json()
            .as_array()
            .expect("records")
            .iter()
            .filter(|r| r["action"] == "secret.read")
            .cloned()
            .collect()
    };
    assert!(reads(&env).is_empty(), "put and rotate are not reads");
    env.rotor(&["get", "sendgrid"]).ok();
    assert!(
        reads(&env).is_empty(),
        "metadata is not a read of the value"
    );
    assert_eq!(env.reveal("sendgrid", "current"), "SG.audited");
    env.rotor(&["keyring", "jwt", "--reveal"]).ok();
    let got = reads(&env);
    assert_eq!(got.len(), 2, "{got:#?}");
    let version = env.holders("sendgrid", "current").remove(0);
    let by_secret = |s: &str| got.iter().find(|r| r["secret"] == s).expect(s).clone();
    let sg = by_secret("sendgrid");
    assert!(
        sg["actor"]
            .as_str()
            .is_some_and(|a| a.starts_with("tester")),
        "{sg}"
    );
    assert_eq!(sg["versions"][0], version.as_str());
    assert_eq!(sg["reason"], "stage=current channel=cli count=1");
    let jwt = by_secret("jwt");
    assert_eq!(jwt["reason"], "stage=current channel=cli count=1");
    assert!(
        !serde_json::Value::Array(got)
            .to_string()
            .contains("SG.audited")
    );
    env.audit_verifies();
}
