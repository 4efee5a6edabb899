//! Config parsing: the example inventory, and every diagnostic with its place and fix.
//! Over 600 lines on purpose: one test per diagnostic, read as one table of messages.

use std::path::Path;

use rotor_core::config::{self, KindSettings, PgStrategy};
use rotor_core::{Automation, Duration, Kind, Tier};

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse(text: &str) -> Result<rotor_core::Config, rotor_core::ConfigError> {
    config::parse(text, Path::new("/etc/rotor/rotor.toml"), &no_env)
}

/// Parses `text`, expects errors, and returns them as `line:col secret message | help` lines.
fn errors(text: &str) -> Vec<String> {
    let err = parse(text).expect_err("config should be refused");
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

/// One diagnostic, checked by its place and fragments of its message and help.
fn check(text: &str, want: &[(&str, &str, &str)]) {
    let got = errors(text);
    assert_eq!(got.len(), want.len(), "diagnostics: {got:#?}");
    for (g, (place, msg, help)) in got.iter().zip(want) {
        assert!(g.starts_with(place), "want place {place:?} in {g:?}");
        assert!(g.contains(msg), "want message {msg:?} in {g:?}");
        assert!(g.contains(help), "want help {help:?} in {g:?}");
    }
}

#[test]
fn the_example_inventory_reproduces_the_seed() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/divan.toml");
    let text = std::fs::read_to_string(&path).expect("examples/divan.toml");
    let cfg = config::parse(&text, &path, &no_env).expect("the example parses");
    let get = |n: &str| cfg.secret(n).unwrap_or_else(|| panic!("{n} missing"));

    let jwt = get("jwt-signing");
    assert_eq!(jwt.kind, Kind::Jwt);
    assert_eq!(jwt.policy.tier, Some(Tier::High));
    assert_eq!(jwt.policy.rotate_every, Duration::from_days(90));
    assert_eq!(jwt.policy.automation, Automation::Automatic);
    // The seed's refresh tokens (30 d) are signed with this key: previous stays that long
    // plus leeway.
    assert_eq!(
        jwt.policy.grace,
        Duration::from_days(30).saturating_add(Duration::from_mins(1))
    );

    let db = get("database");
    assert_eq!(db.policy.rotate_every, Duration::from_days(180));
    assert!(
        matches!(&db.settings, KindSettings::Postgres(p) if p.strategy == PgStrategy::Alternating)
    );
    assert_eq!(get("redis").policy.rotate_every, Duration::from_days(180));

    let sendgrid = get("sendgrid-api-key");
    assert_eq!(
        (sendgrid.kind, sendgrid.policy.automation),
        (Kind::Manual, Automation::Manual)
    );

    let pepper = get("refresh-pepper");
    assert_eq!(pepper.policy.rotate_every, Duration::from_days(365));
    assert!(pepper.policy.requires_confirmation);
    assert_eq!(pepper.policy.automation, Automation::Manual);

    assert_eq!(get("oauth-client-secret").policy.tier, Some(Tier::Low));
    assert_eq!(get("data-encryption-key").policy.tier, Some(Tier::Low));
    assert_eq!(get("session-secret").policy.tier, Some(Tier::High));
}

#[test]
fn defaults_and_tier_overrides() {
    let cfg = parse(
        r#"
[tiers]
high = "30d"
[secrets.k]
kind = "jwt"
tier = "high"
[secrets.s]
kind = "random"
rotate_every = "7d"
"#,
    )
    .expect("valid");
    let k = cfg.secret("k").expect("k");
    assert_eq!(k.policy.rotate_every, Duration::from_days(30));
    // JWT grace defaults to token lifetime (30m) plus leeway (1m).
    assert_eq!(k.policy.grace, Duration::from_mins(31));
    let s = cfg.secret("s").expect("s");
    assert_eq!(s.policy.grace, Duration::from_hours(1));
    assert!(matches!(&s.settings, KindSettings::Random(r) if r.length == 32));
    let rotor_core::config::StoreConfig::Sqlite {
        path,
        master_key_file,
        ..
    } = &cfg.store
    else {
        panic!("the default store is sqlite: {:?}", cfg.store);
    };
    assert_eq!(path, Path::new("/etc/rotor/rotor.db"));
    assert_eq!(master_key_file, Path::new("/etc/rotor/rotor.key"));
}

