//! `rotor check` finds every problem at once, with the help that fixes each (issue 10 item 9),
//! and refuses the config mistakes that would leave a rotation failing or stuck at rotate time
//! (issue 9 item 1).

use std::path::Path;

use rotor_core::config;

/// The diagnostics of `text` (which must be refused) as `line:col secret message | help`.
fn errors_with(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    let err = config::parse(text, Path::new("/etc/rotor/rotor.toml"), env)
        .expect_err("config should be refused");
    err.diagnostics
        .iter()
        .map(|d| {
            format!(
                "{}:{} {} {} | {}",
                d.line,
                d.column,
                d.secret.as_deref().unwrap_or("-"),
                d.message,
                d.help.as_deref().unwrap_or("")
            )
        })
        .collect()
}

fn errors(text: &str) -> Vec<String> {
    errors_with(text, &|_| None)
}

/// Every wanted `(message fragment, help fragment)` appears in its own diagnostic, and there
/// are no others.
fn expect(got: &[String], want: &[(&str, &str)]) {
    assert_eq!(got.len(), want.len(), "diagnostics: {got:#?}");
    for (msg, help) in want {
        assert!(
            got.iter().any(|g| {
                let (m, h) = g.split_once(" | ").unwrap_or((g, ""));
                m.contains(msg) && h.contains(help)
            }),
            "want {msg:?} with help {help:?} in {got:#?}"
        );
    }
}

fn valid(text: &str) -> rotor_core::Config {
    config::parse(text, Path::new("/etc/rotor/rotor.toml"), &|_| None)
        .unwrap_or_else(|e| panic!("should be valid: {e}"))
}

// ---- issue 10 item 9: every error at once -------------------------------------------------

#[test]
fn a_bad_grace_is_reported_next_to_a_bad_tier_and_a_bad_length() {
    let got = errors(
        r#"
[secrets.a]
kind = "random"
tier = "urgent"
length = "12"
grace = "5x"
"#,
    );
    expect(
        &got,
        &[
            ("unknown tier `urgent`", "high (90d)"),
            ("`length` must be a whole number", "no quotes"),
            ("`grace`: bad duration \"5x\"", ""),
        ],
    );
}

#[test]
fn a_missing_admin_is_reported_next_to_window_and_grace_errors() {
    let got = errors(
        r#"
[secrets.db]
kind = "postgres"
tier = "medium"
url = "postgres://127.0.0.1:5432/app"
role = "app_user"
admin = "ghost"
window = "Tue 25:00-26:00 UTC"
grace = "2y"
"#,
    );
    expect(
        &got,
        &[
            (
                "`window`: time \"25:00\" is out of range",
                "Tue-Thu 02:00-04:00",
            ),
            ("`grace`: bad duration \"2y\"", ""),
            (
                "admin secret `ghost` is not in the inventory",
                "[secrets.ghost]",
            ),
        ],
    );
}

#[test]
fn a_zero_or_negative_period_gets_its_own_help() {
    let got = errors("[secrets.a]\nkind = \"random\"\nrotate_every = \"0s\"\n");
    expect(
        &got,
        &[(
            "rotate_every must be longer than 0s",
            "rotate_every = \"90d\"",
        )],
    );
    assert!(
        !got[0].contains("shorten grace"),
        "a zero period is not a grace problem: {got:?}"
    );
    let got = errors("[secrets.a]\nkind = \"random\"\nrotate_every = \"-5d\"\n");
    expect(&got, &[("negative", "")]);
    assert!(!got[0].contains("unknown unit"), "{got:?}");
    let got = errors("[secrets.a]\nkind = \"random\"\ntier = \"high\"\ngrace = \"-1h\"\n");
    expect(&got, &[("negative", "")]);
}

#[test]
fn one_unset_variable_is_one_error() {
    let text = r#"
[secrets.database]
kind = "postgres"
tier = "medium"
strategy = "alternating"
url = "postgres://127.0.0.1:5432/app"
role = "app_user"
admin = "postgres-admin"

[secrets.postgres-admin]
kind = "postgres"
tier = "medium"
automation = "manual"
url = "postgres://${PGHOST}:5432/postgres"
role = "postgres"
"#;
    let got = errors(text);
    expect(
        &got,
        &[("environment variable `PGHOST` is not set", "export PGHOST")],
    );
    // With the variable set, the same file is valid.
    let env = |k: &str| (k == "PGHOST").then(|| "127.0.0.1".to_owned());
    config::parse(text, Path::new("/etc/rotor/rotor.toml"), &env).expect("valid with PGHOST");
}

// ---- issue 9 item 1: mistakes that make every rotation fail ---------------------------------

#[test]
fn an_alternating_pair_needs_an_admin() {
    let got = errors(
        r#"
[secrets.database]
kind = "postgres"
tier = "medium"
strategy = "alternating"
url = "postgres://127.0.0.1:5432/app"
role = "app_user"
"#,
    );
    expect(
        &got,
        &[(
            "the alternating strategy needs an `admin`",
            "admin = \"postgres-admin\"",
        )],
    );
    // A single role may change its own password.
    valid(
        "[secrets.db]\nkind = \"postgres\"\ntier = \"medium\"\nurl = \"postgres://127.0.0.1:5432/app\"\nrole = \"app_user\"\n",
    );
}

