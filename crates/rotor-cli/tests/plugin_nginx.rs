//! `kind = "command"` end to end: the `rotor` binary rotates HTTP basic auth of a real nginx
//! through the reference plugin `examples/plugins/nginx-htpasswd`, and curl judges: the new
//! value works, the old one still works during grace, and is refused after retire.

mod common;

use common::Env;
use common::plugin::{credential, htpasswd_users, status, web_config};
use rotor_test_support::Nginx;

#[test]
fn nginx_basic_auth_rotates_with_grace_and_retire() {
    let nginx = Nginx::start().expect("nginx (run scripts/install-deps)");
    let env = Env::new(&web_config(&nginx, "3s", &[]));
    // Nobody gets in before rotor set a value.
    assert_eq!(nginx.curl_status("app_a", "guess").expect("curl"), 401);

    // First rotation: nothing to keep, so it completes and app_a is the one user.
    let first = env.rotor(&["-v", "rotate", "web"]).ok();
    let v1 = credential(&env, "current");
    assert_eq!(v1.0, "app_a");
    assert_eq!(status(&nginx, &v1), 200, "the new value works");
    assert_eq!(htpasswd_users(&nginx), ["app_a"]);

    // Second rotation: app_b is added next to app_a, both work during grace.
    let second = env.rotor(&["-v", "rotate", "web"]).ok();
    let v2 = credential(&env, "current");
    assert_eq!(v2.0, "app_b");
    assert_eq!(
        credential(&env, "previous"),
        v1,
        "the old value is previous"
    );
    assert_eq!(status(&nginx, &v2), 200, "the new value works");
    assert_eq!(status(&nginx, &v1), 200, "the old value works in grace");
    assert_eq!(htpasswd_users(&nginx), ["app_a", "app_b"]);
    assert_eq!(env.history("web")["rotations"][0]["status"], "grace");

    // After grace, retire removes app_a and the plugin proves nginx refuses it.
    std::thread::sleep(std::time::Duration::from_millis(3200));
    let retired = env.rotor(&["-v", "retire", "--due"]).ok();
    assert_eq!(
        status(&nginx, &v1),
        401,
        "the old value is refused after retire"
    );
    assert_eq!(status(&nginx, &v2), 200, "the new value still works");
    assert_eq!(htpasswd_users(&nginx), ["app_b"]);
    assert_eq!(env.history("web")["rotations"][0]["status"], "completed");

    // A third rotation goes back to app_a with a new value.
    env.rotor(&["rotate", "web"]).ok();
    let v3 = credential(&env, "current");
    assert_eq!(v3.0, "app_a");
    assert_ne!(v3.1, v1.1);
    assert_eq!(status(&nginx, &v3), 200);
    assert_eq!(
        status(&nginx, &v1),
        401,
        "an old value of the same user is dead"
    );

    // The plugin's stderr was logged (redacted); no value in any output, file or audit.
    let logged = format!("{}{}{}", first.stderr, second.stderr, retired.stderr);
    assert!(
        logged.contains("nginx-htpasswd: app_b accepted by nginx"),
        "{logged}"
    );
    let audit = env
        .rotor(&["--format", "json", "audit", "tail", "-n", "100"])
        .ok()
        .stdout;
    let htpasswd = std::fs::read_to_string(nginx.htpasswd()).expect("htpasswd");
    for v in [&v1.1, &v2.1, &v3.1] {
        assert!(!logged.contains(v.as_str()), "a value in rotor's log");
        assert!(!audit.contains(v.as_str()), "a value in the audit");
        assert!(
            !htpasswd.contains(v.as_str()),
            "a plaintext value in htpasswd"
        );
    }
    env.audit_verifies();
}

