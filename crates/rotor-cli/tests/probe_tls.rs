//! `rotor probe` checks TLS to PostgreSQL and Redis targets on real servers (TLS-only
//! PostgreSQL with `ssl = on`, `redis-server --tls-port`, certificates from a CA made at test
//! time) and names each TLS failure as its own cause, with its fix, apart from "unreachable":
//! a server without TLS where the url requires it, a certificate not valid for the host
//! (verify-full), a certificate from an untrusted CA, an expired certificate.

mod common;

use common::{Env, Run};
use rotor_test_support::{CertFiles, Postgres, Redis, TestCa};

fn credential(user: &str, password: &str) -> Vec<u8> {
    serde_json::json!({ "username": user, "password": password })
        .to_string()
        .into_bytes()
}

/// A self-managed postgres secret for the superuser on `url`, its current value put.
fn pg_env(pg: &Postgres, url: &str) -> Env {
    let env = Env::new(&format!(
        "[secrets.db]\nkind = \"postgres\"\nurl = {url:?}\nrole = \"postgres\"\nautomation = \"manual\"\ntier = \"low\"\n"
    ));
    env.rotor_stdin(
        &["put", "db"],
        Some(&credential("postgres", pg.admin_password())),
    )
    .ok();
    env
}

/// A self-managed redis secret for the admin user on `url`, its current value put.
fn redis_env(redis: &Redis, url: &str) -> Env {
    let env = Env::new(&format!(
        "[secrets.cache]\nkind = \"redis\"\nurl = {url:?}\nuser = {user:?}\nautomation = \"manual\"\ntier = \"low\"\n",
        user = redis.admin_user()
    ));
    env.rotor_stdin(
        &["put", "cache"],
        Some(&credential(redis.admin_user(), redis.admin_password())),
    )
    .ok();
    env
}

/// `rotor probe NAME` that must be blocked: its output, with no secret in it.
fn blocked(env: &Env, name: &str, password: &str) -> Run {
    let r = env.rotor(&["probe", name]);
    assert_eq!(r.code, 1, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(&format!("{name}: blocked")),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains(password), "a value in probe output");
    assert!(!r.stderr.contains(password), "a value in probe output");
    r
}

fn assert_has(r: &Run, wanted: &[&str]) {
    for w in wanted {
        assert!(r.stdout.contains(w), "missing {w:?} in:\n{}", r.stdout);
    }
}

fn pg_url(port: u16, host: &str, query: &str) -> String {
    format!("postgres://{host}:{port}/postgres?{query}")
}

fn tls_pg(ca: &TestCa, cert: &CertFiles) -> Postgres {
    Postgres::start_tls(ca, cert, false)
        .expect("PostgreSQL 15 with ssl=on (run scripts/install-deps)")
}

#[test]
fn postgres_probe_reports_each_tls_cause() {
    let ca = TestCa::new().expect("CA");
    let root = format!("sslrootcert={}", ca.cert_path().display());

    // Good TLS: the probe says which mode it verified.
    let pg = tls_pg(
        &ca,
        &ca.issue_server(&["localhost", "127.0.0.1"]).expect("cert"),
    );
    let env = pg_env(
        &pg,
        &pg_url(
            pg.port(),
            "127.0.0.1",
            &format!("sslmode=verify-full&{root}"),
        ),
    );
    let ok = env.rotor(&["probe", "db"]).ok();
    assert_has(
        &ok,
        &[
            "db: ok",
            "ok: TLS (sslmode=verify-full): the certificate of 127.0.0.1",
        ],
    );

    // A certificate for another host name under verify-full.
    let other = tls_pg(
        &ca,
        &ca.issue_server(&["db.example.internal"]).expect("cert"),
    );
    let env = pg_env(
        &other,
        &pg_url(
            other.port(),
            "127.0.0.1",
            &format!("sslmode=verify-full&{root}"),
        ),
    );
    let r = blocked(&env, "db", other.admin_password());
    assert_has(
        &r,
        &[
            ": TLS: the server's TLS certificate is not valid for the host name 127.0.0.1",
            "have the server's certificate include 127.0.0.1",
        ],
    );

    // A certificate from a CA the url does not trust.
    let stranger = TestCa::new().expect("another CA");
    let env = pg_env(
        &pg,
        &pg_url(
            pg.port(),
            "127.0.0.1",
            &format!(
                "sslmode=verify-full&sslrootcert={}",
                stranger.cert_path().display()
            ),
        ),
    );
    let r = blocked(&env, "db", pg.admin_password());
    assert_has(
        &r,
        &[
            ": TLS: the server's TLS certificate for 127.0.0.1 is not signed by a trusted root",
            "set sslrootcert=",
        ],
    );

    // An expired certificate.
    let expired = tls_pg(
        &ca,
        &ca.issue_server_expired(&["localhost", "127.0.0.1"])
            .expect("cert"),
    );
    let env = pg_env(
        &expired,
        &pg_url(
            expired.port(),
            "127.0.0.1",
            &format!("sslmode=verify-full&{root}"),
        ),
    );
    let r = blocked(&env, "db", expired.admin_password());
    assert_has(
        &r,
        &[
            ": TLS: the server's TLS certificate for 127.0.0.1 has expired",
            "renew the server's certificate",
        ],
    );

    // A server that asks for a client certificate the url does not give: PostgreSQL refuses
    // the login after the handshake (pg_hba `clientcert`); a TLS cause, not a wrong password.
    let mtls = Postgres::start_tls(
        &ca,
        &ca.issue_server(&["localhost", "127.0.0.1"]).expect("cert"),
        true,
    )
    .expect("PostgreSQL 15 with ssl=on (run scripts/install-deps)");
    let env = pg_env(
        &mtls,
        &pg_url(
            mtls.port(),
            "127.0.0.1",
            &format!("sslmode=verify-full&{root}"),
        ),
    );
    let r = blocked(&env, "db", mtls.admin_password());
    assert_has(
        &r,
        &[
            ": TLS: 127.0.0.1 requires a valid client certificate (the server said: connection requires a valid client certificate)",
            "sslcert=PATH&sslkey=PATH",
        ],
    );
    assert!(
        !r.stdout.contains("rotor put"),
        "not a password problem: {}",
        r.stdout
    );

    // A server without TLS where the url requires it.
    let plain = Postgres::start().expect("PostgreSQL 15 (run scripts/install-deps)");
    let env = pg_env(
        &plain,
        &pg_url(plain.port(), "127.0.0.1", "sslmode=require"),
    );
    let r = blocked(&env, "db", plain.admin_password());
    assert_has(
        &r,
        &[
            ": TLS: the server 127.0.0.1 does not offer TLS",
            "enable TLS on the server",
        ],
    );

    // Unreachable is its own cause, not a TLS one.
    let (port, password) = (plain.port(), plain.admin_password().to_owned());
    drop(plain);
    let r = blocked(&env, "db", &password);
    assert_has(
        &r,
        &[&format!("127.0.0.1:{port}"), "cannot reach the server"],
    );
    assert!(!r.stdout.contains(": TLS: "), "{}", r.stdout);
}

