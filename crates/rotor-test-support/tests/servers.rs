//! The test servers are real and usable. A missing tool fails these tests, with the
//! reason (e.g. "run scripts/install-deps"), instead of skipping them.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use rotor_test_support::{
    Moto, Nginx, Postgres, Redis, TcpProxy, free_port, python, wait_for_port,
};

fn ok<T>(r: rotor_test_support::Result<T>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e}"))
}

#[test]
fn postgres_runs_select_1_through_psql() {
    let pg = ok(Postgres::start(), "starting PostgreSQL");
    assert_eq!(ok(pg.psql("SELECT 1"), "psql"), "1");
    assert_eq!(pg.host(), "127.0.0.1");
    assert_eq!(pg.admin_user(), "postgres");
    assert!(pg.admin_password().len() >= 32);
    assert!(
        ok(pg.psql("SHOW server_version"), "psql").starts_with("15."),
        "not PostgreSQL 15"
    );
    // SCRAM over TCP, as configured.
    assert_eq!(
        ok(pg.psql("SHOW password_encryption"), "psql"),
        "scram-sha-256"
    );
    assert_eq!(
        ok(
            pg.psql("SELECT setting FROM pg_settings WHERE name = 'listen_addresses'"),
            "psql"
        ),
        "127.0.0.1"
    );
}

#[test]
fn postgres_create_db_url_and_login_checks() {
    let pg = ok(Postgres::start(), "starting PostgreSQL");
    ok(pg.create_db("app"), "create_db");
    assert_eq!(
        ok(pg.psql_db("app", "SELECT current_database()"), "psql"),
        "app"
    );
    assert_eq!(
        pg.url("app"),
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/app",
            pg.admin_password(),
            pg.port()
        )
    );

    ok(
        pg.psql("CREATE ROLE alice LOGIN PASSWORD 'first-pw'"),
        "create role",
    );
    assert_eq!(
        ok(
            pg.psql_as("alice", "first-pw", "app", "SELECT current_user"),
            "login"
        ),
        "alice"
    );
    let wrong = pg.psql_as("alice", "wrong", "app", "SELECT 1");
    let err = wrong
        .expect_err("a wrong password must be refused")
        .to_string();
    assert!(err.contains("password authentication failed"), "{err}");
    // SQL errors are errors too.
    assert!(pg.psql("SELECT * FROM no_such_table").is_err());
}

#[test]
fn two_postgres_instances_are_independent() {
    let a = ok(Postgres::start(), "starting PostgreSQL a");
    let b = ok(Postgres::start(), "starting PostgreSQL b");
    assert_ne!(a.port(), b.port());
    assert_ne!(a.admin_password(), b.admin_password());
    ok(a.create_db("only_in_a"), "create_db");
    let in_b = ok(
        b.psql("SELECT count(*) FROM pg_database WHERE datname = 'only_in_a'"),
        "psql",
    );
    assert_eq!(in_b, "0");
}

#[test]
fn postgres_drop_stops_the_server_and_removes_its_dir() {
    let pg = ok(Postgres::start(), "starting PostgreSQL");
    let addr = pg.addr();
    let dir = pg.socket_dir().to_path_buf();
    drop(pg);
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
        "PostgreSQL still listening on {addr}"
    );
}

#[test]
fn redis_ping() {
    let redis = ok(Redis::start(), "starting Redis");
    assert_eq!(ok(redis.cli(&["PING"]), "PING"), "PONG");
    assert_eq!(redis.admin_user(), "default");
    // Without the password, nothing works.
    let out = ok(redis.cli_session("PING\n"), "redis-cli session");
    assert!(out.contains("NOAUTH"), "{out}");
    // Error replies are errors for cli().
    assert!(redis.cli(&["NO-SUCH-COMMAND"]).is_err());
}

