//! Crash safety with real processes: `rotor rotate` is SIGKILLed at each step boundary (a
//! fail-point compiled only into test builds), then `rotor resume` must complete the rotation
//! with exactly one current, the old current as previous, no value lost, and an intact audit
//! chain.

mod common;

use common::{Env, kill_at};

const CONFIG: &str = r#"
[secrets.session]
kind = "random"
tier = "high"
grace = "1h"

[secrets.quick]
kind = "random"
rotate_every = "1d"
grace = "0s"

[secrets.jwt]
kind = "jwt"
algorithm = "EdDSA"
tier = "high"
jwks_max_age = "0s"
grace = "1h"
"#;

fn check_after_resume(env: &Env, name: &str, old_current_id: &str, old_value: &str, grace: bool) {
    let r = env.rotor(&["resume", name]).ok();
    assert!(
        r.stdout.contains(&format!("{name}: rotated")),
        "{}",
        r.stdout
    );
    let current = env.holders(name, "current");
    assert_eq!(current.len(), 1, "exactly one current");
    assert_ne!(current[0], old_current_id, "the rotation moved current");
    let h = env.history(name);
    let rot = &h["rotations"][0];
    assert_eq!(rot["previous_version"], old_current_id);
    if grace {
        assert_eq!(
            env.holders(name, "previous"),
            vec![old_current_id.to_owned()]
        );
        assert_eq!(env.reveal(name, "previous"), old_value, "no value lost");
        assert_eq!(rot["status"], "grace");
    } else {
        assert!(env.holders(name, "previous").is_empty(), "retired");
        assert_eq!(rot["status"], "completed");
    }
    assert!(
        env.holders(name, "pending").is_empty(),
        "no pending left behind"
    );
    assert!(!env.reveal(name, "current").is_empty());
    // The old version is still stored (unlabelled after retire), its value intact.
    let versions = h["versions"].as_array().expect("versions");
    assert!(versions.iter().any(|v| v["id"] == old_current_id));
    env.audit_verifies();
    let audit = env
        .rotor(&["--format", "json", "audit", "tail", "-n", "50"])
        .ok()
        .json();
    assert!(
        audit
            .as_array()
            .expect("audit")
            .iter()
            .any(|r| r["action"] == "rotation.resume"),
        "the audit says the rotation was resumed"
    );
}

fn crash_case(name: &str, point: &str, grace: bool) {
    let env = Env::new(CONFIG);
    env.rotor(&["rotate", name]).ok();
    let old_id = env.holders(name, "current").remove(0);
    let old_value = env.reveal(name, "current");
    kill_at(&env, name, point);
    // While interrupted: the current value is still the old one, and a new rotation is refused.
    assert_eq!(env.reveal(name, "current"), old_value);
    let busy = env.rotor(&["rotate", name]);
    assert_eq!(busy.code, 4, "{}", busy.stderr);
    assert!(busy.stderr.contains("rotor resume"), "{}", busy.stderr);
    check_after_resume(&env, name, &old_id, &old_value, grace);
}

#[test]
fn killed_after_create() {
    crash_case("session", "after-create", true);
}

#[test]
fn killed_after_set() {
    crash_case("jwt", "after-set", true);
}

#[test]
fn killed_after_test() {
    crash_case("session", "after-test", true);
}

#[test]
fn killed_after_finish() {
    let env = Env::new(CONFIG);
    env.rotor(&["rotate", "session"]).ok();
    let old_id = env.holders("session", "current").remove(0);
    let old_value = env.reveal("session", "current");
    kill_at(&env, "session", "after-finish");
    // Finish committed: the stage move happened atomically before the kill.
    assert_ne!(env.reveal("session", "current"), old_value);
    assert_eq!(env.reveal("session", "previous"), old_value);
    let h = env.history("session");
    assert_eq!(h["rotations"][0]["previous_version"], old_id.as_str());
    assert_eq!(h["rotations"][0]["status"], "grace");
    env.audit_verifies();
}

#[test]
fn killed_during_retire() {
    let env = Env::new(CONFIG);
    env.rotor(&["rotate", "quick"]).ok();
    let old_id = env.holders("quick", "current").remove(0);
    let old_value = env.reveal("quick", "current");
    kill_at(&env, "quick", "during-retire");
    // Finished but not yet retired: new current, the old value still previous and readable.
    assert_ne!(env.reveal("quick", "current"), old_value);
    assert_eq!(env.reveal("quick", "previous"), old_value);
    check_after_resume(&env, "quick", &old_id, &old_value, false);
}

#[test]
fn abort_after_a_crash_rolls_back() {
    let env = Env::new(CONFIG);
    env.rotor(&["rotate", "session"]).ok();
    let old_value = env.reveal("session", "current");
    kill_at(&env, "session", "after-set");
    env.rotor(&["abort", "session", "--reason", "operator gave up"])
        .ok();
    assert_eq!(env.reveal("session", "current"), old_value);
    assert!(env.holders("session", "pending").is_empty());
    assert_eq!(env.history("session")["rotations"][0]["status"], "aborted");
    env.rotor(&["rotate", "session", "--emergency", "--reason", "drill"])
        .ok();
    env.audit_verifies();
}
