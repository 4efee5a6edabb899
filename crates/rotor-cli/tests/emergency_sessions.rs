//! Issue 9.7: an emergency ends every session of every credential it kills — the current one
//! and the previous one still in grace (both login roles of an alternating PostgreSQL pair,
//! every session of the Redis user) — and the report counts the sessions that survived,
//! read back from the target (not only "a new login is refused").

mod common;

use std::io::Write as _;
use std::process::{Child, Command, Stdio};

use common::Env;
use rotor_test_support::{Postgres, Redis};

fn credential(user: &str, password: &str) -> Vec<u8> {
    serde_json::json!({ "username": user, "password": password })
        .to_string()
        .into_bytes()
}

fn psql_bin() -> std::path::PathBuf {
    let bin = std::env::var_os("ROTOR_PG_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/usr/lib/postgresql/15/bin".into());
    let p = bin.join("psql");
    if p.exists() { p } else { "psql".into() }
}

/// A real `psql` session logged in as `user`, kept open (its stdin stays open) until killed.
fn hold_psql(pg: &Postgres, user: &str, password: &str) -> Child {
    let mut child = Command::new(psql_bin())
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-p",
        ])
        .arg(pg.port().to_string())
        .args(["-U", user, "-d", "app", "-f", "-"])
        .env("PGPASSWORD", password)
        .env("PGSSLMODE", "disable")
        .env("PGAPPNAME", "leaked-session")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start psql");
    child
        .stdin
        .as_mut()
        .expect("stdin")
        .write_all(b"SELECT 1;\n")
        .expect("write to psql");
    child
}

fn sessions_of(pg: &Postgres, users: &str) -> u64 {
    pg.psql(&format!(
        "SELECT count(*) FROM pg_stat_activity WHERE usename IN ({users})"
    ))
    .expect("count sessions")
    .parse()
    .expect("a number")
}

fn wait_for_sessions(pg: &Postgres, users: &str, n: u64) {
    for _ in 0..100 {
        if sessions_of(pg, users) >= n {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("the psql sessions never showed up in pg_stat_activity");
}

fn report_of(run: &common::Run) -> serde_json::Value {
    let report = run.json();
    assert_eq!(report["kind"], "emergency", "{report}");
    report
}

#[test]
fn emergency_ends_sessions_of_current_and_in_grace_previous() {
    let pg = Postgres::start().expect("start PostgreSQL");
    pg.create_db("app").expect("db");
    let redis = Redis::start().expect("start Redis");
    redis
        .cli(&[
            "ACL",
            "SETUSER",
            "app",
            "on",
            ">initial-app-password-0123456789",
            "~*",
            "+@all",
        ])
        .expect("create redis user");
    let config = format!(
        r#"
[secrets.database]
kind = "postgres"
strategy = "alternating"
url = "postgres://127.0.0.1:{pg}/app"
role = "app_user"
admin = "pg-admin"
rotate_every = "1d"
grace = "1h"

[secrets.pg-admin]
kind = "postgres"
url = "postgres://127.0.0.1:{pg}/postgres"
role = "postgres"
rotate_every = "30d"
automation = "manual"

[secrets.cache]
kind = "redis"
url = "redis://127.0.0.1:{rd}"
user = "app"
admin = "redis-admin"
rotate_every = "1d"
grace = "1h"

[secrets.redis-admin]
kind = "redis"
url = "redis://127.0.0.1:{rd}"
user = "{ru}"
rotate_every = "30d"
automation = "manual"
"#,
        pg = pg.port(),
        rd = redis.port(),
        ru = redis.admin_user()
    );
    let env = Env::new(&config);
    env.rotor_stdin(
        &["put", "pg-admin"],
        Some(&credential("postgres", pg.admin_password())),
    )
    .ok();
    env.rotor_stdin(
        &["put", "redis-admin"],
        Some(&credential(redis.admin_user(), redis.admin_password())),
    )
    .ok();
    env.rotor_stdin(
        &["put", "cache"],
        Some(&credential("app", "initial-app-password-0123456789")),
    )
    .ok();
    env.rotor(&["setup", "database"]).ok();

    // Rotated twice: the second rotation leaves the first one's login role in grace.
    env.rotor(&["rotate", "database"]).ok();
    env.rotor(&["rotate", "database", "cache"]).ok();
    let cur: serde_json::Value =
        serde_json::from_str(&env.reveal("database", "current")).expect("json");
    let prev: serde_json::Value =
        serde_json::from_str(&env.reveal("database", "previous")).expect("json");
    assert_ne!(cur["username"], prev["username"], "an alternating pair");

    // Sessions held with the previous (in grace, the leaked one) and the current credential.
    let mut held = vec![
        hold_psql(
            &pg,
            prev["username"].as_str().expect("user"),
            prev["password"].as_str().expect("password"),
        ),
        hold_psql(
            &pg,
            cur["username"].as_str().expect("user"),
            cur["password"].as_str().expect("password"),
        ),
    ];
    let pair = "'app_user_a', 'app_user_b'";
    wait_for_sessions(&pg, pair, 2);

    // Redis: one session with the in-grace previous password, one with the current.
    let redis_cur: serde_json::Value =
        serde_json::from_str(&env.reveal("cache", "current")).expect("json");
    let mut redis_held = Vec::new();
    for pw in [
        "initial-app-password-0123456789",
        redis_cur["password"].as_str().expect("password"),
    ] {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", redis.port())).expect("connect");
        c.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .expect("timeout");
        write!(c, "AUTH app {pw}\r\n").expect("auth");
        let mut buf = [0u8; 64];
        let n = std::io::Read::read(&mut c, &mut buf).expect("auth reply");
        assert!(buf[..n].starts_with(b"+OK"), "AUTH as app");
        redis_held.push(c);
    }
    let redis_sessions = || {
        redis
            .cli(&["CLIENT", "LIST"])
            .expect("CLIENT LIST")
            .lines()
            .filter(|l| l.split(' ').any(|f| f == "user=app"))
            .count()
    };
    assert_eq!(redis_sessions(), 2);

    let run = env.rotor(&[
        "--format",
        "json",
        "rotate",
        "--emergency",
        "database",
        "--reason",
        "password leaked in a log",
    ]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let report = report_of(&run);
    let db = &report["secrets"][0];
    assert_eq!(db["secret"], "database", "{report}");
    assert_eq!(
        sessions_of(&pg, pair),
        0,
        "sessions of the pair survived the emergency"
    );
    assert_eq!(db["sessions"]["surviving"], 0, "{report}");
    assert!(
        db["sessions"]["ended"].as_u64().expect("ended") >= 2,
        "{report}"
    );
    // The held psql clients find their connection gone at their next statement.
    for mut c in held.drain(..) {
        if let Some(mut stdin) = c.stdin.take() {
            let _ = stdin.write_all(b"SELECT 1;\n");
        }
        let status = c.wait().expect("psql ends");
        assert!(!status.success(), "psql's connection was terminated");
    }

    let run = env.rotor(&[
        "--format",
        "json",
        "rotate",
        "--emergency",
        "cache",
        "--reason",
        "password leaked in a log",
    ]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let report = report_of(&run);
    let rd = &report["secrets"][0];
    assert_eq!(redis_sessions(), 0, "Redis sessions survived the emergency");
    assert_eq!(rd["sessions"]["surviving"], 0, "{report}");
    assert!(
        rd["sessions"]["ended"].as_u64().expect("ended") >= 2,
        "{report}"
    );
    env.audit_verifies();
}