#[test]
fn redis_acl_user_with_two_passwords() {
    let redis = ok(Redis::start(), "starting Redis");
    ok(
        redis.cli(&[
            "ACL", "SETUSER", "app", "on", ">pw-one", ">pw-two", "~*", "+@all",
        ]),
        "ACL SETUSER",
    );
    for pw in ["pw-one", "pw-two"] {
        let out = ok(
            redis.cli_session(&format!("AUTH app {pw}\nACL WHOAMI\n")),
            "session",
        );
        assert_eq!(out.lines().collect::<Vec<_>>(), ["OK", "app"], "with {pw}");
    }
    let out = ok(redis.cli_session("AUTH app wrong\nACL WHOAMI\n"), "session");
    assert!(out.contains("WRONGPASS"), "{out}");
    assert!(!out.lines().any(|l| l == "app"), "{out}");

    // Removing one password keeps the other.
    ok(
        redis.cli(&["ACL", "SETUSER", "app", "<pw-one"]),
        "ACL SETUSER",
    );
    let out = ok(
        redis.cli_session("AUTH app pw-one\nAUTH app pw-two\n"),
        "session",
    );
    let replies: Vec<&str> = out.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(replies.len(), 2, "{out}");
    assert!(replies[0].starts_with("WRONGPASS"), "{out}");
    assert_eq!(replies[1], "OK", "{out}");
}

#[test]
fn redis_with_aclfile_saves_acls() {
    let redis = ok(
        Redis::start_with_aclfile(),
        "starting Redis with an ACL file",
    );
    assert_eq!(ok(redis.cli(&["PING"]), "PING"), "PONG");
    ok(
        redis.cli(&["ACL", "SETUSER", "svc", "on", ">svc-pw", "~svc:*", "+get"]),
        "ACL SETUSER",
    );
    ok(redis.cli(&["ACL", "SAVE"]), "ACL SAVE");
    let aclfile = redis.aclfile().expect("start_with_aclfile has an ACL file");
    let saved = std::fs::read_to_string(aclfile).expect("the ACL file is readable");
    assert!(saved.contains("user svc on"), "{saved}");
    assert!(saved.contains("user default on"), "{saved}");
    let out = ok(redis.cli_session("AUTH svc svc-pw\n"), "session");
    assert_eq!(out.trim(), "OK");
}

#[test]
fn nginx_basic_auth_reads_the_htpasswd_file_and_reloads_and_stops() {
    let nginx = ok(Nginx::start(), "starting nginx");
    assert_eq!(
        ok(nginx.curl_status("u", "p"), "curl"),
        401,
        "empty file: nobody"
    );
    // A SHA-512 crypt hash made by openssl (the reference plugin's way), password on stdin.
    let mut cmd = Command::new("openssl");
    cmd.args(["passwd", "-6", "-stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("openssl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"s3cret-pw\n")
        .expect("write");
    let out = child.wait_with_output().expect("openssl");
    let hash = String::from_utf8(out.stdout).expect("utf8");
    std::fs::write(nginx.htpasswd(), format!("u:{}", hash.trim())).expect("htpasswd");
    assert_eq!(ok(nginx.curl_status("u", "s3cret-pw"), "curl"), 200);
    assert_eq!(ok(nginx.curl_status("u", "wrong"), "curl"), 401);
    let reload = nginx.reload_command();
    let status = Command::new(&reload[0])
        .args(&reload[1..])
        .status()
        .expect("nginx -s reload");
    assert!(status.success(), "nginx -s reload");
    assert_eq!(ok(nginx.curl_status("u", "s3cret-pw"), "curl"), 200);
    let port = nginx.port();
    drop(nginx);
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nginx (master and workers) stopped"
    );
}

