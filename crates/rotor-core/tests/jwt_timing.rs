//! A JWT secret's timing defaults (issue 10 items 4 and 5): an asymmetric key's prepublish
//! covers the JWKS max-age plus a margin, the max-age is derived from the rotation period or
//! set, `rotor check` refuses a prepublish below it and a grace below the tokens' lifetime
//! plus leeway.

use std::path::Path;

use rotor_core::Duration;
use rotor_core::config::{self, JwtSettings, KindSettings};

fn jwt(text: &str) -> JwtSettings {
    let c = config::parse(text, Path::new("/etc/rotor/rotor.toml"), &|_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    match &c.secrets[0].settings {
        KindSettings::Jwt(j) => j.clone(),
        other => panic!("not a JWT secret: {other:?}"),
    }
}

fn refused(text: &str) -> Vec<(String, String)> {
    let err = config::parse(text, Path::new("/etc/rotor/rotor.toml"), &|_| None)
        .expect_err("config should be refused");
    err.diagnostics
        .iter()
        .map(|d| (d.message.clone(), d.help.clone().unwrap_or_default()))
        .collect()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn asymmetric_default_prepublish_covers_the_derived_max_age_plus_margin() {
    // Tier high (90 days): the max-age is capped at 60 s, prepublish 60 s + 6 s.
    let j = jwt("[secrets.k]\nkind = \"jwt\"\nalgorithm = \"ES256\"\ntier = \"high\"\n");
    assert_eq!(j.jwks_max_age, secs(60));
    assert_eq!(j.prepublish, secs(66));
    // A fast schedule: a twentieth of 100 s.
    let j = jwt(
        "[secrets.k]\nkind = \"jwt\"\nalgorithm = \"EdDSA\"\nrotate_every = \"100s\"\ntoken_lifetime = \"10s\"\n",
    );
    assert_eq!(j.jwks_max_age, secs(5));
    assert_eq!(j.prepublish, secs(6));
    // Never below 1 s.
    let j = jwt(
        "[secrets.k]\nkind = \"jwt\"\nalgorithm = \"ES256\"\nrotate_every = \"5s\"\ntoken_lifetime = \"2s\"\nleeway = \"1s\"\n",
    );
    assert_eq!(j.jwks_max_age, secs(1));
    assert_eq!(j.prepublish, secs(2));
}

#[test]
fn a_set_max_age_is_used_and_zero_means_no_cache_and_no_wait() {
    let j = jwt(
        "[secrets.k]\nkind = \"jwt\"\nalgorithm = \"RS256\"\ntier = \"high\"\njwks_max_age = \"5m\"\n",
    );
    assert_eq!(j.jwks_max_age, secs(300));
    assert_eq!(j.prepublish, secs(330));
    let j = jwt(
        "[secrets.k]\nkind = \"jwt\"\nalgorithm = \"ES256\"\ntier = \"high\"\njwks_max_age = \"0s\"\n",
    );
    assert_eq!(j.jwks_max_age, Duration::ZERO);
    assert_eq!(j.prepublish, Duration::ZERO);
    // A longer prepublish is kept.
    let j = jwt(
        "[secrets.k]\nkind = \"jwt\"\nalgorithm = \"ES256\"\ntier = \"high\"\nprepublish = \"10m\"\n",
    );
    assert_eq!(j.prepublish, secs(600));
}

#[test]
fn hmac_keys_are_not_published_so_they_wait_for_nothing() {
    let j = jwt("[secrets.k]\nkind = \"jwt\"\nalgorithm = \"HS256\"\ntier = \"high\"\n");
    assert_eq!(
        (j.jwks_max_age, j.prepublish),
        (Duration::ZERO, Duration::ZERO)
    );
    let got = refused(
        "[secrets.k]\nkind = \"jwt\"\nalgorithm = \"HS256\"\ntier = \"high\"\njwks_max_age = \"1m\"\n",
    );
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(
        got[0].0.contains("HMAC keys are shared secrets"),
        "{got:#?}"
    );
    assert_eq!(got[0].1, "remove jwks_max_age");
}

#[test]
fn check_refuses_a_prepublish_below_the_max_age_plus_margin() {
    // The measured setting: prepublish 6 s against the served max-age of 60 s.
    let got = refused(
        "[secrets.k]\nkind = \"jwt\"\nalgorithm = \"ES256\"\ntier = \"high\"\nprepublish = \"6s\"\n",
    );
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(
        got[0]
            .0
            .contains("prepublish = 6s is shorter than the JWKS max-age (1m, derived"),
        "{got:#?}"
    );
    assert!(got[0].1.contains("at least 1m6s"), "{got:#?}");
    // Against a set max-age, at the boundary.
    let text = |p: &str| {
        format!(
            "[secrets.k]\nkind = \"jwt\"\nalgorithm = \"ES256\"\ntier = \"high\"\njwks_max_age = \"30s\"\nprepublish = \"{p}\"\n"
        )
    };
    assert!(refused(&text("32s"))[0].0.contains("(30s, jwks_max_age)"));
    assert_eq!(jwt(&text("33s")).prepublish, secs(33));
    // A prepublish that would never let a key sign.
    let got = refused(
        "[secrets.k]\nkind = \"jwt\"\nalgorithm = \"ES256\"\nrotate_every = \"1m\"\ntoken_lifetime = \"10s\"\njwks_max_age = \"1m\"\n",
    );
    assert!(
        got.iter()
            .any(|g| g.0.contains("not shorter than the rotation period")),
        "{got:#?}"
    );
}

#[test]
fn check_refuses_a_grace_shorter_than_token_lifetime_plus_leeway() {
    // The case: grace 2 s, tokens of 3 s, leeway 1 s.
    let text = |g: &str| {
        format!(
            "[secrets.k]\nkind = \"jwt\"\nalgorithm = \"HS256\"\nrotate_every = \"1h\"\ntoken_lifetime = \"3s\"\nleeway = \"1s\"\ngrace = \"{g}\"\n"
        )
    };
    let got = refused(&text("2s"));
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(
        got[0]
            .0
            .contains("grace = 2s is shorter than token_lifetime (3s) plus leeway (1s)"),
        "{got:#?}"
    );
    assert!(got[0].1.contains("at least 4s"), "{got:#?}");
    let c = config::parse(&text("4s"), Path::new("/r.toml"), &|_| None).expect("4s is enough");
    assert_eq!(c.secrets[0].policy.grace, secs(4));
}

#[test]
fn the_divan_inventory_declares_its_refresh_token_lifetime() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/divan.toml"),
    )
    .expect("examples/divan.toml");
    let c = config::parse(&text, Path::new("/divan/rotor.toml"), &|_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    let spec = c.secret("jwt-signing").expect("jwt-signing");
    let KindSettings::Jwt(j) = &spec.settings else {
        panic!("jwt-signing is a JWT secret")
    };
    assert_eq!(j.token_lifetime, Duration::from_days(30), "refresh tokens");
    assert!(spec.policy.grace >= j.min_grace());
}
