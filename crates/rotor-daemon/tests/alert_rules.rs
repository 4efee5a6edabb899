//! The generated alert rules under `promtool test rules`: the unit tests in
//! `tests/alerts/rules_test.yml` prove each rule fires while its state holds and resolves when
//! it ends (issue 9 item 2: the failed alert keys on the gauge; issue 10 item 1: never-rotated
//! secrets alert).

mod common;

use std::path::Path;

/// The unit-test files in `tests/alerts/`.
const UNIT_TESTS: [&str; 2] = ["rules_test.yml", "tier_rules_test.yml"];

#[test]
fn every_rule_fires_and_resolves_under_promtool() {
    // The default tiers (90d, 180d, 365d), as the unit tests expect.
    let fx = common::fixture("[secrets.x]\nkind = \"random\"\ntier = \"high\"\n");
    std::fs::write(
        fx.path().join("rules.yml"),
        rotor_daemon::alert_rules(&fx.config),
    )
    .unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/alerts");
    for file in UNIT_TESTS {
        std::fs::copy(dir.join(file), fx.path().join(file)).unwrap();
    }
    let out = std::process::Command::new(common::promtool())
        .args(["test", "rules"])
        .args(UNIT_TESTS)
        .current_dir(fx.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool test rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("SUCCESS")
            .count(),
        UNIT_TESTS.len()
    );
}

/// Every series the unit tests feed the rules is a metric `/metrics` really exposes.
#[test]
fn the_unit_tests_use_the_metric_names_of_the_exposition() {
    let text: String = UNIT_TESTS
        .iter()
        .map(|f| {
            std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/alerts")
                    .join(f),
            )
            .unwrap()
        })
        .collect();
    let exposition = rotor_daemon::metrics::Metrics::new().render(&[]);
    let mut seen = 0;
    for line in text.lines() {
        let Some(series) = line.trim().strip_prefix("- series: '") else {
            continue;
        };
        let name = series.split('{').next().unwrap();
        assert!(
            exposition.contains(&format!("# TYPE {name} ")),
            "{name} is not exposed:\n{exposition}"
        );
        seen += 1;
    }
    assert!(seen >= 6, "{seen} series");
}