fn tls_redis(ca: &TestCa, cert: &CertFiles) -> Redis {
    Redis::start_tls(ca, cert, false)
        .expect("redis-server with --tls-port (run scripts/install-deps)")
}

fn redis_url(port: u16, query: &str) -> String {
    format!("rediss://127.0.0.1:{port}?{query}")
}

#[test]
fn redis_probe_reports_each_tls_cause() {
    let ca = TestCa::new().expect("CA");
    let root = format!("sslrootcert={}", ca.cert_path().display());

    let good = tls_redis(
        &ca,
        &ca.issue_server(&["localhost", "127.0.0.1"]).expect("cert"),
    );
    let env = redis_env(
        &good,
        &redis_url(good.port(), &format!("sslmode=verify-full&{root}")),
    );
    let ok = env.rotor(&["probe", "cache"]).ok();
    assert_has(
        &ok,
        &[
            "cache: ok",
            "ok: TLS (sslmode=verify-full): the certificate of 127.0.0.1",
        ],
    );

    let other = tls_redis(
        &ca,
        &ca.issue_server(&["cache.example.internal"]).expect("cert"),
    );
    let env = redis_env(
        &other,
        &redis_url(other.port(), &format!("sslmode=verify-full&{root}")),
    );
    let r = blocked(&env, "cache", other.admin_password());
    assert_has(
        &r,
        &[": TLS: the server's TLS certificate is not valid for the host name 127.0.0.1"],
    );

    let stranger = TestCa::new().expect("another CA");
    let env = redis_env(
        &good,
        &redis_url(
            good.port(),
            &format!(
                "sslmode=verify-full&sslrootcert={}",
                stranger.cert_path().display()
            ),
        ),
    );
    let r = blocked(&env, "cache", good.admin_password());
    assert_has(
        &r,
        &[": TLS: the server's TLS certificate for 127.0.0.1 is not signed by a trusted root"],
    );

    let expired = tls_redis(
        &ca,
        &ca.issue_server_expired(&["localhost", "127.0.0.1"])
            .expect("cert"),
    );
    let env = redis_env(
        &expired,
        &redis_url(expired.port(), &format!("sslmode=verify-full&{root}")),
    );
    let r = blocked(&env, "cache", expired.admin_password());
    assert_has(
        &r,
        &[": TLS: the server's TLS certificate for 127.0.0.1 has expired"],
    );

    // A server that requires a client certificate the url does not give (TLS 1.3: the
    // refusal arrives on the first read, after the handshake).
    let mtls = Redis::start_tls(
        &ca,
        &ca.issue_server(&["localhost", "127.0.0.1"]).expect("cert"),
        true,
    )
    .expect("redis-server with --tls-port (run scripts/install-deps)");
    let env = redis_env(
        &mtls,
        &redis_url(mtls.port(), &format!("sslmode=verify-full&{root}")),
    );
    let r = blocked(&env, "cache", mtls.admin_password());
    assert_has(
        &r,
        &[
            ": TLS: 127.0.0.1 requires a client certificate",
            "sslcert=PATH&sslkey=PATH",
        ],
    );

    // A plaintext redis-server behind a rediss:// url: the probe asks it in plaintext and
    // says so for certain, instead of "answers TCP but not TLS, retrying".
    let plain = Redis::start().expect("Redis (run scripts/install-deps)");
    let env = redis_env(&plain, &redis_url(plain.port(), "sslmode=require"));
    let r = blocked(&env, "cache", plain.admin_password());
    assert_has(
        &r,
        &[
            &format!(
                ": TLS: 127.0.0.1:{} speaks plaintext Redis, not TLS",
                plain.port()
            ),
            "--tls-port",
        ],
    );

    // Unreachable is its own cause.
    let (port, password) = (plain.port(), plain.admin_password().to_owned());
    drop(plain);
    let r = blocked(&env, "cache", &password);
    assert_has(&r, &[&format!("127.0.0.1:{port}")]);
    assert!(!r.stdout.contains(": TLS: "), "{}", r.stdout);
}
