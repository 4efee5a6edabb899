//! `[[render]] kind = "github"` end to end: the real `rotor` binary delivers to a loopback
//! server that follows GitHub's documented Actions secrets endpoints and opens every value
//! with PyNaCl, as GitHub does (rotor-test-support's `GithubApi`). GitHub itself cannot be
//! reached from the tests: see docs/github-secrets.md for what that leaves untested.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::Env;
use rotor_test_support::GithubApi;

const TOKEN: &str = "ghp_fixture_token_0123456789";
const TOKEN_VAR: &str = "ROTOR_TEST_GITHUB_TOKEN";

fn config(api: &str, owner: &str) -> String {
    format!(
        r#"
[secrets.jwt-signing]
kind = "random"
tier = "high"
length = 40

[secrets.sendgrid]
kind = "manual"
tier = "medium"

[[render]]
kind = "github"
repository = "{owner}/app"
token_env = "{TOKEN_VAR}"
api_url = "{api}"
[render.secrets]
JWT_SIGNING_KEY = "{{{{ jwt-signing.current }}}}"
SENDGRID_API_KEY = "{{{{ sendgrid.current }}}}"

[[render]]
kind = "github"
repository = "{owner}/app"
environment = "staging"
token_env = "{TOKEN_VAR}"
api_url = "{api}"
[render.secrets]
SENDGRID_API_KEY = "key={{{{ sendgrid.current }}}}"

[[render]]
kind = "dotenv"
path = "app.env"
[render.vars]
SENDGRID = "{{{{ sendgrid.current }}}}"
"#
    )
}

/// `rotor ARGS` with the GitHub token variable set to `token` (or unset).
fn rotor(env: &Env, token: Option<&str>, args: &[&str], stdin: Option<&[u8]>) -> common::Run {
    let mut c = env.command(args);
    match token {
        Some(t) => c.env(TOKEN_VAR, t),
        None => c.env_remove(TOKEN_VAR),
    };
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn rotor");
    {
        use std::io::Write;
        let mut pipe = child.stdin.take().expect("stdin");
        if let Some(data) = stdin {
            pipe.write_all(data).expect("stdin");
        }
    }
    common::run_of(child.wait_with_output().expect("wait rotor"))
}

fn audit_actions(env: &Env) -> Vec<(String, String)> {
    env.rotor(&["--format", "json", "audit", "tail", "-n", "1000"])
        .ok()
        .json()
        .as_array()
        .expect("records")
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap_or_default().to_owned(),
                r.to_string(),
            )
        })
        .collect()
}

