//! The operator's console in a real browser (issue 13 item 1): headless Chromium (Debian's
//! `chromium`, from scripts/install-deps), driven over the DevTools protocol by
//! `tests/browser/cdp.py`, against a real `rotor serve`.
//!
//! It loads every page for secrets in each state (failed, retire due, overdue, never rotated,
//! in grace, ok), checks that what the page shows is what `rotor status` says, signs in with a
//! token through the form, clicks "Rotate now" and sees the new version current, retires a
//! due previous value, signs out, signs in with a token that only reads and gets a read-only
//! page, and checks that no secret value and no token ever reaches a page. Screenshots land
//! in `$CARGO_TARGET_DIR/console-screenshots/`.

mod common;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::Env;
use serde_json::{Value, json};

fn python() -> String {
    std::env::var("ROTOR_PYTHON").unwrap_or_else(|_| {
        panic!("ROTOR_PYTHON is not set: run scripts/test, or set ROTOR_PYTHON to a python 3")
    })
}

/// `rotor token new NAME --scope SCOPE`: the token and its `[[tokens]]` lines.
fn token(name: &str, scope: &str) -> (String, String) {
    let out = Env::uninit("")
        .rotor(&["token", "new", name, "--scope", scope])
        .ok();
    let toml = out
        .stderr
        .lines()
        .skip_while(|l| !l.starts_with("[[tokens]]"))
        .collect::<Vec<_>>()
        .join("\n");
    (out.stdout.trim().to_owned(), toml)
}

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target dir")
        .join("console-screenshots")
}

