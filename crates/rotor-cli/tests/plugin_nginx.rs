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