#[test]
fn an_admin_must_be_another_secret_of_the_same_kind_on_the_same_server() {
    let got = errors(
        r#"
[secrets.self-admin]
kind = "redis"
tier = "medium"
url = "redis://127.0.0.1:6379"
user = "app"
admin = "self-admin"

[secrets.wrong-kind]
kind = "postgres"
tier = "medium"
strategy = "alternating"
url = "postgres://127.0.0.1:5432/app"
role = "app_user"
admin = "redis-admin"

[secrets.elsewhere]
kind = "postgres"
tier = "medium"
strategy = "alternating"
url = "postgres://10.0.0.7:5432/app"
role = "billing"
admin = "postgres-admin"

[secrets.redis-admin]
kind = "redis"
tier = "medium"
automation = "manual"
url = "redis://127.0.0.1:6379"
user = "rotor-admin"

[secrets.postgres-admin]
kind = "postgres"
tier = "medium"
automation = "manual"
url = "postgres://127.0.0.1:5432/postgres"
role = "postgres"
"#,
    );
    expect(
        &got,
        &[
            ("`self-admin` is its own admin", "remove `admin`"),
            (
                "admin secret `redis-admin` is of kind `redis`, not `postgres`",
                "point admin at a `postgres` secret",
            ),
            (
                "admin secret `postgres-admin` is a credential on 127.0.0.1:5432, but this secret's target is 10.0.0.7:5432",
                "same server",
            ),
        ],
    );
    // localhost and 127.0.0.1 are the same server; the database name may differ.
    valid(
        r#"
[secrets.database]
kind = "postgres"
tier = "medium"
strategy = "alternating"
url = "postgres://localhost/app"
role = "app_user"
admin = "postgres-admin"

[secrets.postgres-admin]
kind = "postgres"
tier = "medium"
automation = "manual"
url = "postgres://127.0.0.1:5432/postgres"
role = "postgres"
"#,
    );
}

#[test]
fn two_secrets_never_rotate_one_credential() {
    let got = errors(
        r#"
[secrets.cache]
kind = "redis"
tier = "medium"
url = "redis://127.0.0.1:6379"
user = "app"
admin = "redis-admin"

[secrets.cache-again]
kind = "redis"
tier = "medium"
url = "redis://localhost:6379"
user = "app"
admin = "redis-admin"

[secrets.redis-admin]
kind = "redis"
tier = "medium"
automation = "manual"
url = "redis://127.0.0.1:6379"
user = "app"

[secrets.database]
kind = "postgres"
tier = "medium"
strategy = "alternating"
url = "postgres://127.0.0.1:5432/app"
role = "app_user"
admin = "postgres-admin"

[secrets.legacy]
kind = "postgres"
tier = "medium"
url = "postgres://127.0.0.1:5432/app"
role = "app_user_a"
admin = "postgres-admin"

[secrets.postgres-admin]
kind = "postgres"
tier = "medium"
automation = "manual"
url = "postgres://127.0.0.1:5432/postgres"
role = "postgres"
"#,
    );
    expect(
        &got,
        &[
            (
                "secret `cache-again` rotates redis user `app` on 127.0.0.1:6379, as `cache` does",
                "one secret per credential",
            ),
            (
                "secret `redis-admin` rotates redis user `app` on 127.0.0.1:6379, as `cache` does",
                "one secret per credential",
            ),
            (
                "secret `legacy` rotates postgres role `app_user_a` on 127.0.0.1:5432, as `database` does",
                "one secret per credential",
            ),
        ],
    );
}

#[test]
fn the_example_inventories_pass() {
    // What scripts/dev-services writes for examples/local.toml.
    let env = |k: &str| {
        Some(
            match k {
                "PGHOST" | "REDIS_HOST" => "127.0.0.1",
                "PGPORT" => "5432",
                "PGDATABASE" => "app",
                "PGUSER" => "postgres",
                "REDIS_PORT" => "6379",
                "REDIS_APP_USER" => "app",
                "REDIS_ADMIN_USER" => "default",
                _ => return None,
            }
            .to_owned(),
        )
    };
    for file in ["divan.toml", "local.toml"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples")
            .join(file);
        let text = std::fs::read_to_string(&path).expect("example");
        config::parse(&text, &path, &env).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
}

// ---- issue 10 item 1: a person may declare when a secret was last rotated ---------------

#[test]
fn last_rotated_is_a_date_or_a_time_with_offset() {
    let cfg = valid(
        r#"
[secrets.a]
kind = "manual"
tier = "medium"
last_rotated = "2026-06-01"

[secrets.b]
kind = "manual"
tier = "medium"
last_rotated = "2026-06-01T09:30:00+02:00"

[secrets.c]
kind = "manual"
tier = "medium"
last_rotated = 2026-06-01

[secrets.d]
kind = "manual"
tier = "medium"
"#,
    );
    let at = |n: &str| cfg.secret(n).and_then(|s| s.last_rotated);
    let midnight: jiff::Timestamp = "2026-06-01T00:00:00Z".parse().expect("ts");
    assert_eq!(at("a"), Some(midnight));
    assert_eq!(at("b"), Some("2026-06-01T07:30:00Z".parse().expect("ts")));
    assert_eq!(at("c"), Some(midnight));
    assert_eq!(at("d"), None);
    for bad in ["\"June 1st\"", "\"2026-06-01T09:30:00\"", "20260601"] {
        let got = errors(&format!(
            "[secrets.a]\nkind = \"manual\"\ntier = \"medium\"\nlast_rotated = {bad}\n"
        ));
        expect(
            &got,
            &[(
                "`last_rotated` must be a date or a time with its offset",
                "last_rotated = \"2026-06-01\"",
            )],
        );
    }
}