/// Runs the browser steps; returns `{key: html, key.url: url}`.
fn browse(steps: &Value) -> serde_json::Map<String, Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/cdp.py");
    let mut child = Command::new(python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(steps.to_string().as_bytes())
        .expect("steps");
    let out = child.wait_with_output().expect("browser run");
    assert!(
        out.status.success(),
        "the browser run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    match serde_json::from_slice(&out.stdout).expect("browser output") {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn page<'a>(pages: &'a serde_json::Map<String, Value>, key: &str) -> &'a str {
    pages[key]
        .as_str()
        .unwrap_or_else(|| panic!("no page {key}"))
}

fn status(env: &Env) -> Vec<Value> {
    match env.rotor(&["--format", "json", "status"]).ok().json() {
        Value::Array(rows) => rows,
        other => panic!("status: {other}"),
    }
}

#[test]
fn the_console_in_headless_chromium() {
    let (admin, admin_toml) = token("ops", "admin");
    let (viewer, viewer_toml) = token("viewer", "read:webhook-*");
    let role = format!("app_{}", "x".repeat(58));
    let env = Env::new(&format!(
        r#"
# The overview is public here (as an operator may choose); secret pages need a session.
[server]
public = ["health", "jwks", "page"]

[secrets.session-key]
kind = "random"
owner = "platform"
tier = "high"
grace = "0s"

[secrets.api-signing]
kind = "random"
owner = "payments"
tier = "medium"
description = "HMAC for partner webhooks"
grace = "1h"

[secrets.short-grace]
kind = "random"
owner = "platform"
rotate_every = "1d"
grace = "1s"

[secrets.webhook-secret]
kind = "random"
owner = "integrations"
tier = "low"

[secrets.legacy-vendor]
kind = "manual"
owner = "finance"
tier = "low"
last_rotated = "2020-01-01"

# Fails at create (the role's login names would exceed PostgreSQL's 63 bytes).
[secrets.database]
kind = "postgres"
owner = "dba"
tier = "high"
strategy = "alternating"
url = "postgres://127.0.0.1:9/app"
role = "{role}"
admin = "postgres-admin"
grace = "0s"

[secrets.postgres-admin]
kind = "postgres"
tier = "medium"
automation = "manual"
url = "postgres://127.0.0.1:9/postgres"
role = "postgres"

{admin_toml}
{viewer_toml}
"#
    ));
    env.rotor_stdin(
        &["put", "postgres-admin"],
        Some(br#"{"username":"postgres","password":"admin-pw-never-shown"}"#),
    )
    .ok();
    env.rotor(&["rotate", "session-key", "api-signing"]).ok();
    env.rotor(&["rotate", "api-signing"]).ok();
    for _ in 0..2 {
        env.rotor(&["rotate", "short-grace"]).ok();
    }
    assert_eq!(env.rotor(&["rotate", "database"]).code, 1);
    std::thread::sleep(Duration::from_millis(1_100));

    let rows = status(&env);
    let state = |name: &str| {
        rows.iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no row {name}"))
            .clone()
    };
    for (name, want) in [
        ("database", "failed"),
        ("short-grace", "retire-due"),
        ("legacy-vendor", "overdue"),
        ("webhook-secret", "overdue"),
        ("api-signing", "in-grace"),
        ("session-key", "ok"),
    ] {
        assert_eq!(state(name)["state"], want, "{name}: {:#}", state(name));
    }
    // Every value any stage holds: none may reach a page.
    let mut values = vec!["admin-pw-never-shown".to_owned()];
    for name in ["session-key", "api-signing", "short-grace"] {
        values.push(env.reveal(name, "current"));
    }
    values.push(env.reveal("api-signing", "previous"));
    let before_rotate = env.holders("session-key", "current");

    let port = rotor_test_support::free_port().expect("port");
    let listen = format!("127.0.0.1:{port}");
    let _serve = Serve(
        env.command(&["serve", "--listen", &listen, "--no-scheduler"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rotor serve"),
    );
    rotor_test_support::wait_for_port(listen.parse().expect("addr"), Duration::from_secs(60))
        .expect("rotor serve listens");
    let url = |p: &str| format!("http://{listen}{p}");
    let shots = screenshots();
    let shot = |n: &str| json!({"op": "shot", "path": shots.join(n)});
    let goto = |p: &str| json!({"op": "goto", "url": url(p)});
    let html = |k: &str| json!({"op": "html", "key": k});
    let sign_in = |t: &str| {
        [
            goto("/console/sign-in"),
            json!({"op": "fill", "selector": "#token", "value": t}),
            json!({"op": "click", "selector": "#sign-in button[type=submit]"}),
        ]
    };
    let mut steps = vec![
        goto("/"),
        html("public"),
        goto("/console/secrets/session-key"),
        html("redirect"),
        json!({"op": "fill", "selector": "#token", "value": admin}),
        json!({"op": "click", "selector": "#sign-in button[type=submit]"}),
        html("signed-in"),
        goto("/"),
        html("overview"),
        shot("overview.png"),
    ];
    for name in [
        "database",
        "api-signing",
        "short-grace",
        "webhook-secret",
        "legacy-vendor",
    ] {
        steps.push(goto(&format!("/console/secrets/{name}")));
        steps.push(html(name));
    }
    steps.extend([
        goto("/console/secrets/database"),
        shot("secret-failed.png"),
        goto("/console/secrets/api-signing"),
        shot("secret-in-grace.png"),
        goto("/console/audit"),
        html("audit"),
        shot("audit.png"),
        goto("/console/secrets/session-key"),
        json!({"op": "click", "selector": "#rotate"}),
        html("rotated"),
        shot("secret-rotated.png"),
        goto("/console/secrets/short-grace"),
        json!({"op": "click", "selector": "#retire"}),
        html("retired"),
        // Emergency: the typed confirmation must be the name; then it rotates at once.
        goto("/console/secrets/api-signing"),
        json!({"op": "fill", "selector": "#em-reason", "value": "key in a public gist"}),
        json!({"op": "fill", "selector": "#em-confirm", "value": "api"}),
        json!({"op": "click", "selector": "#emergency-form button[type=submit]"}),
        html("emergency-unconfirmed"),
        goto("/console/secrets/api-signing"),
        json!({"op": "fill", "selector": "#em-reason", "value": "key in a public gist"}),
        json!({"op": "fill", "selector": "#em-confirm", "value": "api-signing"}),
        json!({"op": "click", "selector": "#emergency-form button[type=submit]"}),
        html("emergency"),
        // Live updates: the page rotates its secret with a fetch (no navigation); the stage
        // change reaches it over /console/events and its <main> is fetched anew.
        goto("/console/secrets/session-key"),
        json!({"op": "eval", "js": "window.before = document.querySelector('main'); \
            const f = document.querySelector('#rotate-form'); \
            fetch(f.action, {method: 'POST', body: new URLSearchParams(new FormData(f))}); 1"}),
        json!({"op": "wait_for", "js": "document.querySelector('main') !== window.before"}),
        html("live"),
        // A form whose CSRF token was tampered with does nothing.
        goto("/console/secrets/session-key"),
        json!({"op": "fill", "selector": "#rotate-form input[name=csrf]", "value": "forged"}),
        json!({"op": "click", "selector": "#rotate"}),
        html("csrf"),
        json!({"op": "click", "selector": "header form button[type=submit]"}),
        html("signed-out"),
    ]);
    steps.extend(sign_in(&viewer));
    steps.extend([
        goto("/console/secrets/webhook-secret"),
        html("read-only"),
        // A secret outside the token's scopes reads like one that does not exist.
        goto("/console/secrets/session-key"),
        html("not-visible"),
        shot("secret-read-only.png"),
        goto("/console/audit"),
        html("audit-forbidden"),
        goto("/console/sign-in"),
        shot("sign-in.png"),
    ]);
    let pages = browse(&Value::Array(steps));

    // No value and no token on any page.
    for (key, body) in &pages {
        let body = body.as_str().unwrap_or_default();
        for v in values.iter().chain([&admin, &viewer]) {
            assert!(
                !body.contains(v.as_str()),
                "page {key} shows a secret value or token"
            );
        }
    }

    // The public overview: every secret with the state `rotor status` gives, most severe
    // first, counts by state, exact times beside relative ones; no links to detail pages.
    let public = page(&pages, "public");
    for r in &rows {
        let name = r["name"].as_str().expect("name");
        let want = format!(
            "data-secret=\"{name}\" data-state=\"{}\"",
            r["state"].as_str().expect("state")
        );
        assert!(public.contains(&want), "{want} in {public}");
    }
    let at = |name: &str| {
        public
            .find(&format!("data-secret=\"{name}\""))
            .unwrap_or_else(|| panic!("{name} listed"))
    };
    let order = [
        "database",
        "short-grace",
        "legacy-vendor",
        "webhook-secret",
        "api-signing",
        "session-key",
    ];
    for w in order.windows(2) {
        assert!(at(w[0]) < at(w[1]), "{} is listed before {}", w[0], w[1]);
    }
    for st in [
        "failed",
        "in-progress",
        "retire-due",
        "overdue",
        "due",
        "in-grace",
        "ok",
    ] {
        let n = rows.iter().filter(|r| r["state"] == st).count();
        let want = format!("<span class=\"n\">{n}</span> {st}");
        assert!(public.contains(&want), "{want} in {public}");
    }
    let never = rows.iter().filter(|r| r["never_rotated"] == true).count();
    assert!(public.contains(&format!("<span class=\"n\">{never}</span> never-rotated")));
    assert!(public.contains("<time datetime=\"") && public.contains(" ago</time>"));
    assert!(public.contains("owner") || public.contains("platform"));
    assert!(
        !public.contains("/console/secrets/"),
        "no detail links before sign-in"
    );

    // A detail page first asks for a sign-in, then returns to where it was going.
    let redirect = page(&pages, "redirect.url");
    assert!(redirect.contains("/console/sign-in?next="), "{redirect}");
    let landed = page(&pages, "signed-in.url");
    assert!(landed.ends_with("/console/secrets/session-key"), "{landed}");
    assert!(page(&pages, "overview").contains("signed in as <strong>ops</strong>"));

    // Each state's page shows what it needs.
    let db = page(&pages, "database");
    assert!(db.contains("data-state=\"failed\""));
    assert!(
        db.contains("step create failed"),
        "the failure reason: {db}"
    );
    assert!(db.contains("class=\"failure\""));
    let grace = page(&pages, "api-signing");
    assert!(grace.contains("Grace ends") && grace.contains("id=\"retire-after\""));
    assert!(grace.contains("stage-current") && grace.contains("stage-previous"));
    assert!(grace.contains("HMAC for partner webhooks"));
    for step in ["create", "set", "test", "finish"] {
        assert!(
            grace.contains(&format!("<td>{step}</td>")),
            "step {step} in the history"
        );
    }
    let due = page(&pages, "short-grace");
    assert!(due.contains("data-state=\"retire-due\"") && due.contains("id=\"retire\""));
    assert!(page(&pages, "webhook-secret").contains("No stored version yet."));
    let legacy = page(&pages, "legacy-vendor");
    assert!(legacy.contains("(declared)") && !legacy.contains("id=\"rotate\""));

    // The audit page verifies the chain.
    let audit = page(&pages, "audit");
    assert!(
        audit.contains("id=\"verification\" class=\"verified\""),
        "{audit}"
    );
    assert!(audit.contains("rotation.failed") && audit.contains("secret.put"));

    // Rotate now: a new current version, the one `rotor history` names next after the
    // first (newest first: the live-update rotation, this one, the first).
    let rotated = page(&pages, "rotated");
    let ids: Vec<String> = env.history("session-key")["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| v["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert_eq!(ids[2], before_rotate[0], "{ids:?}");
    let after = vec![ids[1].clone()];
    assert!(rotated.contains("Rotated: the new version is current."));
    assert!(
        rotated.contains(&format!(
            "<tr data-version=\"{}\"><td><code>{}</code></td><td><span class=\"stage stage-current\">",
            after[0], after[0]
        )),
        "the new version is shown current: {rotated}"
    );
    assert_ne!(env.reveal("session-key", "current"), values[1]);
    assert!(!rotated.contains(&env.reveal("session-key", "current")));

    // Retire: the previous value is gone.
    assert!(page(&pages, "retired").contains("Retired: the previous value is gone."));
    assert!(env.holders("short-grace", "previous").is_empty());

    // Emergency: refused until the name is typed, then the old value is dead at once.
    let refused = page(&pages, "emergency-unconfirmed");
    assert!(refused.contains("nothing was rotated"), "{refused}");
    let em = page(&pages, "emergency");
    assert!(em.contains("Emergency rotation done"), "{em}");
    assert!(env.holders("api-signing", "previous").is_empty());
    let history = env.history("api-signing");
    assert!(
        history.to_string().contains("key in a public gist"),
        "{history:#}"
    );
    // The live update shows the version the page's own fetch made current.
    let live_current = env.holders("session-key", "current");
    assert_ne!(live_current, after, "the fetch rotated");
    let live = page(&pages, "live");
    assert!(
        live.contains(&format!("<tr data-version=\"{}\">", live_current[0])),
        "the refreshed page shows the new version: {live}"
    );
    // The forged CSRF token: refused, and no new version.
    let csrf = page(&pages, "csrf");
    assert!(csrf.contains("CSRF token does not match"), "{csrf}");
    assert_eq!(env.holders("session-key", "current"), live_current);

    // Signed out, then a token that only reads: a read-only page and no audit log.
    let out = page(&pages, "signed-out");
    assert!(!out.contains("signed in as") && out.contains("/console/sign-in"));
    let ro = page(&pages, "read-only");
    assert!(ro.contains("signed in as <strong>viewer</strong>"));
    assert!(ro.contains("Read-only") && !ro.contains("id=\"rotate\""));
    let hidden = page(&pages, "not-visible");
    assert!(
        hidden.contains("no secret named session-key") && !hidden.contains("data-version"),
        "{hidden}"
    );
    assert!(page(&pages, "audit-forbidden").contains("needs scope"));

    for png in [
        "overview.png",
        "secret-failed.png",
        "secret-in-grace.png",
        "audit.png",
        "secret-rotated.png",
        "secret-read-only.png",
        "sign-in.png",
    ] {
        let bytes = std::fs::read(shots.join(png)).expect("screenshot");
        assert!(bytes.starts_with(b"\x89PNG"), "{png} is a PNG");
    }
    env.audit_verifies();
}