#[test]
fn put_and_rotate_reach_github_and_only_changes_are_sent() {
    let gh = GithubApi::start(TOKEN).expect("the GitHub API fixture (PyNaCl)");
    let env = Env::new(&config(&gh.api(), "divan"));
    let state = || gh.state().expect("fixture state");

    // sendgrid has no current yet: nothing is sent, the reason is said.
    let r = rotor(&env, Some(TOKEN), &["rotate", "jwt-signing"], None).ok();
    assert!(
        r.stderr.contains(
            "render github:divan/app: {{ sendgrid.current }}: secret sendgrid has no current value yet"
        ),
        "{}",
        r.stderr
    );
    assert_eq!(state()["counts"]["put"], 0, "{}", state());

    // A put: every GitHub secret of both scopes written, each opened by PyNaCl.
    rotor(&env, Some(TOKEN), &["put", "sendgrid"], Some(b"SG.one")).ok();
    let s = state();
    let jwt = env.reveal("jwt-signing", "current");
    assert_eq!(s["stored"]["divan/app"]["JWT_SIGNING_KEY"], jwt.as_str());
    assert_eq!(s["stored"]["divan/app"]["SENDGRID_API_KEY"], "SG.one");
    assert_eq!(
        s["stored"]["divan/app/staging"]["SENDGRID_API_KEY"],
        "key=SG.one"
    );
    assert_eq!(s["counts"]["put"], 3, "{s}");
    assert_eq!(
        s["problems"],
        serde_json::json!([]),
        "documented headers sent"
    );

    // Nothing changed: `rotor render` sends nothing, not even a public-key read.
    let r = rotor(&env, Some(TOKEN), &["--format", "json", "render"], None).ok();
    let targets = r.json();
    let github: Vec<_> = targets
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["target"].as_str().unwrap().starts_with("github:"))
        .collect();
    assert_eq!(github.len(), 2, "{targets}");
    assert!(github.iter().all(|t| t["changed"] == false), "{targets}");
    let s = state();
    assert_eq!(
        s["counts"],
        serde_json::json!({"public_key": 2, "put": 3}),
        "{s}"
    );

    // A rotation: only the rotated value is sent.
    rotor(&env, Some(TOKEN), &["rotate", "jwt-signing"], None).ok();
    let s = state();
    let jwt2 = env.reveal("jwt-signing", "current");
    assert_ne!(jwt, jwt2);
    assert_eq!(s["stored"]["divan/app"]["JWT_SIGNING_KEY"], jwt2.as_str());
    assert_eq!(s["counts"]["put"], 4, "{s}");

    // The state files hold fingerprints, never a value; 0600.
    for f in common::files(env.dir.path()) {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with(".rotor-github-") {
            use std::os::unix::fs::PermissionsExt;
            let text = std::fs::read_to_string(&f).unwrap();
            assert!(!text.contains(&jwt2) && !text.contains("SG.one"), "{text}");
            assert_eq!(
                std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }
    env.audit_verifies();
}

#[test]
fn a_bad_token_is_a_delivery_failure_and_nothing_else_is_lost() {
    let gh = GithubApi::start(TOKEN).expect("the GitHub API fixture (PyNaCl)");
    let env = Env::new(&config(&gh.api(), "divan"));
    let state = || gh.state().expect("fixture state");
    rotor(&env, Some(TOKEN), &["rotate", "jwt-signing"], None).ok();
    rotor(&env, Some(TOKEN), &["put", "sendgrid"], Some(b"SG.one")).ok();
    assert_eq!(state()["counts"]["put"], 3);

    let wrong = "ghp_revoked_token_zzzzzzzz";
    let r = rotor(&env, Some(wrong), &["put", "sendgrid"], Some(b"SG.two")).ok();
    // The documented message (docs/github-secrets.md: 401 → "the token is wrong, expired
    // or revoked"), for both GitHub targets; never the token.
    assert!(
        r.stderr.contains("render github:divan/app: "),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("GitHub rejected the token"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("the token is wrong, expired or revoked"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("github:divan/app/staging"),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains(wrong),
        "the token is never shown: {}",
        r.stderr
    );
    // Nothing else lost: the store holds the new value, the file target was rendered,
    // GitHub still holds the old value, and the failure is audited.
    assert_eq!(env.reveal("sendgrid", "current"), "SG.two");
    let file = std::fs::read_to_string(env.path("app.env")).unwrap();
    assert!(file.contains("SENDGRID=\"SG.two\""), "{file}");
    let s = state();
    assert_eq!(s["stored"]["divan/app"]["SENDGRID_API_KEY"], "SG.one");
    assert_eq!(s["counts"]["put"], 3);
    let failed: Vec<_> = audit_actions(&env)
        .into_iter()
        .filter(|(a, r)| a == "delivery.failed" && r.contains("\"secret\":\"sendgrid\""))
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0].1.contains("GitHub rejected the token"),
        "{failed:?}"
    );
    assert!(!failed[0].1.contains(wrong), "{failed:?}");

    // No token at all: the crate's message naming the variable.
    let r = rotor(&env, None, &["render"], None);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("no GitHub token: {TOKEN_VAR} is not set")),
        "{}",
        r.stderr
    );

    // `rotor serve` catches up at start-up with the right token.
    let mut serve = env
        .command(&["serve", "--listen", "127.0.0.1:0", "--no-scheduler"])
        .env(TOKEN_VAR, TOKEN)
        .env("ROTOR_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("rotor serve");
    let deadline = Instant::now() + Duration::from_secs(30);
    while state()["stored"]["divan/app/staging"]["SENDGRID_API_KEY"] != "key=SG.two" {
        assert!(
            Instant::now() < deadline,
            "serve did not catch up: {}",
            state()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    serve.kill().expect("stop serve");
    serve.wait().expect("reap");
    let s = state();
    assert_eq!(s["stored"]["divan/app"]["SENDGRID_API_KEY"], "SG.two");
    // Only the two changed secrets were sent again (JWT_SIGNING_KEY was unchanged).
    assert_eq!(s["counts"]["put"], 5, "{s}");
}

#[test]
fn an_outage_is_retried_within_the_delivery() {
    // The fixture answers the first request for owner "flaky" with 502.
    let gh = GithubApi::start(TOKEN).expect("the GitHub API fixture (PyNaCl)");
    let env = Env::new(&config(&gh.api(), "flaky"));
    rotor(&env, Some(TOKEN), &["rotate", "jwt-signing"], None).ok();
    let r = rotor(&env, Some(TOKEN), &["put", "sendgrid"], Some(b"SG.one")).ok();
    let s = gh.state().unwrap();
    assert_eq!(s["flaky_failed"], true, "the outage happened: {s}");
    assert_eq!(
        s["stored"]["flaky/app"]["SENDGRID_API_KEY"], "SG.one",
        "{s}"
    );
    assert_eq!(
        s["stored"]["flaky/app/staging"]["SENDGRID_API_KEY"], "key=SG.one",
        "{s}"
    );
    assert!(
        !audit_actions(&env)
            .iter()
            .any(|(a, r)| a == "delivery.failed" && r.contains("\"secret\":\"sendgrid\"")),
        "a retried outage is no delivery failure: {}",
        r.stderr
    );
}

#[test]
fn check_validates_github_targets() {
    let base = |extra: &str| {
        format!(
            "[secrets.jwt-signing]\nkind = \"random\"\ntier = \"high\"\n[[render]]\nkind = \"github\"\n{extra}\n[render.secrets]\nJWT_KEY = \"{{{{ jwt-signing.current }}}}\"\n"
        )
    };
    let check = |toml: &str, token: Option<&str>| {
        let env = Env::uninit(toml);
        rotor(&env, token, &["check"], None)
    };
    let ok = "repository = \"divan/app\"\ntoken_env = \"ROTOR_TEST_GITHUB_TOKEN\"";

    // Valid; the token variable unset is a warning, not an error.
    let r = check(&base(ok), None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("warning:") && r.stderr.contains("ROTOR_TEST_GITHUB_TOKEN is not set"),
        "{}",
        r.stderr
    );
    let r = check(&base(ok), Some(TOKEN));
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));

    for (extra, said) in [
        ("repository = \"divan\"", "is not OWNER/REPO"),
        ("repository = \"-divan/app\"", "is not OWNER/REPO"),
        ("token_env = \"GITHUB_TOKEN\"", "needs `repository`"),
        (
            "repository = \"divan/app\"\napi_url = \"http://github.example.com\"",
            "plain http to github.example.com, which is not loopback",
        ),
        (
            "repository = \"divan/app\"\napi_url = \"https://x:y@github.example.com\"",
            "a URL with credentials",
        ),
        (
            "repository = \"divan/app\"\ntoken_env = \"${GITHUB_TOKEN}\"",
            "not ${...}",
        ),
        (
            "repository = \"divan/app\"\non_change = \"true\"",
            "`on_change` is not a key of a kind = \"github\" render",
        ),
        (
            "repository = \"divan/app\"\nenvironment = \"\"",
            "is not a GitHub environment name",
        ),
    ] {
        let r = check(&base(extra), Some(TOKEN));
        assert_eq!(r.code, 2, "{extra}: {}", r.stderr);
        assert!(r.stderr.contains(said), "{extra}: {}", r.stderr);
        assert!(
            !r.stderr.contains("x:y@"),
            "credentials never echoed: {}",
            r.stderr
        );
    }

    // A pasted token in token_env is refused and never echoed, whether or not it also
    // happens to be a valid variable name (classic tokens are).
    for (pasted, said) in [
        (
            "ghp_AAAAbbbbCCCCddddEEEE1234ffffGGGG5678",
            "looks like a GitHub token",
        ),
        (
            "github_pat_11AAAA_bbbbCCCCdddd",
            "looks like a GitHub token",
        ),
        ("0123-secret-token", "not an environment variable name"),
    ] {
        let r = check(
            &base(&format!(
                "repository = \"divan/app\"\ntoken_env = \"{pasted}\""
            )),
            None,
        );
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert!(r.stderr.contains(said), "{pasted}: {}", r.stderr);
        assert!(!r.stderr.contains(pasted), "{}", r.stderr);
    }

    // Secret names by GitHub's rules; a target must reference the store.
    for (secrets, said) in [
        (
            "GITHUB_KEY = \"{{ jwt-signing.current }}\"",
            "\"GITHUB_KEY\" is not a valid GitHub secret name",
        ),
        (
            "1KEY = \"{{ jwt-signing.current }}\"",
            "\"1KEY\" is not a valid GitHub secret name",
        ),
        (
            "\"A-B\" = \"{{ jwt-signing.current }}\"",
            "\"A-B\" is not a valid GitHub secret name",
        ),
        (
            "key = \"{{ jwt-signing.current }}\"\nKEY = \"{{ jwt-signing.previous }}\"",
            "named twice",
        ),
        ("KEY = \"literal\"", "references no secret of the inventory"),
        (
            "KEY = \"{{ nope.current }}\"",
            "names no secret of the inventory",
        ),
    ] {
        let toml = format!(
            "[secrets.jwt-signing]\nkind = \"random\"\ntier = \"high\"\n[[render]]\nkind = \"github\"\n{ok}\n[render.secrets]\n{secrets}\n"
        );
        let r = check(&toml, Some(TOKEN));
        assert_eq!(r.code, 2, "{secrets}: {}", r.stderr);
        assert!(r.stderr.contains(said), "{secrets}: {}", r.stderr);
    }
    // No secrets at all.
    let r = check(
        &format!(
            "[secrets.jwt-signing]\nkind = \"random\"\ntier = \"high\"\n[[render]]\nkind = \"github\"\n{ok}\n"
        ),
        Some(TOKEN),
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("needs `secrets`"), "{}", r.stderr);
}

#[test]
fn a_long_rate_limit_wait_fails_the_delivery_at_once() {
    // Owner "secondary": 429 with retry-after 30 s, longer than a retry may wait (5 s).
    let gh = GithubApi::start(TOKEN).expect("the GitHub API fixture (PyNaCl)");
    let env = Env::new(&config(&gh.api(), "secondary"));
    rotor(&env, Some(TOKEN), &["rotate", "jwt-signing"], None).ok();
    let started = Instant::now();
    let r = rotor(&env, Some(TOKEN), &["put", "sendgrid"], Some(b"SG.one")).ok();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "not slept through"
    );
    assert!(
        r.stderr
            .contains("GitHub's secondary rate limit (HTTP 429: You have exceeded a secondary rate limit.); retry in 30 s"),
        "{}",
        r.stderr
    );
    assert_eq!(env.reveal("sendgrid", "current"), "SG.one");
    assert_eq!(gh.state().unwrap()["counts"]["put"], 0);
    let r = rotor(&env, Some(TOKEN), &["render"], None);
    assert_eq!(r.code, 1, "still behind, said again: {}", r.stderr);
    assert!(r.stderr.contains("secondary rate limit"), "{}", r.stderr);
}