#[test]
fn unknown_keys_and_kinds_with_suggestions() {
    check(
        r#"
[secrets.jwt]
kind = "jwt"
tier = "high"
algoritm = "HS256"

[secrets.x]
kind = "randm"
tier = "high"

[secrets.y]
kind = "random"
tier = "high"
role = "app"

[storage]
path = "x"
"#,
        &[
            (
                "16:2 -",
                "unknown key `storage` in top level",
                "did you mean `store`",
            ),
            (
                "5:1 jwt",
                "unknown key `algoritm`",
                "did you mean `algorithm`?",
            ),
            ("8:8 x", "unknown kind `randm`", "did you mean `random`?"),
            ("14:1 y", "unknown key `role`", "setting of kind `postgres`"),
        ],
    );
}

#[test]
fn bad_durations_name_the_fix() {
    check(
        r#"
[secrets.a]
kind = "random"
rotate_every = "90 days"

[secrets.b]
kind = "random"
rotate_every = 90

[tiers]
low = "1y"
"#,
        &[
            ("11:7 -", "bad duration \"1y\"", ""),
            ("4:16 a", "bad duration \"90 days\": it contains spaces", ""),
            (
                "8:16 b",
                "must be a duration string, not a number",
                "rotate_every = \"90d\"",
            ),
        ],
    );
}

#[test]
fn grace_must_be_shorter_than_the_schedule() {
    check(
        r#"
[secrets.pepper]
kind = "random"
rotate_every = "1d"
grace = "2d"
"#,
        &[(
            "5:9 pepper",
            "grace (2d) must be shorter than rotate_every (1d)",
            "shorten grace below 1d",
        )],
    );
}

#[test]
fn duplicate_names_are_refused() {
    check(
        "[secrets.db]\nkind = \"manual\"\ntier = \"low\"\n[secrets.db]\nkind = \"manual\"\ntier = \"low\"\n",
        &[("4:", "duplicate key", "may appear once")],
    );
    check(
        "[secrets.db]\nkind = \"manual\"\ntier = \"low\"\n[secrets.DB]\nkind = \"manual\"\ntier = \"low\"\n",
        &[("4:10 DB", "duplicate secret name", "distinct name")],
    );
}

#[test]
fn missing_settings_of_a_kind() {
    check(
        r#"
[secrets.db]
kind = "postgres"
tier = "medium"

[secrets.plugin]
kind = "command"
tier = "low"

[secrets.nothing]
tier = "low"

[secrets.unscheduled]
kind = "manual"
"#,
        &[
            ("2:1 db", "missing `url`", "url = \"postgres://"),
            ("2:1 db", "missing `role`", "role = \"app_user\""),
            ("6:1 plugin", "missing `command`", "command = ["),
            ("10:1 nothing", "missing `kind`", "add kind = one of"),
            ("13:1 unscheduled", "no schedule", "tier = \"high\""),
        ],
    );
}

#[test]
fn every_value_check() {
    check(
        r#"
[secrets.a]
kind = "random"
tier = "urgent"

[secrets.b]
kind = "random"
tier = "high"
rotate_every = "30d"

[secrets.c]
kind = "manual"
tier = "low"
automation = "automatic"

[secrets.d]
kind = "random"
tier = "low"
length = 8

[secrets.e]
kind = "jwt"
tier = "high"
algorithm = "HS1024"

[secrets.f]
kind = "postgres"
tier = "medium"
url = "postgres://admin:hunter2@db/app"
role = "app"

[secrets.g]
kind = "redis"
tier = "medium"
url = "redis://h:6379"
admin = "nope"

[secrets.h]
kind = "random"
tier = "high"
requires_confirmation = "yes"

[secrets."bad name"]
kind = "manual"
tier = "low"
"#,
        &[
            ("4:8 a", "unknown tier `urgent`", "high (90d)"),
            (
                "9:16 b",
                "both `tier` and `rotate_every` are set",
                "keep one",
            ),
            (
                "14:14 c",
                "a manual secret cannot rotate automatically",
                "automation = \"manual\"",
            ),
            ("19:10 d", "only 48 bits of entropy", "at least 22"),
            (
                "24:13 e",
                "unsupported JWT algorithm `HS1024`",
                "HS256, HS384",
            ),
            ("29:7 f", "`url` contains a password", "remove it"),
            ("41:25 h", "must be true or false", "no quotes"),
            ("43:10 bad name", "contains ' '", ""),
            (
                "32:10 g",
                "admin secret `nope` is not in the inventory",
                "[secrets.nope]",
            ),
        ],
    );
}

