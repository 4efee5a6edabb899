//! One truth about a secret's state, read the same by every surface: `rotor status` (table and
//! JSON), `--fail-on-overdue`, `rotor plan`, `rotor rotate --due`, and through a real
//! `rotor serve`: `/v1/secrets`, `rotor --server URL status`, the page at `/` and `/metrics`
//! (read with curl).
//!
//! Issues 9 (item 2: failed stays failed) and 10 (item 1: never rotated is overdue, item 2:
//! windows hold everywhere, item 3: grace and retire are visible).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::Env;
use jiff::Timestamp;

/// A `rotor token new` admin token and the `[[tokens]]` lines for the config.
fn admin_token() -> (String, String) {
    let out = Env::uninit("")
        .rotor(&["token", "new", "ci", "--scope", "admin"])
        .ok();
    let toml = out
        .stderr
        .lines()
        .skip_while(|l| !l.starts_with("[[tokens]]"))
        .collect::<Vec<_>>()
        .join("\n");
    (out.stdout.trim().to_owned(), toml)
}

/// `rotor serve` on a free port.
struct Serve {
    child: Child,
    url: String,
}

impl Serve {
    fn start(env: &Env, scheduler: bool) -> Serve {
        let port = rotor_test_support::free_port().expect("port");
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec!["serve", "--listen", &listen];
        if !scheduler {
            args.push("--no-scheduler");
        }
        let child = env
            .command(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rotor serve");
        rotor_test_support::wait_for_port(
            format!("127.0.0.1:{port}").parse().expect("addr"),
            Duration::from_secs(60),
        )
        .expect("rotor serve listens");
        Serve {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// `curl` of `path`, with the bearer token when given.
    fn curl(&self, path: &str, token: Option<&str>) -> String {
        let mut c = Command::new("curl");
        c.args(["-sS", "--fail-with-body"]);
        if let Some(t) = token {
            c.arg("-H").arg(format!("Authorization: Bearer {t}"));
        }
        let out = c.arg(format!("{}{path}", self.url)).output().expect("curl");
        assert!(
            out.status.success(),
            "curl {path}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `rotor --server URL ARGS` with `token`.
    fn remote(&self, env: &Env, token: &str, args: &[&str]) -> common::Run {
        let mut c = env.command(args);
        c.env("ROTOR_SERVER", &self.url).env("ROTOR_TOKEN", token);
        common::run_of(c.output().expect("rotor --server"))
    }

    fn stop(mut self) {
        self.child.kill().expect("stop rotor serve");
        self.child.wait().expect("reap rotor serve");
    }
}

/// The status rows (`rotor --format json status`) by name.
fn status_rows(env: &Env) -> Vec<serde_json::Value> {
    env.rotor(&["--format", "json", "status"])
        .ok()
        .json()
        .as_array()
        .expect("rows")
        .clone()
}

fn row<'a>(rows: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    rows.iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no row {name} in {rows:#?}"))
}

/// The value of the sample of `metric` labelled `secret="name"`.
fn sample(metrics: &str, metric: &str, name: &str) -> Option<String> {
    metrics.lines().find_map(|l| {
        let rest = l.strip_prefix(metric)?.strip_prefix('{')?;
        let (labels, value) = rest.split_once("} ")?;
        labels
            .split(',')
            .any(|kv| kv == format!("secret=\"{name}\""))
            .then(|| value.trim().to_owned())
    })
}

fn ts(v: &serde_json::Value) -> Timestamp {
    v.as_str()
        .unwrap_or_else(|| panic!("not a time: {v}"))
        .parse()
        .expect("timestamp")
}

// ---- issue 10 item 1: never rotated is overdue --------------------------------------------

#[test]
fn a_fresh_divan_inventory_is_overdue_on_every_surface() {
    let divan = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/divan.toml"),
    )
    .expect("examples/divan.toml");
    let (token, tokens) = admin_token();
    let env = Env::new(&format!("{divan}\n{tokens}\n"));
    let n = divan.matches("\n[secrets.").count();
    assert!(n >= 9, "the seed's inventory: {n} secrets");

    let status = env.rotor(&["status", "--fail-on-overdue"]);
    assert_eq!(status.code, 3, "{}\n{}", status.stdout, status.stderr);
    assert!(
        status.stderr.contains(&format!("{n} secret(s) overdue")),
        "{}",
        status.stderr
    );
    assert_eq!(
        status.stdout.matches("overdue (never rotated)").count(),
        n,
        "{}",
        status.stdout
    );
    let rows = status_rows(&env);
    assert_eq!(rows.len(), n);
    for r in &rows {
        assert_eq!(r["state"], "overdue", "{r:#}");
        assert_eq!(r["never_rotated"], true, "{r:#}");
        assert_eq!(r["overdue"], true, "{r:#}");
        assert!(r["last_rotated"].is_null(), "{r:#}");
        assert!(r["next_due"].is_string(), "{r:#}");
    }
    let plan = env.rotor(&["--format", "json", "plan"]).ok().json();
    assert_eq!(plan.as_array().map(Vec::len), Some(n), "{plan:#}");

    // Without the scheduler, which would start the first rotations at once.
    let serve = Serve::start(&env, false);
    let api: Vec<serde_json::Value> =
        serde_json::from_str(&serve.curl("/v1/secrets", Some(&token))).expect("json");
    let page = serve.curl("/", Some(&token));
    let metrics = serve.curl("/metrics", Some(&token));
    let remote = serve.remote(&env, &token, &["status"]);
    serve.stop();
    assert_eq!(remote.code, 0, "{}", remote.stderr);
    for r in &rows {
        let name = r["name"].as_str().expect("name");
        let a = row(&api, name);
        assert_eq!((&a["state"], &a["label"]), (&r["state"], &r["label"]));
        assert!(page.contains(&format!("data-secret=\"{name}\"")), "{page}");
        assert_eq!(
            sample(&metrics, "secret_overdue", name).as_deref(),
            Some("1")
        );
        assert_eq!(
            sample(&metrics, "secret_never_rotated", name).as_deref(),
            Some("1"),
            "{metrics}"
        );
        assert_eq!(
            sample(&metrics, "secret_last_rotated_timestamp", name),
            None
        );
    }
    assert_eq!(page.matches("overdue (never rotated)").count(), n, "{page}");
    assert!(!page.contains("next due: -"), "{page}");
    assert_eq!(
        remote.stdout.matches("overdue (never rotated)").count(),
        n,
        "{}",
        remote.stdout
    );

    // The alert outcome: the generated rules over the gauges this daemon exposed fire
    // SecretRotationOverdue once per secret, and nothing else.
    env.rotor(&["alerts", "-o", "rules.yml"]).ok();
    let firing = alerts_over(&env, &gauges(&metrics));
    assert_eq!(
        firing,
        vec![("SecretRotationOverdue".to_owned(), n)],
        "alerts firing on a fresh store"
    );
}

/// The gauge samples of an exposition, as promtool series (`name{labels}`, value).
fn gauges(metrics: &str) -> Vec<(String, String)> {
    let mut gauge = false;
    let mut out = Vec::new();
    for line in metrics.lines() {
        if let Some(t) = line.strip_prefix("# TYPE ") {
            gauge = t.ends_with(" gauge");
        } else if gauge
            && !line.starts_with('#')
            && let Some((series, value)) = line.rsplit_once(' ')
        {
            out.push((series.to_owned(), value.to_owned()));
        }
    }
    out
}

/// Runs `promtool test rules` over `rules.yml` in `env` with `series` held constant for ten
/// minutes, and returns the alerts firing at five minutes as (alertname, count).
fn alerts_over(env: &Env, series: &[(String, String)]) -> Vec<(String, usize)> {
    let input: String = series
        .iter()
        .map(|(s, v)| format!("      - series: '{s}'\n        values: '{v}x10'\n"))
        .collect();
    // Ask promtool for every (alertname, count) pair up to a bound: the one that matches is
    // the answer (promtool can only compare, not print).
    let names = [
        "SecretRotationOverdue",
        "SecretRotationFailed",
        "SecretRetireDue",
    ];
    let mut firing = Vec::new();
    for name in names {
        let count = (0..=series.len()).find(|k| {
            let samples = if *k == 0 {
                "[]".to_owned()
            } else {
                format!("\n          - labels: '{{alertname=\"{name}\"}}'\n            value: {k}")
            };
            let test = format!(
                "rule_files: [rules.yml]\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n{input}    promql_expr_test:\n      - expr: count by (alertname) (ALERTS{{alertstate=\"firing\",alertname=\"{name}\"}})\n        eval_time: 5m\n        exp_samples: {samples}\n"
            );
            std::fs::write(env.path("outcome_test.yml"), test).expect("write test");
            Command::new("promtool")
                .args(["test", "rules", "outcome_test.yml"])
                .current_dir(env.dir.path())
                .output()
                .expect("promtool (Debian package prometheus; run scripts/install-deps)")
                .status
                .success()
        });
        match count {
            Some(0) => {}
            Some(k) => firing.push((name.to_owned(), k)),
            None => panic!("promtool found no count of {name} in 0..={}", series.len()),
        }
    }
    firing
}

#[test]
fn a_declared_last_rotation_counts_and_is_audited_once() {
    let recent = Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_hours(24 * 10))
        .expect("ten days ago")
        .strftime("%Y-%m-%d")
        .to_string();
    let env = Env::new(&format!(
        r#"
[secrets.sendgrid]
kind = "manual"
tier = "medium"
last_rotated = "{recent}"

[secrets.oauth]
kind = "manual"
tier = "low"
last_rotated = "2020-01-01"
"#
    ));
    let rows = status_rows(&env);
    let sendgrid = row(&rows, "sendgrid");
    assert_eq!(sendgrid["state"], "ok", "{sendgrid:#}");
    assert_eq!(sendgrid["never_rotated"], false);
    assert_eq!(sendgrid["last_rotated_declared"], true);
    assert_eq!(
        ts(&sendgrid["last_rotated"]),
        format!("{recent}T00:00:00Z")
            .parse::<Timestamp>()
            .expect("ts")
    );
    let oauth = row(&rows, "oauth");
    assert_eq!(
        (&oauth["state"], &oauth["overdue"]),
        (&"overdue".into(), &true.into())
    );
    assert_eq!(oauth["never_rotated"], false);
    let r = env.rotor(&["status", "--fail-on-overdue"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("1 secret(s) overdue"), "{}", r.stderr);

    // Recorded as a person's declaration, once however often rotor reads it.
    env.rotor(&["plan"]).ok();
    let audit = env
        .rotor(&["--format", "json", "audit", "tail", "-n", "100"])
        .ok()
        .json();
    let declared: Vec<&serde_json::Value> = audit
        .as_array()
        .expect("records")
        .iter()
        .filter(|a| a["action"] == "secret.declared")
        .collect();
    assert_eq!(declared.len(), 2, "{audit:#}");
    let s = declared
        .iter()
        .find(|a| a["secret"] == "sendgrid")
        .expect("sendgrid declared");
    assert!(
        s["reason"]
            .as_str()
            .is_some_and(|r| r.contains(&format!("last_rotated = {recent}"))),
        "{s:#}"
    );
    assert_eq!(
        s["actor"].as_str().map(|a| a.starts_with("tester@")),
        Some(true)
    );
    env.audit_verifies();

    // Once rotor holds a value, the store's time wins over the declaration.
    env.rotor_stdin(&["put", "oauth"], Some(b"client-secret-value"))
        .ok();
    let oauth = row(&status_rows(&env), "oauth").clone();
    assert_eq!(oauth["last_rotated_declared"], false);
    assert_ne!(oauth["state"], "overdue");
}

// ---- issue 10 item 2: windows hold for plan, status and rotate --due ---------------------

#[test]
fn a_never_rotated_secret_waits_for_its_window_unless_named() {
    // A one-minute window three days from now (Kiritimati is UTC+14, no DST), so today is
    // never inside it.
    let tz = jiff::tz::TimeZone::get("Pacific/Kiritimati").expect("tz");
    let day = Timestamp::now()
        .to_zoned(tz.clone())
        .date()
        .checked_add(jiff::Span::new().days(3))
        .expect("date");
    let weekday = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
        [day.weekday().to_monday_zero_offset() as usize];
    let opens = day.at(3, 0, 0, 0).to_zoned(tz).expect("zoned").timestamp();
    let env = Env::new(&format!(
        r#"
[secrets.windowed]
kind = "random"
tier = "high"
automation = "automatic"
window = "{weekday}-{weekday} 03:00-03:01 Pacific/Kiritimati"
"#
    ));
    let rows = status_rows(&env);
    let r = row(&rows, "windowed");
    assert_eq!(ts(&r["next_due"]), opens, "{r:#}");
    assert_eq!(r["state"], "overdue");
    let plan = env
        .rotor(&["--format", "json", "plan", "--days", "7"])
        .ok()
        .json();
    assert_eq!(ts(&plan[0]["due"]), opens, "{plan:#}");

    let due = env.rotor(&["rotate", "--due"]).ok();
    assert!(due.stdout.contains("nothing to rotate"), "{}", due.stdout);
    assert!(env.holders("windowed", "current").is_empty());
    // A person naming it is not bound by the window.
    env.rotor(&["rotate", "windowed"]).ok();
    assert_eq!(env.holders("windowed", "current").len(), 1);
}

// ---- issue 10 item 3: grace and retire are visible -----------------------------------------

#[test]
fn grace_and_a_retire_that_is_due_are_visible() {
    let env = Env::new(
        r#"
[secrets.long]
kind = "random"
rotate_every = "1d"
grace = "1h"

[secrets.short]
kind = "random"
rotate_every = "1d"
grace = "1s"
"#,
    );
    for _ in 0..2 {
        env.rotor(&["rotate", "long", "short"]).ok();
    }
    std::thread::sleep(Duration::from_millis(1500));
    let rows = status_rows(&env);
    let long = row(&rows, "long");
    assert_eq!(long["state"], "in-grace", "{long:#}");
    let until = ts(&long["retire_after"]);
    assert!(until > Timestamp::now(), "{long:#}");
    let short = row(&rows, "short");
    assert_eq!(short["state"], "retire-due", "{short:#}");
    assert_eq!(short["hint"], "rotor retire --due", "{short:#}");

    let table = env.rotor(&["status"]).ok().stdout;
    let line = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} in {table}"))
            .to_owned()
    };
    assert!(
        line("long").contains(&format!(
            "in-grace (retire after {})",
            until.round(jiff::Unit::Second).expect("round")
        )),
        "{table}"
    );
    assert!(line("short").contains("retire-due"), "{table}");
    assert!(table.contains("rotor retire --due"), "{table}");
    let plan = env.rotor(&["plan"]).ok().stdout;
    assert!(plan.contains("retire"), "{plan}");

    env.rotor(&["retire", "--due"]).ok();
    let rows = status_rows(&env);
    assert_eq!(row(&rows, "short")["state"], "ok");
    assert_eq!(row(&rows, "long")["state"], "in-grace");
}

// ---- issue 9 item 2: failed stays failed, everywhere ---------------------------------------

#[test]
fn a_failed_rotation_reads_failed_everywhere_until_someone_acts() {
    let (token, tokens) = admin_token();
    // The target is a closed port, and the rotation fails before anything reaches it, at
    // create: with the `_a`/`_b` suffix this group role's login roles would be longer than
    // PostgreSQL's 63-byte names.
    let role = format!("app_{}", "x".repeat(58));
    let env = Env::new(&format!(
        r#"
[secrets.database]
kind = "postgres"
tier = "medium"
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

{tokens}
"#
    ));
    env.rotor_stdin(
        &["put", "postgres-admin"],
        Some(br#"{"username":"postgres","password":"admin-pw"}"#),
    )
    .ok();
    let failed = env.rotor(&["rotate", "database"]);
    assert_eq!(failed.code, 1, "{}", failed.stderr);

    let rows = status_rows(&env);
    let db = row(&rows, "database");
    assert_eq!(db["state"], "failed", "{db:#}");
    assert_eq!(db["failed"], true);
    let reason = db["reason"].as_str().expect("a reason").to_owned();
    assert!(reason.contains("step create failed"), "{reason}");
    let label = db["label"].as_str().expect("label").to_owned();
    assert!(label.starts_with("failed"), "{label}");
    let table = env.rotor(&["status"]).ok().stdout;
    assert!(table.contains(&label), "{table}");
    assert!(table.contains(&reason), "the reason is shown: {table}");

    // Through a daemon, and again after it restarts: the same state, from the store.
    for _ in 0..2 {
        let serve = Serve::start(&env, true);
        std::thread::sleep(Duration::from_millis(300));
        let api: Vec<serde_json::Value> =
            serde_json::from_str(&serve.curl("/v1/secrets", Some(&token))).expect("json");
        let page = serve.curl("/", Some(&token));
        let metrics = serve.curl("/metrics", Some(&token));
        let remote = serve.remote(&env, &token, &["status"]);
        serve.stop();
        let a = row(&api, "database");
        assert_eq!(
            (&a["state"], &a["label"], &a["reason"]),
            (&db["state"], &db["label"], &db["reason"])
        );
        assert!(page.contains(&label), "{page}");
        assert!(page.contains("data-state=\"failed\""), "{page}");
        assert!(!page.contains("data-state=\"in-progress\""), "{page}");
        assert!(remote.stdout.contains(&label), "{}", remote.stdout);
        assert_eq!(
            sample(&metrics, "secret_rotation_failed", "database").as_deref(),
            Some("1"),
            "{metrics}"
        );
        assert_eq!(
            sample(&metrics, "secret_rotation_in_progress", "database").as_deref(),
            None,
            "flags are present only while they hold"
        );
    }

    // A person acts: a good value put by hand ends the failed state.
    let good = format!(r#"{{"username":"{role}_a","password":"pw"}}"#);
    env.rotor_stdin(&["put", "database"], Some(good.as_bytes()))
        .ok();
    let db = row(&status_rows(&env), "database").clone();
    assert_eq!(db["failed"], false, "{db:#}");
    assert_eq!(db["state"], "ok", "{db:#}");
    let serve = Serve::start(&env, true);
    let metrics = serve.curl("/metrics", Some(&token));
    serve.stop();
    assert_eq!(
        sample(&metrics, "secret_rotation_failed", "database").as_deref(),
        None,
        "the failed flag is gone once a person acted"
    );
}
