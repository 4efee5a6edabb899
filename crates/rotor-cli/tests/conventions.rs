//! CLI conventions through the real binary: exit codes, `--format json` everywhere (errors
//! included), no colour into pipes, completions and the man page, an honest plan, and errors
//! said once.

mod common;

use std::io::Read as _;
use std::process::Stdio;

use common::{CONFIG, Env};

#[test]
fn usage_mistakes_exit_2() {
    let env = Env::new(CONFIG);

    let missing = env.rotor(&["--config", "nope.toml", "status"]);
    assert_eq!(missing.code, 2, "missing config: {}", missing.stderr);
    assert!(missing.stderr.contains("nope.toml"), "{}", missing.stderr);

    let scope = env.rotor(&["token", "new", "ci", "--scope", "bogus"]);
    assert_eq!(scope.code, 2, "bad scope: {}", scope.stderr);
    assert!(scope.stderr.contains("action:glob"), "{}", scope.stderr);

    let no_reason = env.rotor(&["rotate", "--emergency", "session"]);
    assert_eq!(
        no_reason.code, 2,
        "--emergency without --reason: {}",
        no_reason.stderr
    );
    assert!(
        no_reason.stderr.contains("--reason"),
        "{}",
        no_reason.stderr
    );

    let manual = env.rotor(&["rotate", "sendgrid"]);
    assert_eq!(
        manual.code, 2,
        "rotate of a manual secret: {}",
        manual.stderr
    );
    assert!(
        manual.stderr.contains("rotor put sendgrid"),
        "{}",
        manual.stderr
    );
}

#[test]
fn errors_are_one_json_object_with_format_json() {
    let env = Env::new(CONFIG);
    let r = env.rotor(&["--format", "json", "get", "nope"]);
    assert_eq!(r.code, 2);
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(lines[0]).expect("stderr is JSON");
    assert_eq!(v["error"]["code"], "usage");
    assert_eq!(v["error"]["exit_code"], 2);
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("nope")),
        "{v}"
    );
}

#[test]
fn printing_commands_honour_format_json() {
    let env = Env::new(CONFIG);

    let put = env
        .rotor_stdin(
            &["--format", "json", "put", "sendgrid"],
            Some(b"SG.not-a-real-key-but-long-enough"),
        )
        .ok()
        .json();
    assert_eq!(put["secret"], "sendgrid");
    assert_eq!(put["stage"], "current");
    assert!(put["version"].is_string(), "{put}");
    assert!(
        !put.to_string().contains("SG.not-a-real"),
        "no value in the output"
    );

    let token = env
        .rotor(&[
            "--format", "json", "token", "new", "ci", "--scope", "read:*",
        ])
        .ok();
    let token = token.json();
    assert!(
        token["token"].as_str().is_some_and(|t| t.len() > 20),
        "{token}"
    );
    assert!(
        token["config"]
            .as_str()
            .is_some_and(|t| t.contains("[[tokens]]")),
        "{token}"
    );

    let render = env.rotor(&["--format", "json", "render"]).ok().json();
    assert_eq!(render, serde_json::json!([]));

    let alerts = env.rotor(&["--format", "json", "alerts"]).ok().json();
    let rules = alerts["groups"][0]["rules"].as_array().expect("rules");
    assert!(
        rules
            .iter()
            .any(|r| r["alert"] == "SecretRotationFailed"
                && r["expr"] == "secret_rotation_failed == 1"),
        "{alerts}"
    );
}

#[test]
fn no_colour_into_a_pipe() {
    let env = Env::new(CONFIG);
    // -vv logs each step on stderr, which is a pipe here: no escape sequences in it.
    let r = env.rotor(&["-vv", "rotate", "session"]).ok();
    assert!(!r.stderr.is_empty(), "debug logging expected");
    assert!(
        !r.stderr.contains('\u{1b}'),
        "ANSI in a pipe: {:?}",
        r.stderr
    );
}

