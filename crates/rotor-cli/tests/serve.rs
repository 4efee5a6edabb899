//! `rotor serve` as a process, and the CLI talking to it with `--server`: tokens from
//! `rotor token new`, status, get and rotate through the API; `rotor alerts` accepted by
//! promtool; JWT prepublish through the CLI.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::Env;

const SECRETS: &str = r#"
[secrets.session]
kind = "random"
tier = "high"
grace = "0s"

[secrets.signing]
kind = "jwt"
algorithm = "ES256"
tier = "high"
jwks_max_age = "1s"
prepublish = "2s"
grace = "1h"
"#;

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

#[test]
fn serve_and_talk_to_it_with_server_mode() {
    let token_out = Env::uninit(SECRETS)
        .rotor(&["token", "new", "ci", "--scope", "admin"])
        .ok();
    let token = token_out.stdout.trim().to_owned();
    assert!(token.starts_with("rtr_"), "{token}");
    assert!(
        token_out.stderr.contains("[[tokens]]"),
        "{}",
        token_out.stderr
    );
    let toml_lines: String = token_out
        .stderr
        .lines()
        .skip_while(|l| !l.starts_with("[[tokens]]"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        !toml_lines.contains(&token),
        "the config gets the hash, never the token"
    );

    let port = rotor_test_support::free_port().expect("port");
    let env = Env::new(&format!("{SECRETS}\n{toml_lines}\n"));
    env.rotor(&["rotate", "session"]).ok();
    let mut server = env
        .command(&[
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--no-scheduler",
        ])
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
    let status = remote(&["--format", "json", "status"]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert!(status.stdout.contains("session"), "{}", status.stdout);
    let value = remote(&["get", "session", "--reveal"]);
    assert_eq!(value.stdout.trim(), env.reveal("session", "current"));
    let rotated = remote(&["rotate", "session", "--reason", "via the API"]);
    assert_eq!(rotated.code, 0, "{}", rotated.stderr);
    assert_ne!(
        remote(&["get", "session", "--reveal"]).stdout.trim(),
        value.stdout.trim()
    );
    let mut c = env.command(&["status"]);
    c.env("ROTOR_SERVER", &url).env("ROTOR_TOKEN", "rtr_wrong");
    let denied = common::run_of(c.output().expect("run"));
    assert_ne!(denied.code, 0);
    assert!(
        denied.stderr.contains("unauthorized") || denied.stderr.contains("401"),
        "{}",
        denied.stderr
    );
    server.kill().expect("stop");
    server.wait().expect("reap");
}

#[test]
fn alerts_pass_promtool() {
    let env = Env::uninit(SECRETS);
    env.rotor(&["alerts", "-o", "rules.yml"]).ok();
    let out = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(env.path("rules.yml"))
        .output()
        .expect("promtool (Debian package prometheus; run scripts/install-deps)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let rules = std::fs::read_to_string(env.path("rules.yml")).expect("rules");
    assert!(rules.contains("SecretRotationOverdue"));
    assert!(rules.contains("secret_last_rotated_timestamp"));
}

#[test]
fn prepublished_jwt_keys_wait_before_they_sign() {
    let env = Env::new(SECRETS);
    let first = env.rotor(&["rotate", "signing"]).ok();
    assert!(first.stdout.contains("activates after"), "{}", first.stdout);
    // Published (pending) but not yet signing.
    let jwks = env.rotor(&["jwks", "signing"]).ok().json();
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(1));
    assert!(env.holders("signing", "current").is_empty());
    let early = env.rotor(&["resume", "signing"]).ok();
    assert!(early.stdout.contains("activates after"), "{}", early.stdout);
    std::thread::sleep(Duration::from_millis(2100));
    env.rotor(&["resume", "signing"]).ok();
    assert_eq!(env.holders("signing", "current").len(), 1);
    env.rotor(&["jwt", "sign", "signing", "--claims", "{\"sub\":\"x\"}"])
        .ok();
}

/// `[server] tls_cert`/`tls_key`: the API is served over HTTPS (rustls). The test makes a
/// self-signed certificate with openssl and talks to the daemon with curl.
#[test]
fn serve_over_tls() {
    let env = Env::uninit("");
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
        ])
        .current_dir(env.dir.path())
        .output()
        .expect("openssl");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let port = rotor_test_support::free_port().expect("port");
    std::fs::write(
        env.path("rotor.toml"),
        format!("[server]\nlisten = \"127.0.0.1:{port}\"\ntls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n{SECRETS}"),
    )
    .expect("config");
    env.rotor(&["init"]).ok();
    let mut server = env
        .command(&["serve", "--no-scheduler"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    wait_for(port);
    let https = std::process::Command::new("curl")
        .args([
            "-sS",
            "-i",
            "--cacert",
            "cert.pem",
            &format!("https://127.0.0.1:{port}/healthz"),
        ])
        .current_dir(env.dir.path())
        .output()
        .expect("curl");
    let plain = std::process::Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://127.0.0.1:{port}/healthz"),
        ])
        .output()
        .expect("curl");
    server.kill().expect("stop");
    server.wait().expect("reap");
    assert!(
        https.status.success(),
        "{}",
        String::from_utf8_lossy(&https.stderr)
    );
    let answer = String::from_utf8_lossy(&https.stdout).to_ascii_lowercase();
    assert!(
        answer.contains("strict-transport-security: max-age="),
        "HSTS over TLS: {answer}"
    );
    assert_ne!(
        String::from_utf8_lossy(&plain.stdout).trim(),
        "200",
        "plain HTTP is not served"
    );
}