#[test]
fn env_interpolation() {
    let env = |k: &str| (k == "PGPORT").then(|| "6543".to_owned());
    let text = r#"
[secrets.db]
kind = "postgres"
tier = "medium"
url = "postgres://127.0.0.1:${PGPORT}/app"
role = "app_$${x}"
[secrets.r]
kind = "redis"
tier = "medium"
url = "redis://${REDIS_HOST}:1"
"#;
    let err = config::parse(text, Path::new("r.toml"), &env).expect_err("REDIS_HOST unset");
    assert_eq!(err.diagnostics.len(), 1, "{err}");
    assert!(
        err.diagnostics[0]
            .message
            .contains("`REDIS_HOST` is not set")
    );
    let ok = config::parse(
        &text.replace("${REDIS_HOST}", "h"),
        Path::new("r.toml"),
        &env,
    )
    .expect("valid");
    match &ok.secret("db").expect("db").settings {
        KindSettings::Postgres(p) => {
            assert_eq!(p.url, "postgres://127.0.0.1:6543/app");
            assert_eq!(p.role, "app_${x}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_error_display_names_file_and_counts() {
    let err = parse("[secrets.a]\nkind = \"random\"\n").expect_err("no schedule");
    let text = err.to_string();
    assert!(
        text.starts_with("/etc/rotor/rotor.toml:1:1: secret \"a\": no schedule"),
        "{text}"
    );
    assert!(text.ends_with("1 error in the config"), "{text}");
}

#[test]
fn daemon_delivery_and_emergency_sections() {
    let cfg = parse(
        r#"
[server]
listen = "127.0.0.1:9000"
max_concurrent_rotations = 2

[[tokens]]
name = "ci"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
scopes = ["read:jwt-*", "rotate:*"]

[[notify]]
url = "http://127.0.0.1:1/hook"
events = ["failed", "emergency"]

[[render]]
kind = "dotenv"
path = ".env"
on_change = "docker compose restart backend"
[render.vars]
SECRET_KEY = "{{ jwt-signing.current }}"
DATABASE_URL = "postgres://{{ database.current.username }}:{{ database.current.password }}@db:5432/app"

[emergency]
health_urls = ["http://127.0.0.1:1/healthz"]

[secrets.jwt-signing]
kind = "jwt"
tier = "high"
window = "Tue-Thu 02:00-04:00 Europe/Berlin"
jitter = "1h"

[secrets.database]
kind = "manual"
tier = "medium"
on_emergency = "redis-cli FLUSHDB"
"#,
    )
    .expect("valid");
    assert_eq!(cfg.server.listen.port(), 9000);
    assert_eq!(cfg.server.max_concurrent_rotations, 2);
    assert_eq!(cfg.tokens[0].scopes.len(), 2);
    assert_eq!(cfg.notify[0].events.len(), 2);
    assert_eq!(cfg.render[0].vars.len(), 2);
    assert_eq!(cfg.render[0].path, Path::new("/etc/rotor/.env"));
    assert_eq!(cfg.emergency.report_dir, Path::new("/etc/rotor/reports"));
    let jwt = cfg.secret("jwt-signing").expect("jwt");
    assert!(jwt.window.is_some());
    assert_eq!(jwt.jitter, Duration::from_hours(1));
    assert_eq!(
        cfg.secret("database")
            .and_then(|s| s.on_emergency.as_deref()),
        Some("redis-cli FLUSHDB")
    );
}

#[test]
fn bad_daemon_sections() {
    check(
        r#"
[server]
listen = "localhost"

[[tokens]]
name = "ci"
sha256 = "abc"
scopes = ["read:*"]

[[render]]
kind = "dotenv"
path = ".env"
[render.vars]
X = "{{ missing.current }}"

[secrets.a]
kind = "random"
tier = "high"
window = "Tue 02:00-04:00 Mars/Olympus"
"#,
        &[
            ("19:10 a", "unknown time zone", ""),
            ("3:10 -", "is not an address", "127.0.0.1:8700"),
            (
                "7:10 -",
                "`sha256` must be 64 hex",
                "never the token itself",
            ),
            ("14:5 -", "names no secret of the inventory", ""),
        ],
    );
}

#[test]
fn github_render_targets() {
    let text = r#"
[secrets.jwt-signing]
kind = "random"
tier = "high"

[[render]]
kind = "github"
repository = "divan/app"
[render.secrets]
JWT_SIGNING_KEY = "{{ jwt-signing.current }}"

[[render]]
kind = "github"
repository = "divan/app"
environment = "staging / eu"
token_env = "STAGING_GITHUB_TOKEN"
api_url = "http://127.0.0.1:8080/"
path = "state/gh.json"
[render.secrets]
JWT_SIGNING_KEY = "k={{ jwt-signing.current }}"
"#;
    // Defaults: the public API, GITHUB_TOKEN, a state file beside the config; an unset
    // token variable is a warning (it may be set only where rotor runs), never an error.
    let cfg = parse(text).expect("valid");
    let g = cfg.render[0].github.as_ref().expect("github");
    assert_eq!(cfg.render[0].kind, config::RenderKind::Github);
    assert_eq!(
        (g.owner.as_str(), g.repo.as_str(), g.environment.as_deref()),
        ("divan", "app", None)
    );
    assert_eq!(g.api_url, "https://api.github.com");
    assert_eq!(g.token_env, "GITHUB_TOKEN");
    assert_eq!(
        cfg.render[0].path,
        Path::new("/etc/rotor/.rotor-github-divan-app.json")
    );
    assert_eq!(cfg.render[0].target(), "github:divan/app");
    assert_eq!(cfg.render[0].vars[0].0, "JWT_SIGNING_KEY");
    let g = cfg.render[1].github.as_ref().expect("github");
    assert_eq!(g.environment.as_deref(), Some("staging / eu"));
    assert_eq!(
        g.api_url, "http://127.0.0.1:8080",
        "loopback http, trailing / dropped"
    );
    assert_eq!(cfg.render[1].path, Path::new("/etc/rotor/state/gh.json"));
    let warned: Vec<_> = cfg
        .warnings
        .iter()
        .map(|w| (w.line, w.message.clone()))
        .collect();
    assert_eq!(warned.len(), 2, "{warned:?}");
    assert!(
        warned[0].1.contains("GITHUB_TOKEN is not set"),
        "{warned:?}"
    );
    assert_eq!(warned[1].0, 16, "the warning points at token_env");
    let set = config::parse(text, Path::new("/etc/rotor/rotor.toml"), &|k| {
        (k == "GITHUB_TOKEN" || k == "STAGING_GITHUB_TOKEN").then(|| "t".to_owned())
    })
    .expect("valid");
    assert!(set.warnings.is_empty(), "{:?}", set.warnings);

    // The same repository twice would fight over its secrets.
    let twice = format!(
        "{text}\n[[render]]\nkind = \"github\"\nrepository = \"Divan/App\"\n[render.secrets]\nX = \"{{{{ jwt-signing.current }}}}\"\n"
    );
    check(
        &twice,
        &[("23:8 -", "repeats github:divan/app", "merge the two")],
    );
    // File keys on a GitHub target, GitHub keys on a file.
    check(
        r#"
[secrets.a]
kind = "random"
tier = "high"
[[render]]
kind = "github"
repository = "divan/app"
timeout = "5s"
[render.secrets]
A = "{{ a.current }}"
[[render]]
kind = "dotenv"
path = ".env"
repository = "divan/app"
[render.vars]
A = "{{ a.current }}"
"#,
        &[
            (
                "8:1 -",
                "`timeout` is not a key of a kind = \"github\" render",
                "",
            ),
            (
                "14:1 -",
                "`repository` is not a key of a kind = \"dotenv\" render",
                "kind = \"github\"",
            ),
        ],
    );
}

#[test]
fn store_kinds() {
    let cfg =
        parse("[store]\nkind = \"postgres\"\nurl = \"postgres://rotor@db/rotor\"\n").expect("pg");
    assert!(
        matches!(&cfg.store, rotor_core::config::StoreConfig::Postgres { url, .. } if url.expose() == "postgres://rotor@db/rotor")
    );
    let cfg = parse("[store]\nkind = \"aws\"\nregion = \"eu-west-1\"\nprefix = \"divan/prod/\"\nledger = \"sqlite\"\npath = \"ledger.db\"\n").expect("aws");
    match &cfg.store {
        rotor_core::config::StoreConfig::Aws { prefix, ledger, .. } => {
            assert_eq!(prefix, "divan/prod/");
            assert!(
                matches!(&**ledger, rotor_core::config::StoreConfig::Sqlite { path, .. } if path == Path::new("/etc/rotor/ledger.db"))
            );
        }
        other => panic!("{other:?}"),
    }
    let cfg = parse(
        "[store]\nkind = \"aws\"\nledger = \"sqlite\"\npath = \"l.db\"\nkms_key_id = \"alias/prod\"\n\
         [store.kms_key_ids]\njwt = \"arn:aws:kms:eu-west-1:1:key/k\"\n",
    )
    .expect("aws with kms keys");
    match &cfg.store {
        rotor_core::config::StoreConfig::Aws {
            kms_key_id,
            kms_key_ids,
            ..
        } => {
            assert_eq!(kms_key_id.as_deref(), Some("alias/prod"));
            assert_eq!(
                kms_key_ids.get("jwt").map(String::as_str),
                Some("arn:aws:kms:eu-west-1:1:key/k")
            );
        }
        other => panic!("{other:?}"),
    }
    check(
        "[store]\nkind = \"aws\"\nledger = \"sqlite\"\npath = \"l.db\"\nkms_key_ids = \"x\"\n",
        &[(
            "5:15 -",
            "`kms_key_ids` must be a table",
            "[store.kms_key_ids]",
        )],
    );
    check(
        "[store]\nkind = \"aws\"\nregion = \"eu-west-1\"\n",
        &[("1:1 -", "needs a `ledger`", "ledger = \"sqlite\"")],
    );
    check(
        "[store]\nkind = \"postgres\"\n",
        &[("1:1 -", "missing `url`", "postgres://")],
    );
    check(
        "[store]\nkind = \"etcd\"\n",
        &[("2:8 -", "unknown store kind `etcd`", "\"aws\"")],
    );
}

#[test]
fn command_settings_reach_the_plugin_as_json() {
    let text = r#"
[secrets.web]
kind = "command"
command = ["/usr/local/bin/plugin", "--verbose"]
timeout = "5s"
tier = "low"

[secrets.web.settings]
url = "http://127.0.0.1:8080/"
retries = 3
ratio = 0.5
reload = ["nginx", "-s", "reload"]
nested = { deep = true }
"#;
    let cfg = parse(text).expect("valid");
    let KindSettings::Command(c) = &cfg.secret("web").expect("web").settings else {
        panic!("not a command secret");
    };
    assert_eq!(c.command, ["/usr/local/bin/plugin", "--verbose"]);
    assert_eq!(c.timeout, Duration::from_secs(5));
    assert_eq!(
        c.settings,
        serde_json::json!({
            "url": "http://127.0.0.1:8080/",
            "retries": 3,
            "ratio": 0.5,
            "reload": ["nginx", "-s", "reload"],
            "nested": { "deep": true },
        })
    );
    // Without a table the plugin gets an empty object, and the default timeout is 30s.
    let cfg = parse("[secrets.x]\nkind = \"command\"\ncommand = [\"p\"]\ntier = \"low\"\n")
        .expect("valid");
    let KindSettings::Command(c) = &cfg.secret("x").expect("x").settings else {
        panic!("not a command secret");
    };
    assert_eq!(c.settings, serde_json::json!({}));
    assert_eq!(c.timeout, Duration::from_secs(30));
}

#[test]
fn bad_command_settings_name_the_fix() {
    check(
        r#"
[secrets.a]
kind = "command"
command = ["p"]
tier = "low"
settings = "url=http://x"

[secrets.b]
kind = "command"
command = ["p"]
tier = "low"
settings = { when = 2026-06-01, host = "${NOPE}" }
"#,
        &[
            ("6:12 a", "`settings` must be a table", "settings = { key"),
            ("12:21 b", "`settings.when` is a date", "quote it"),
            ("12:40 b", "`NOPE` is not set", "export NOPE"),
        ],
    );
}

#[test]
fn server_exposure_limits_and_scopes() {
    let cfg = parse("[server]\n").expect("defaults");
    let s = &cfg.server;
    assert_eq!(
        s.public,
        vec![config::PublicEndpoint::Health, config::PublicEndpoint::Jwks]
    );
    assert!(s.metrics_listen.is_none());
    assert_eq!(s.limits.header_timeout.as_secs(), 10);
    assert!(s.limits.idle_timeout > s.limits.request_timeout);
    let cfg = parse(
        "[server]\npublic = [\"metrics\"]\nmetrics_listen = \"127.0.0.1:9700\"\nheader_timeout = \"2s\"\nmax_connections = 10\nmax_header_bytes = 8192\n",
    )
    .expect("valid");
    assert_eq!(cfg.server.public, vec![config::PublicEndpoint::Metrics]);
    assert_eq!(cfg.server.limits.max_connections, 10);
    assert_eq!(cfg.server.limits.header_timeout.as_secs(), 2);
    let got = errors(
        "[server]\npublic = [\"page\", \"secrets\"]\nmetrics_listen = \"nope\"\nheader_timeout = \"0s\"\nidle_timeout = \"10s\"\nmax_header_bytes = 100\n",
    );
    let all = got.join("\n");
    for want in [
        "\"secrets\", which is not an endpoint",
        "`metrics_listen` = \"nope\" is not an address",
        "`header_timeout` must be longer than 0",
        "`idle_timeout` must be longer than `request_timeout`",
        "`max_header_bytes` = 100 is out of range",
    ] {
        assert!(all.contains(want), "want {want:?} in\n{all}");
    }
    for scope in ["view:*", "confirm:refresh-pepper", "emergency:app-*"] {
        assert!(config::Scope::parse(scope).is_ok(), "{scope}");
    }
    let e = config::Scope::parse("delete:*").expect_err("unknown action");
    assert!(e.contains("confirm, emergency"), "{e}");
}

/// Issue 14 item 1: the webhook URL (a Slack token in its path) and the store URL (a
/// password interpolated from the environment) are `SecretUrl`s: the whole config's
/// `Debug` carries neither, and `expose` gives them back whole.
#[test]
fn debug_of_the_config_shows_no_webhook_token_or_store_password() {
    let env = |k: &str| match k {
        "PG_PASSWORD" => Some("pg-pass-4f9a1c".to_owned()),
        "SLACK_WEBHOOK" => Some("https://hooks.slack.com/services/T0/B0/slack-tok-7d2e".to_owned()),
        _ => None,
    };
    let cfg = config::parse(
        "[store]\nkind = \"postgres\"\nurl = \"postgres://rotor:${PG_PASSWORD}@db:5432/rotor\"\n\n\
         [[notify]]\nurl = \"${SLACK_WEBHOOK}\"\nformat = \"slack\"\n",
        Path::new("/etc/rotor/rotor.toml"),
        &env,
    )
    .expect("valid");
    let shown = format!("{cfg:?} {cfg:#?}");
    assert!(!shown.contains("pg-pass-4f9a1c"), "{shown}");
    assert!(!shown.contains("slack-tok-7d2e"), "{shown}");
    assert!(
        shown.contains("hooks.slack.com") && shown.contains("db:5432"),
        "{shown}"
    );
    assert_eq!(
        cfg.notify[0].url.expose(),
        "https://hooks.slack.com/services/T0/B0/slack-tok-7d2e"
    );
    assert!(
        matches!(&cfg.store, rotor_core::config::StoreConfig::Postgres { url, .. } if url.expose() == "postgres://rotor:pg-pass-4f9a1c@db:5432/rotor")
    );
}
