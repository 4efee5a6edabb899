//! `rotor check` through the binary: every problem of a file at once, each with its help
//! (issue 10 item 9), and the mistakes that would make every rotation fail (issue 9 item 1).

mod common;

use common::Env;

#[test]
fn check_reports_every_problem_of_every_secret_with_its_help() {
    let env = Env::uninit(
        r#"
[secrets.a]
kind = "random"
tier = "urgent"
length = "12"
grace = "5x"

[secrets.b]
kind = "random"
rotate_every = "0s"

[secrets.c]
kind = "random"
rotate_every = "-5d"

[secrets.database]
kind = "postgres"
tier = "medium"
strategy = "alternating"
url = "postgres://127.0.0.1:5432/app"
role = "app_user"
window = "Tue 25:00-26:00 UTC"

[secrets.cache]
kind = "redis"
tier = "medium"
url = "redis://127.0.0.1:6379"
admin = "ghost"

[secrets.postgres-admin]
kind = "postgres"
tier = "medium"
url = "postgres://${ROTOR_TEST_UNSET_HOST}:5432/postgres"
role = "postgres"
"#,
    );
    let r = env.rotor(&["check"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    for want in [
        "secret \"a\": unknown tier `urgent`",
        "secret \"a\": `length` must be a whole number",
        "secret \"a\": `grace`: bad duration \"5x\"",
        "secret \"b\": rotate_every must be longer than 0s\n  help: write e.g. rotate_every = \"90d\"",
        "secret \"c\": `rotate_every`: bad duration \"-5d\": it is negative",
        "secret \"database\": the alternating strategy needs an `admin`",
        "secret \"database\": `window`: time \"25:00\" is out of range",
        "secret \"cache\": admin secret `ghost` is not in the inventory",
        "environment variable `ROTOR_TEST_UNSET_HOST` is not set",
        "9 errors in the config",
    ] {
        assert!(r.stderr.contains(want), "want {want:?} in\n{}", r.stderr);
    }
    assert!(!r.stderr.contains("shorten grace below 0s"), "{}", r.stderr);
    let json = env.rotor(&["--format", "json", "check"]);
    assert_eq!(json.json()["errors"].as_array().map(Vec::len), Some(9));
}
