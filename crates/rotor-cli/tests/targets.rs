//! PostgreSQL (alternating) and Redis through the binary, against real servers: put the admin
//! credentials, set up the roles, rotate, read the credential, retire, and rotate in an
//! emergency (which writes the checklist report).

mod common;

use common::Env;
use rotor_test_support::{Postgres, Redis};

/// A Redis connection authenticated as `app`, kept open.
fn session(port: u16, password: &str) -> std::net::TcpStream {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    c.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .expect("timeout");
    write!(c, "AUTH app {password}\r\n").expect("auth");
    let mut buf = [0u8; 64];
    let n = c.read(&mut buf).expect("auth reply");
    assert!(
        buf[..n].starts_with(b"+OK"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    c
}

/// Whether the connection still answers PING.
fn ping(c: &mut std::net::TcpStream) -> bool {
    use std::io::{Read, Write};
    if c.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    matches!(c.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
}

fn credential(user: &str, password: &str) -> Vec<u8> {
    serde_json::json!({ "username": user, "password": password })
        .to_string()
        .into_bytes()
}

#[test]
fn postgres_and_redis_end_to_end() {
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
rotate_every = "1h"
grace = "1s"

[secrets.pg-admin]
kind = "postgres"
url = "postgres://127.0.0.1:{pg}/postgres"
role = "postgres"
rotate_every = "30d"
automation = "manual"
grace = "1s"

[secrets.redis]
kind = "redis"
url = "redis://127.0.0.1:{rd}"
user = "app"
admin = "redis-admin"
rotate_every = "1h"
grace = "1s"

[secrets.redis-admin]
kind = "redis"
url = "redis://127.0.0.1:{rd}"
user = "{ru}"
rotate_every = "30d"
automation = "manual"
grace = "1s"
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
        &["put", "redis"],
        Some(&credential("app", "initial-app-password-0123456789")),
    )
    .ok();
    // A credential must be JSON with username and password.
    let bad = env.rotor_stdin(&["put", "redis"], Some(b"just-a-password"));
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("{\"username\""), "{}", bad.stderr);

    let setup = env.rotor(&["setup", "database"]).ok();
    assert!(setup.stdout.contains("app_user_a"), "{}", setup.stdout);
    env.rotor(&["rotate", "database", "redis"]).ok();

    let db: serde_json::Value = serde_json::from_str(&env.reveal("database", "current"))
        .expect("database credential is JSON");
    assert_eq!(db["username"], "app_user_a");
    let pw = db["password"].as_str().expect("password");
    assert_eq!(
        pg.psql_as("app_user_a", pw, "app", "SELECT 1")
            .expect("login as the new role"),
        "1"
    );

    // Redis: old and new both work during grace; after retire the old one is rejected.
    let new: serde_json::Value =
        serde_json::from_str(&env.reveal("redis", "current")).expect("json");
    let new_pw = new["password"].as_str().expect("password").to_owned();
    let auth = |pw: &str| {
        redis
            .cli_session(&format!("AUTH app {pw}\nPING\n"))
            .expect("redis-cli")
    };
    assert!(auth(&new_pw).contains("PONG"));
    assert!(
        auth("initial-app-password-0123456789").contains("PONG"),
        "old works during grace"
    );
    std::thread::sleep(std::time::Duration::from_millis(1200));
    env.rotor(&["retire", "--due"]).ok();
    assert!(
        auth("initial-app-password-0123456789").contains("WRONGPASS"),
        "old rejected after retire"
    );

    // Second rotation alternates to app_user_b; an emergency rotation retires at once.
    env.rotor(&["rotate", "database"]).ok();
    let db2: serde_json::Value =
        serde_json::from_str(&env.reveal("database", "current")).expect("json");
    assert_eq!(db2["username"], "app_user_b");
    std::thread::sleep(std::time::Duration::from_millis(1200));
    env.rotor(&["retire", "--due"]).ok();
    assert!(
        pg.psql_as("app_user_a", pw, "app", "SELECT 1").is_err(),
        "retired role rejected"
    );

    // An emergency with --no-evict retires the old password but leaves live sessions alone;
    // a plain emergency also ends them (a password change alone leaves an attacker's open
    // connection alive).
    let mut kept = session(redis.port(), &new_pw);
    let r = env.rotor(&[
        "rotate",
        "redis",
        "--emergency",
        "--no-evict",
        "--reason",
        "rehearsal",
    ]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        auth(&new_pw).contains("WRONGPASS"),
        "emergency retired the previous password at once"
    );
    assert!(ping(&mut kept), "--no-evict left the open session alone");
    let newer: serde_json::Value =
        serde_json::from_str(&env.reveal("redis", "current")).expect("json");
    let newer_pw = newer["password"].as_str().expect("password").to_owned();
    let mut doomed = session(redis.port(), &newer_pw);
    let r = env.rotor(&[
        "rotate",
        "redis",
        "--emergency",
        "--reason",
        "password leaked in a log",
    ]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        auth(&newer_pw).contains("WRONGPASS"),
        "emergency retired the previous password at once"
    );
    assert!(
        !ping(&mut doomed),
        "the emergency evicted the session opened with the old password"
    );
    let reports: Vec<_> = std::fs::read_dir(env.path("reports"))
        .expect("report dir")
        .flatten()
        .collect();
    assert!(
        reports
            .iter()
            .any(|e| e.path().extension().is_some_and(|x| x == "md"))
    );
    assert!(
        reports
            .iter()
            .any(|e| e.path().extension().is_some_and(|x| x == "json"))
    );
    env.audit_verifies();
}
