//! Issue 9 item 1: a rotation whose target is unreachable never stays `in-progress`.
//!
//! Real PostgreSQL and Redis behind a TCP proxy that refuses every connection (the target is
//! down), through the binary and under `rotor serve`: the rotation ends `failed` after its
//! bounded retries with `current` untouched, the rollback it could not do is owed (the
//! pending value stays sealed and labelled), the secret is not busy (`put`, `rotate`,
//! `abort`, `resume` answer and say what the target may hold), and once the target is back
//! the owed rollback is done (by `rotor resume`, or by the daemon on its own).

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::Env;
use rotor_test_support::{Postgres, Redis, TcpProxy};

fn credential(user: &str, password: &str) -> Vec<u8> {
    serde_json::json!({ "username": user, "password": password })
        .to_string()
        .into_bytes()
}

const PG_PW: &str = "initial-db-password-0123456789";
const RD_PW: &str = "initial-cache-password-0123456789";

/// PostgreSQL with role `app_single`, Redis with user `app`, each behind a proxy, and a
/// config whose `db` (postgres) and `cache` (redis) secrets point at the proxies.
struct Targets {
    pg: Postgres,
    redis: Redis,
    pg_proxy: TcpProxy,
    rd_proxy: TcpProxy,
}

impl Targets {
    fn start() -> Targets {
        let pg = Postgres::start().expect("start PostgreSQL");
        pg.create_db("app").expect("db");
        pg.psql(&format!(
            "CREATE ROLE app_single LOGIN PASSWORD '{PG_PW}'; GRANT CONNECT ON DATABASE app TO app_single"
        ))
        .expect("role");
        let redis = Redis::start().expect("start Redis");
        redis
            .cli(&[
                "ACL",
                "SETUSER",
                "app",
                "on",
                &format!(">{RD_PW}"),
                "~*",
                "+@all",
            ])
            .expect("redis user");
        let pg_proxy = TcpProxy::start(pg.addr()).expect("pg proxy");
        let rd_proxy = TcpProxy::start(redis.addr()).expect("redis proxy");
        Targets {
            pg,
            redis,
            pg_proxy,
            rd_proxy,
        }
    }

    fn config(&self, extra: &str) -> String {
        format!(
            r#"
[server]
retry_attempts = 2
retry_backoff = "1s"

[secrets.db]
kind = "postgres"
url = "postgres://127.0.0.1:{pg}/app"
role = "app_single"
rotate_every = "30d"
grace = "1s"

[secrets.cache]
kind = "redis"
url = "redis://127.0.0.1:{rd}"
user = "app"
rotate_every = "30d"
grace = "1s"
{extra}
"#,
            pg = self.pg_proxy.addr().port(),
            rd = self.rd_proxy.addr().port(),
        )
    }

    fn down(&self, down: bool) {
        self.pg_proxy.set_refusing(down);
        self.rd_proxy.set_refusing(down);
        if down {
            self.pg_proxy.cut_all();
            self.rd_proxy.cut_all();
        }
    }

    fn seed(&self, env: &Env) {
        env.rotor_stdin(&["put", "db"], Some(&credential("app_single", PG_PW)))
            .ok();
        env.rotor_stdin(&["put", "cache"], Some(&credential("app", RD_PW)))
            .ok();
    }

    /// Whether Redis user `app` accepts `password` (asked directly, not through the proxy).
    fn redis_accepts(&self, password: &str) -> bool {
        self.redis
            .cli_session(&format!("AUTH app {password}\nPING\n"))
            .is_ok_and(|out| out.contains("PONG"))
    }
}

fn state(env: &Env, name: &str) -> (String, String) {
    let rows = env.rotor(&["--format", "json", "status"]).ok().json();
    let row = rows
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no row for {name}: {rows}"))
        .clone();
    (
        row["state"].as_str().unwrap_or("?").to_owned(),
        row.to_string(),
    )
}

fn password(env: &Env, name: &str, stage: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(&env.reveal(name, stage)).expect("json");
    v["password"].as_str().expect("password").to_owned()
}