#[test]
fn probe_reports_what_would_block_a_rotation() {
    let nginx = Nginx::start().expect("nginx (run scripts/install-deps)");
    let mut config = web_config(&nginx, "1h", &[]);
    config.push_str(
        r#"
[secrets.missing_plugin]
kind = "command"
command = ["/nonexistent/rotor-plugin"]
tier = "low"

[secrets.session]
kind = "random"
tier = "low"
"#,
    );
    let env = Env::new(&config);
    env.rotor(&["rotate", "web"]).ok();

    // All is well: the plugin's checks, including that nginx takes the current value.
    let ok = env.rotor(&["probe", "web", "session"]).ok();
    assert!(ok.stdout.contains("web: ok"), "{}", ok.stdout);
    assert!(
        ok.stdout
            .contains("ok: the current value of app_a is accepted"),
        "{}",
        ok.stdout
    );
    assert!(ok.stdout.contains("session: ok"), "{}", ok.stdout);

    // The plugin cannot be started.
    let r = env.rotor(&["probe", "missing_plugin"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("missing_plugin: blocked"), "{}", r.stdout);
    assert!(
        r.stdout.contains("cannot start /nonexistent/rotor-plugin"),
        "{}",
        r.stdout
    );

    // Someone removed rotor's user from the file: the current value is refused.
    let current = credential(&env, "current");
    std::fs::write(nginx.htpasswd(), "").expect("empty htpasswd");
    let r = env.rotor(&["--format", "json", "probe", "--all"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let reports = r.json();
    let web = &reports[0];
    assert_eq!(web["secret"], "web");
    assert!(
        web["blocked"]
            .as_str()
            .is_some_and(|b| b.contains("the current value of app_a is refused (401)")),
        "{web}"
    );
    assert!(
        reports[2]["blocked"].is_null(),
        "session is fine: {reports}"
    );

    // `rotate --dry-run` probes too, and says the rotation would not get through.
    let dry = env.rotor(&["rotate", "web", "--dry-run"]);
    assert_eq!(dry.code, 1, "{}", dry.stderr);
    assert!(dry.stdout.contains("probe    BLOCKED"), "{}", dry.stdout);

    // nginx is down: unreachable.
    drop(nginx);
    let r = env.rotor(&["probe", "web"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("BLOCKED: plugin"), "{}", r.stdout);
    assert!(r.stdout.contains("exit 75, transient"), "{}", r.stdout);
    assert!(
        r.stdout.contains("cannot reach http://127.0.0.1:"),
        "{}",
        r.stdout
    );
    for out in [&ok.stdout, &r.stdout, &dry.stdout] {
        assert!(!out.contains(&current.1), "a value in probe output");
    }
}

/// A loopback webhook receiver: answers 200 to every POST and hands each body to the test.
fn webhook() -> (u16, std::sync::mpsc::Receiver<String>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Headers, then Content-Length bytes of body.
            let body = loop {
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => break None,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
                let text = String::from_utf8_lossy(&buf).into_owned();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        break Some(body.to_owned());
                    }
                }
            };
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            if let Some(b) = body {
                let _ = tx.send(b);
            }
        }
    });
    (port, rx)
}

#[test]
fn serve_probes_on_start_and_reports_a_blocked_secret() {
    let nginx = Nginx::start().expect("nginx (run scripts/install-deps)");
    let (hook_port, hooks) = webhook();
    let config = format!(
        "[server]\npublic = [\"health\", \"metrics\"]\n{}\n[[notify]]\nurl = \"http://127.0.0.1:{hook_port}/hook\"\nformat = \"json\"\nevents = [\"blocked\"]\n",
        web_config(&nginx, "1h", &[])
    );
    let env = Env::new(&config);
    env.rotor(&["rotate", "web"]).ok();
    drop(nginx); // the target goes away long before the secret is due
    let port = rotor_test_support::free_port().expect("port");
    let mut server = env
        .command(&["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("serve");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let metrics = loop {
        let out = std::process::Command::new("curl")
            .args(["-s", &format!("http://127.0.0.1:{port}/metrics")])
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("secret_rotation_blocked{secret=\"web\"") && text.contains("} 1\n") {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never blocked: {text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let line = metrics
        .lines()
        .find(|l| l.starts_with("secret_rotation_blocked{secret=\"web\""))
        .expect("gauge line");
    assert!(line.ends_with(" 1"), "{line}");
    let note = hooks
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("a blocked notification");
    let note: serde_json::Value = serde_json::from_str(&note).expect("JSON body");
    assert_eq!(note["event"], "blocked");
    assert_eq!(note["secret"], "web");
    let message = note["message"].as_str().expect("message");
    assert!(message.contains("would not get through"), "{message}");
    assert!(
        message.contains("cannot reach http://127.0.0.1:"),
        "{message}"
    );
    assert!(message.contains("rotor probe web"), "{message}");
    let _ = server.kill();
    let _ = server.wait();
}