#[test]
fn completions_and_man_page_come_from_the_parser() {
    let env = Env::uninit(CONFIG);
    for shell in ["bash", "zsh", "fish"] {
        let r = env.rotor(&["completions", shell]).ok();
        for sub in ["rotate", "retire", "serve", "completions"] {
            assert!(r.stdout.contains(sub), "{shell} completion lacks {sub}");
        }
    }
    // No config or server needed, even when one is set.
    let r = env
        .rotor(&["--server", "http://127.0.0.1:9", "completions", "bash"])
        .ok();
    assert!(r.stdout.contains("rotor"));
    let man = env.rotor(&["man"]).ok();
    assert!(
        man.stdout.starts_with(".ie") || man.stdout.contains(".TH rotor"),
        "roff"
    );
    assert!(man.stdout.contains("rotate"));
}

#[test]
fn plan_says_how_each_secret_is_rotated() {
    let env = Env::new(CONFIG);
    let plan = env.rotor(&["--format", "json", "plan"]).ok().json();
    let who = |name: &str| {
        plan.as_array()
            .expect("entries")
            .iter()
            .find(|e| e["name"] == name && e["action"] == "rotate")
            .unwrap_or_else(|| panic!("{name} not planned: {plan}"))["who"]
            .as_str()
            .expect("who")
            .to_owned()
    };
    assert_eq!(
        who("sendgrid"),
        "a person supplies the new value: `rotor put sendgrid`"
    );
    assert_eq!(
        who("pepper"),
        "a person runs `rotor rotate pepper --confirm`"
    );
    assert_eq!(who("session"), "rotor rotates it");
    let table = env.rotor(&["plan"]).ok();
    assert!(
        table.stdout.contains("`rotor put sendgrid`"),
        "{}",
        table.stdout
    );
}

#[test]
fn a_closed_stdout_ends_quietly() {
    let env = Env::new(CONFIG);
    let mut child = env
        .command(&["completions", "bash"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take()); // like `| head -0`
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("read stderr");
    child.wait().expect("wait");
    assert!(!err.contains("Broken pipe"), "{err}");
}

#[test]
fn serve_says_where_it_listens_and_errors_once() {
    let env = Env::new(CONFIG);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let addr = format!("127.0.0.1:{port}");
    let r = env.rotor(&["serve", "--no-scheduler", "--listen", &addr]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let line = r
        .stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .expect("error line");
    assert_eq!(line.matches("os error 98").count(), 1, "said once: {line}");

    let mut child = env
        .command(&["serve", "--no-scheduler", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let mut stderr = child.stderr.take().expect("stderr");
    let mut seen = String::new();
    let mut buf = [0u8; 256];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !seen.contains("listening on http://127.0.0.1:") && std::time::Instant::now() < deadline {
        let n = stderr.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        seen.contains("rotor serve: listening on http://127.0.0.1:"),
        "{seen}"
    );
}

#[test]
fn a_retry_is_said_once() {
    let env = Env::new(
        r#"
[secrets.cache]
kind = "redis"
url = "redis://127.0.0.1:9"
user = "app"
rotate_every = "1d"
grace = "0s"
"#,
    );
    env.rotor_stdin(
        &["put", "cache"],
        Some(br#"{"username": "app", "password": "initial-password-0123456789"}"#),
    )
    .ok();
    let r = env.rotor(&["rotate", "cache"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let retry_lines: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.contains("retrying"))
        .collect();
    assert!(!retry_lines.is_empty(), "the target is down: {}", r.stderr);
    // Each retry is one progress line, never also a WARN log line.
    assert!(
        retry_lines.iter().all(|l| !l.contains("WARN")),
        "{retry_lines:#?}"
    );
    let attempts: Vec<&str> = retry_lines
        .iter()
        .filter_map(|l| l.split("(attempt ").nth(1))
        .collect();
    let mut unique = attempts.clone();
    unique.dedup();
    assert_eq!(attempts, unique, "each attempt once: {retry_lines:#?}");
}