#[test]
fn moto_secrets_manager_through_boto3() {
    let moto = ok(Moto::start(), "starting moto");
    assert!(moto.endpoint_url().starts_with("http://127.0.0.1:"));
    let py = ok(python(), "finding the venv's python");
    let script = r#"
import boto3
c = boto3.client("secretsmanager")
c.create_secret(Name="rotor/test", SecretString="s3cret-v1")
print(c.get_secret_value(SecretId="rotor/test", VersionStage="AWSCURRENT")["SecretString"])
"#;
    let out = Command::new(&py)
        .args(["-c", script])
        .envs(moto.aws_env())
        .output()
        .expect("running the venv's python");
    assert!(
        out.status.success(),
        "boto3 against moto failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "s3cret-v1");
    ok(moto.reset(), "reset");
}

/// A one-connection-at-a-time echo server for the proxy tests.
fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind echo server");
    let addr = listener.local_addr().expect("echo server address");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 || conn.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

fn echo_roundtrip(conn: &mut TcpStream, msg: &[u8]) -> std::io::Result<Vec<u8>> {
    conn.write_all(msg)?;
    let mut got = vec![0u8; msg.len()];
    conn.read_exact(&mut got)?;
    Ok(got)
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn proxy_forwards_then_cut_all_breaks_live_connections() {
    let proxy = ok(TcpProxy::start(echo_server()), "starting the proxy");
    let mut conn = TcpStream::connect(proxy.addr()).expect("connect through the proxy");
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("set timeout");
    assert_eq!(echo_roundtrip(&mut conn, b"hello").expect("echo"), b"hello");
    wait_until("one live connection", || proxy.connections() == 1);

    assert_eq!(proxy.cut_all(), 1);
    assert_eq!(proxy.connections(), 0);
    // The live connection is broken: EOF or an error, never an echo.
    let mut buf = [0u8; 16];
    let _ = conn.write_all(b"again");
    match conn.read(&mut buf) {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!("got {n} bytes after cut_all"),
    }

    // New connections still work.
    let mut conn = TcpStream::connect(proxy.addr()).expect("reconnect");
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("set timeout");
    assert_eq!(echo_roundtrip(&mut conn, b"back").expect("echo"), b"back");
    assert_eq!(proxy.total_connections(), 2);
}

#[test]
fn proxy_refusing_closes_new_connections() {
    let proxy = ok(TcpProxy::start(echo_server()), "starting the proxy");
    proxy.set_refusing(true);
    let mut conn = TcpStream::connect(proxy.addr()).expect("the TCP connect itself succeeds");
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("set timeout");
    assert!(echo_roundtrip(&mut conn, b"x").is_err());
    assert_eq!(proxy.connections(), 0);

    proxy.set_refusing(false);
    let mut conn = TcpStream::connect(proxy.addr()).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("set timeout");
    assert_eq!(echo_roundtrip(&mut conn, b"ok").expect("echo"), b"ok");
}

#[test]
fn proxy_stalled_holds_bytes_until_released() {
    let proxy = ok(TcpProxy::start(echo_server()), "starting the proxy");
    let mut conn = TcpStream::connect(proxy.addr()).expect("connect");
    proxy.set_stalled(true);
    conn.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("set timeout");
    assert!(
        echo_roundtrip(&mut conn, b"held").is_err(),
        "bytes went through"
    );
    proxy.set_stalled(false);
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("set timeout");
    let mut got = [0u8; 4];
    conn.read_exact(&mut got).expect("held bytes arrive");
    assert_eq!(&got, b"held");
}

#[test]
fn proxy_in_front_of_postgres_cut_mid_session() {
    let pg = ok(Postgres::start(), "starting PostgreSQL");
    let proxy = ok(TcpProxy::start(pg.addr()), "starting the proxy");
    // A psql session through the proxy that sleeps, cut while it runs.
    let psql_bin = std::env::var("ROTOR_PG_BIN")
        .map(|b| format!("{b}/psql"))
        .unwrap_or_else(|_| "/usr/lib/postgresql/15/bin/psql".to_owned());
    let child = Command::new(psql_bin)
        .args([
            "-X",
            "-At",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
        ])
        .arg("-p")
        .arg(proxy.port().to_string())
        .args(["-c", "SELECT pg_sleep(30)"])
        .env("PGPASSWORD", pg.admin_password())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn psql");
    wait_until("psql connected through the proxy", || {
        proxy.connections() == 1
    });
    std::thread::sleep(Duration::from_millis(300));
    proxy.cut_all();
    let out = child.wait_with_output().expect("psql finishes");
    assert!(!out.status.success(), "psql survived the cut");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("server closed the connection") || err.contains("connection"),
        "{err}"
    );
    // The server itself is fine.
    assert_eq!(ok(pg.psql("SELECT 1"), "psql"), "1");
}

#[test]
fn free_port_and_wait_for_port() {
    let a = ok(free_port(), "free_port");
    let b = ok(free_port(), "free_port");
    assert_ne!(a, b, "the same port was handed out twice");
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, a)).expect("the port is free");
    let addr = listener.local_addr().expect("address");
    ok(wait_for_port(addr, Duration::from_secs(5)), "wait_for_port");
    drop(listener);
    let closed = SocketAddr::from((Ipv4Addr::LOCALHOST, b));
    assert!(wait_for_port(closed, Duration::from_millis(200)).is_err());
}
