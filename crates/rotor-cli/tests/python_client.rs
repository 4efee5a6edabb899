//! The Python client package (`clients/python`) against the real thing: this test starts
//! PostgreSQL and Redis (rotor-test-support), makes a store whose secrets live on them, runs
//! `rotor serve` (scheduler on, so grace ends in a retire as in production), and then runs
//! the client's pytest suite, which talks to all three. Addresses, tokens and paths reach
//! pytest through `ROTOR_TEST_*` variables; a test there that cannot reach its server fails.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Env;
use rotor_test_support::{Postgres, Redis};

/// Grace of the secrets the pytest suite rotates: long enough to check "the previous value
/// still works" on a busy machine, short enough that the whole run stays well under a minute.
const GRACE: &str = "4s";

const REDIS_INITIAL: &str = "initial-app-password-0123456789";

/// Stops `rotor serve` when the test ends, even on a panic.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn python() -> String {
    std::env::var("ROTOR_PYTHON").unwrap_or_else(|_| {
        panic!(
            "ROTOR_PYTHON is not set: run scripts/test, or set ROTOR_PYTHON to the venv python \
             that scripts/install-deps prepares (PyJWT, httpx, asyncpg, redis, pytest)"
        )
    })
}

/// `(token, [[tokens]] lines)` from `rotor token new NAME --scope ...`.
fn token(name: &str, scopes: &[&str]) -> (String, String) {
    let mut args = vec!["token", "new", name];
    for s in scopes {
        args.extend(["--scope", s]);
    }
    let out = Env::uninit("").rotor(&args).ok();
    let lines = out
        .stderr
        .lines()
        .skip_while(|l| !l.starts_with("[[tokens]]"))
        .take_while(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(lines.contains("sha256"), "{}", out.stderr);
    (out.stdout.trim().to_owned(), lines)
}

fn credential(user: &str, password: &str) -> Vec<u8> {
    serde_json::json!({ "username": user, "password": password })
        .to_string()
        .into_bytes()
}

#[test]
fn python_client_pytest_suite() {
    let pg = Postgres::start().expect("start PostgreSQL (run scripts/install-deps)");
    pg.create_db("app").expect("create database app");
    let redis = Redis::start().expect("start Redis (run scripts/install-deps)");
    redis
        .cli(&[
            "ACL",
            "SETUSER",
            "app",
            "on",
            &format!(">{REDIS_INITIAL}"),
            "~*",
            "+@all",
        ])
        .expect("create the Redis user app");

    let (admin_token, admin_lines) = token("pytest-admin", &["admin"]);
    // The app's token reads only its own credentials, and sees the session secret's changes
    // (metadata and the watch show a token only the secrets its scopes match).
    let (app_token, app_lines) = token("app", &["read:database", "read:redis", "view:session"]);
    let port = rotor_test_support::free_port().expect("free port");
    let config = format!(
        r#"
[secrets.jwt-signing]
kind = "jwt"
algorithm = "HS256"
rotate_every = "30d"
token_lifetime = "2s"
leeway = "1s"
grace = "{GRACE}"

[secrets.jwt-es]
kind = "jwt"
algorithm = "ES256"
rotate_every = "30d"
token_lifetime = "2s"
leeway = "1s"
jwks_max_age = "0s"
grace = "{GRACE}"

[secrets.session]
kind = "random"
rotate_every = "30d"
grace = "0s"

[secrets.database]
kind = "postgres"
strategy = "alternating"
url = "postgres://127.0.0.1:{pg}/app"
role = "app_user"
admin = "pg-admin"
rotate_every = "30d"
grace = "{GRACE}"

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
rotate_every = "30d"
grace = "{GRACE}"

[secrets.redis-admin]
kind = "redis"
url = "redis://127.0.0.1:{rd}"
user = "{ru}"
rotate_every = "30d"
automation = "manual"
grace = "1s"

[[render]]
kind = "dotenv"
path = "app.env"
[render.vars]
SECRET_KEY = "{{{{ jwt-signing.current.secret }}}}"
SECRET_KEY_PREVIOUS = "{{{{ jwt-signing.previous.secret }}}}"

{admin_lines}

{app_lines}
"#,
        pg = pg.port(),
        rd = redis.port(),
        ru = redis.admin_user(),
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
    env.rotor_stdin(&["put", "redis"], Some(&credential("app", REDIS_INITIAL)))
        .ok();
    env.rotor(&["setup", "database"]).ok();
    // First values (a first rotation has no previous value, so no grace runs when pytest
    // begins); redis keeps the value put above until pytest rotates it.
    env.rotor(&["rotate", "jwt-signing", "jwt-es", "session", "database"])
        .ok();
    for name in ["jwt-signing", "jwt-es", "session", "database", "redis"] {
        assert!(
            env.holders(name, "previous").is_empty(),
            "{name} is in grace"
        );
        assert_eq!(env.holders(name, "current").len(), 1, "{name} has a value");
    }
    assert!(env.path("app.env").exists(), "rotor rendered app.env");

    let server = Server(
        env.command(&["serve", "--listen", &format!("127.0.0.1:{port}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(env.path("serve.log")).expect("serve log"),
            ))
            .spawn()
            .expect("spawn rotor serve"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "rotor serve did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let client = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients/python");
    let started = Instant::now();
    let out = Command::new(python())
        .args([
            "-m",
            "pytest",
            "-q",
            "-rA",
            "-p",
            "no:cacheprovider",
            "tests",
        ])
        .current_dir(&client)
        // The sources under test, not whatever version is installed in the venv.
        .env("PYTHONPATH", client.join("src"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("ROTOR_TEST_URL", format!("http://127.0.0.1:{port}"))
        .env("ROTOR_TEST_ADMIN_TOKEN", &admin_token)
        .env("ROTOR_TEST_APP_TOKEN", &app_token)
        .env("ROTOR_TEST_BIN", env!("CARGO_BIN_EXE_rotor"))
        .env("ROTOR_TEST_CONFIG", env.path("rotor.toml"))
        .env("ROTOR_TEST_DIR", env.dir.path())
        .env("ROTOR_TEST_ENV_FILE", env.path("app.env"))
        .env("ROTOR_TEST_GRACE_SECONDS", GRACE.trim_end_matches('s'))
        .env("ROTOR_TEST_PG_HOST", "127.0.0.1")
        .env("ROTOR_TEST_PG_PORT", pg.port().to_string())
        .env("ROTOR_TEST_PG_DB", "app")
        .env("ROTOR_TEST_REDIS_HOST", "127.0.0.1")
        .env("ROTOR_TEST_REDIS_PORT", redis.port().to_string())
        .env_remove("ROTOR_MASTER_KEY")
        .env_remove("ROTOR_CONFIG")
        .env_remove("ROTOR_SERVER")
        .env_remove("ROTOR_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("run pytest (ROTOR_PYTHON with pytest: run scripts/install-deps)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let serve_log = std::fs::read_to_string(env.path("serve.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "pytest failed:\n{stdout}\n{stderr}\n--- rotor serve log ---\n{serve_log}"
    );
    let summary = stdout.lines().last().unwrap_or_default().to_owned();
    eprintln!(
        "pytest: {summary} ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
    assert!(
        !summary.contains("skipped")
            && !summary.contains("xfail")
            && !summary.contains("deselected"),
        "no test may be skipped: {summary}"
    );
    let passed: usize = summary
        .split_whitespace()
        .zip(summary.split_whitespace().skip(1))
        .find(|(_, w)| w.starts_with("passed"))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or(0);
    assert!(passed >= 15, "expected the whole suite to run: {summary}");
    drop(server);
}