#[test]
fn unreachable_targets_end_failed_and_nothing_stays_busy() {
    let t = Targets::start();
    let env = Env::new(&t.config(""));
    t.seed(&env);

    // The targets go down; a rotation of each ends failed after its bounded retries.
    t.down(true);
    let down_at = Instant::now();
    let rotated = env.rotor(&["rotate", "db", "cache"]);
    let to_failed = down_at.elapsed();
    eprintln!("time from target down to failed (CLI, both secrets): {to_failed:?}");
    assert_eq!(rotated.code, 1, "{}", rotated.stderr);
    assert!(
        rotated.stderr.contains("ended failed")
            && rotated.stderr.contains("may still accept pending version"),
        "{}",
        rotated.stderr
    );
    assert!(to_failed < Duration::from_secs(60), "{to_failed:?}");
    for name in ["db", "cache"] {
        let (state, row) = state(&env, name);
        assert_eq!(state, "failed", "{row}");
        assert!(
            row.contains("rollback owed"),
            "the reason is recorded: {row}"
        );
        // The pending value is kept (sealed, labelled) until the target confirms.
        assert_eq!(env.holders(name, "pending").len(), 1, "{name}");
    }
    assert_eq!(password(&env, "db", "current"), PG_PW);
    assert_eq!(password(&env, "cache", "current"), RD_PW);
    let pending_cache = password(&env, "cache", "pending");

    // Nothing is busy, and each command says what the target may hold.
    for args in [
        &["rotate", "db"][..],
        &["abort", "db"][..],
        &["resume", "db"][..],
    ] {
        let r = env.rotor(args);
        assert_eq!(r.code, 1, "{args:?}: {}", r.stderr);
        assert!(!r.stderr.contains("busy"), "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("may still accept pending version"),
            "{args:?}: {}",
            r.stderr
        );
    }
    // An operator sets a password by hand (straight on Redis) and stores it with `put`.
    const BY_HAND: &str = "set-by-hand-password-0123456789";
    t.redis
        .cli(&["ACL", "SETUSER", "app", &format!(">{BY_HAND}")])
        .expect("by hand");
    let put = env.rotor_stdin(&["put", "cache"], Some(&credential("app", BY_HAND)));
    assert_eq!(put.code, 0, "{}", put.stderr);
    assert!(
        put.stderr.contains("may still accept pending version"),
        "{}",
        put.stderr
    );

    // The targets come back: `rotor resume` does the owed rollbacks, and only then is the
    // pending label dropped; the current values still log in, the pending one does not.
    t.down(false);
    let resumed = env.rotor(&["resume"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert!(
        resumed.stderr.matches("owed rollback done").count() == 2,
        "{}",
        resumed.stderr
    );
    for name in ["db", "cache"] {
        assert!(env.holders(name, "pending").is_empty(), "{name}");
    }
    assert!(t.redis_accepts(BY_HAND));
    assert!(!t.redis_accepts(&pending_cache));
    assert_eq!(
        t.pg.psql_as("app_single", PG_PW, "app", "SELECT 1")
            .expect("current logs in"),
        "1"
    );
    // And rotating works again (once the put's 1 s grace is over).
    std::thread::sleep(Duration::from_millis(1_100));
    env.rotor(&["rotate", "db", "cache"]).ok();
    assert_ne!(password(&env, "db", "current"), PG_PW);
    env.audit_verifies();
}

fn wait_for(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "rotor serve did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Under `rotor serve`: rotations asked through its API end failed, the secrets are not busy
/// for the CLI, and when the targets come back the daemon does the owed rollbacks by itself.
/// One secret points at 127.0.0.1:9 (nothing listens there), as in the issue.
#[test]
fn under_serve_unreachable_targets_end_failed_and_the_daemon_settles() {
    let t = Targets::start();
    let token_out = Env::uninit(&t.config(""))
        .rotor(&["token", "new", "ci", "--scope", "admin"])
        .ok();
    let token = token_out.stdout.trim().to_owned();
    let tokens: String = token_out
        .stderr
        .lines()
        .skip_while(|l| !l.starts_with("[[tokens]]"))
        .collect::<Vec<_>>()
        .join("\n");
    let closed = r#"
[secrets.nowhere]
kind = "redis"
url = "redis://127.0.0.1:9"
user = "app"
rotate_every = "30d"
grace = "1s"
"#;
    let env = Env::new(&t.config(&format!("{closed}\n{tokens}\n")));
    t.seed(&env);
    env.rotor_stdin(&["put", "nowhere"], Some(&credential("app", RD_PW)))
        .ok();
    let port = rotor_test_support::free_port().expect("port");
    let mut server = env
        .command(&["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    wait_for(port);
    let url = format!("http://127.0.0.1:{port}");
    let remote = |args: &[&str]| {
        let mut c = env.command(args);
        c.env("ROTOR_SERVER", &url).env("ROTOR_TOKEN", &token);
        common::run_of(c.output().expect("run"))
    };

    t.down(true);
    let down_at = Instant::now();
    for name in ["db", "cache", "nowhere"] {
        let r = remote(&["rotate", name]);
        assert_ne!(r.code, 0, "{name}: {}", r.stderr);
        assert!(
            r.stderr.contains("may still accept pending version"),
            "{name}: {}",
            r.stderr
        );
    }
    eprintln!(
        "time from target down to failed (rotor serve, three secrets one after another): {:?}",
        down_at.elapsed()
    );
    for name in ["db", "cache", "nowhere"] {
        let (state, row) = state(&env, name);
        assert_eq!(state, "failed", "{row}");
    }
    // Not busy: a put and a rotate answer at once (no lease of the daemon's is in the way).
    let local_put = env.rotor_stdin(&["put", "nowhere"], Some(&credential("app", RD_PW)));
    assert_eq!(local_put.code, 0, "{}", local_put.stderr);
    let again = env.rotor(&["rotate", "nowhere"]);
    assert_eq!(again.code, 1, "{}", again.stderr);
    assert!(!again.stderr.contains("busy"), "{}", again.stderr);

    // The targets come back: the daemon retries the owed rollbacks at its backoff.
    t.down(false);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(env.holders("db", "pending").is_empty() && env.holders("cache", "pending").is_empty()) {
        assert!(
            Instant::now() < deadline,
            "the daemon did not settle the owed rollbacks: {} / {}",
            state(&env, "db").1,
            state(&env, "cache").1
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // 127.0.0.1:9 never comes back: its rollback stays owed and its pending value kept.
    assert_eq!(env.holders("nowhere", "pending").len(), 1);
    let rotated = remote(&["rotate", "db"]);
    assert_eq!(rotated.code, 0, "{}", rotated.stderr);
    server.kill().expect("stop");
    server.wait().expect("reap");
    env.audit_verifies();
}
