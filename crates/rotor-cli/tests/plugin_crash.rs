//! Crash safety of `kind = "command"` with real processes, against the reference plugins on
//! a real nginx (`nginx-htpasswd`) and a real sshd (`ssh-authorized-keys`, the `ssh_` tests):
//! - rotor is SIGKILLed at each step boundary (fail-points), then `rotor resume` completes;
//! - the plugin is SIGKILLed inside each step, before it did the work and after it did it
//!   but before rotor heard; rotor retries the step (a signal death is transient) and the
//!   same `rotor rotate` completes.
//!
//! After each: exactly one current, accepted by the target (curl; `ssh -i`); the old value
//! previous and accepted during grace, or retired and refused; no pending left; the htpasswd
//! or authorized_keys file holds exactly the users or keys of the live values; the audit chain
//! verifies.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::plugin::{credential, htpasswd_users, status, web_config};
use common::ssh::{authorized, key, logs_in, ssh_config};
use common::{Env, Run, kill_at};
use rotor_test_support::{Nginx, Sshd};

fn stall_once() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/plugins/stall-once")
}

/// A secret `web` already rotated once (app_a current), on its own nginx.
fn rotated_once(grace: &str, wrapper: &[String]) -> (Nginx, Env) {
    let nginx = Nginx::start().expect("nginx (run scripts/install-deps)");
    let env = Env::new(&web_config(&nginx, grace, wrapper));
    env.rotor(&["rotate", "web"]).ok();
    (nginx, env)
}

/// What must hold after the interrupted second rotation completed.
fn check_completed(nginx: &Nginx, env: &Env, old: &(String, String), grace: bool) {
    let new = credential(env, "current");
    assert_eq!(
        new.0, "app_b",
        "the rotation moved current to the other user"
    );
    assert_ne!(new.1, old.1);
    assert_eq!(status(nginx, &new), 200, "the new value works on nginx");
    assert!(env.holders("web", "pending").is_empty(), "no pending left");
    assert_eq!(
        env.holders("web", "current").len(),
        1,
        "exactly one current"
    );
    if grace {
        assert_eq!(&credential(env, "previous"), old, "no value lost");
        assert_eq!(status(nginx, old), 200, "the old value works in grace");
        assert_eq!(htpasswd_users(nginx), ["app_a", "app_b"]);
    } else {
        assert!(env.holders("web", "previous").is_empty(), "retired");
        assert_eq!(
            status(nginx, old),
            401,
            "the old value is refused after retire"
        );
        assert_eq!(htpasswd_users(nginx), ["app_b"]);
    }
    env.audit_verifies();
}

fn rotor_killed_at(point: &str, grace: bool) {
    let (nginx, env) = rotated_once(if grace { "1h" } else { "0s" }, &[]);
    let old = credential(&env, "current");
    kill_at(&env, "web", point);
    if point == "during-retire" {
        // Finished, and the target already dropped the old value; the store still has it.
        assert_ne!(credential(&env, "current").1, old.1);
        assert_eq!(&credential(&env, "previous"), &old);
    } else {
        assert_eq!(&credential(&env, "current"), &old, "current untouched");
        assert_eq!(
            status(&nginx, &old),
            200,
            "the old value works while interrupted"
        );
    }
    let r = env.rotor(&["resume", "web"]).ok();
    assert!(r.stdout.contains("web: rotated"), "{}", r.stdout);
    check_completed(&nginx, &env, &old, grace);
}

#[test]
fn rotor_killed_after_create() {
    rotor_killed_at("after-create", true);
}

#[test]
fn rotor_killed_after_set() {
    rotor_killed_at("after-set", true);
}

#[test]
fn rotor_killed_after_test() {
    rotor_killed_at("after-test", true);
}

#[test]
fn rotor_killed_during_retire() {
    rotor_killed_at("during-retire", false);
}

#[test]
fn rotor_killed_after_finish() {
    let (nginx, env) = rotated_once("1h", &[]);
    let old = credential(&env, "current");
    kill_at(&env, "web", "after-finish");
    // Finish committed before the kill: nothing is left to resume, both values work.
    check_completed(&nginx, &env, &old, true);
    assert_eq!(env.history("web")["rotations"][0]["status"], "grace");
}

/// Runs `rotor rotate web` with the wrapper stalling once at `step`, SIGKILLs the plugin
/// there, and lets that same run complete.
fn plugin_killed_at(step: &str, mode: &str, grace: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("stalled");
    let wrapper = stall_wrapper(step, mode, &marker);
    // An existing marker lets the first rotation through; the second one stalls.
    std::fs::write(&marker, "not yet").expect("marker");
    let (nginx, env) = rotated_once(if grace { "1h" } else { "0s" }, &wrapper);
    let old = credential(&env, "current");
    std::fs::remove_file(&marker).expect("remove marker");
    let out = rotate_killing_the_plugin(&env, "web", &marker, step);
    assert_eq!(
        out.code, 0,
        "stdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );
    assert!(
        out.stderr.contains("killed by a signal"),
        "the engine saw the kill and retried: {}",
        out.stderr
    );
    check_completed(&nginx, &env, &old, grace);
}

/// The argv prefix that makes the plugin stall once at `step` (`mode`: before or after its
/// work), writing its pid to `marker`.
fn stall_wrapper(step: &str, mode: &str, marker: &std::path::Path) -> [String; 4] {
    [
        stall_once().display().to_string(),
        step.to_owned(),
        mode.to_owned(),
        marker.display().to_string(),
    ]
}

/// Runs `rotor rotate NAME`, SIGKILLs the plugin once it stalled (its pid in `marker`), and
/// lets that same run go on to its end.
fn rotate_killing_the_plugin(env: &Env, name: &str, marker: &std::path::Path, step: &str) -> Run {
    let child = env
        .command(&["rotate", name])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rotor");
    let deadline = Instant::now() + Duration::from_secs(30);
    let pid = loop {
        if let Ok(pid) = std::fs::read_to_string(marker) {
            break pid;
        }
        assert!(Instant::now() < deadline, "the plugin never reached {step}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let kill = std::process::Command::new("kill")
        .args(["-KILL", pid.trim()])
        .status()
        .expect("kill");
    assert!(kill.success(), "SIGKILL of the plugin");
    common::run_of(child.wait_with_output().expect("wait rotor"))
}

#[test]
fn plugin_killed_in_create() {
    plugin_killed_at("create", "after", true);
}

#[test]
fn plugin_killed_before_set() {
    plugin_killed_at("set", "before", true);
}

#[test]
fn plugin_killed_after_set() {
    plugin_killed_at("set", "after", true);
}

#[test]
fn plugin_killed_in_test() {
    plugin_killed_at("test", "after", true);
}

#[test]
fn plugin_killed_in_finish() {
    plugin_killed_at("finish", "after", true);
}

#[test]
fn plugin_killed_in_retire() {
    plugin_killed_at("retire", "after", false);
}

// ---------------------------------------------------------------- ssh-authorized-keys

/// A secret `deploy_key` already rotated once, on its own sshd.
fn ssh_rotated_once(grace: &str, wrapper: &[String]) -> (Sshd, Env) {
    let sshd = Sshd::start().expect("sshd (run scripts/install-deps)");
    let env = Env::new(&ssh_config(&sshd, grace, wrapper));
    env.rotor(&["rotate", "deploy_key"]).ok();
    (sshd, env)
}

/// What must hold after the interrupted second rotation of `deploy_key` completed.
fn ssh_check_completed(sshd: &Sshd, env: &Env, old: &(String, String), grace: bool) {
    let new = key(env, "current");
    assert_ne!(&new, old, "the rotation made a new key current");
    assert!(logs_in(sshd, &new), "the new key logs in");
    assert!(
        env.holders("deploy_key", "pending").is_empty(),
        "no pending left"
    );
    assert_eq!(env.holders("deploy_key", "current").len(), 1);
    if grace {
        assert_eq!(&key(env, "previous"), old, "no value lost");
        assert!(logs_in(sshd, old), "the old key logs in during grace");
        assert_eq!(authorized(sshd), [old.1.as_str(), new.1.as_str()]);
    } else {
        assert!(env.holders("deploy_key", "previous").is_empty(), "retired");
        assert!(!logs_in(sshd, old), "the old key is refused after retire");
        assert_eq!(authorized(sshd), [new.1.as_str()]);
    }
    env.audit_verifies();
}

fn ssh_rotor_killed_at(point: &str, grace: bool) {
    let (sshd, env) = ssh_rotated_once(if grace { "1h" } else { "0s" }, &[]);
    let old = key(&env, "current");
    kill_at(&env, "deploy_key", point);
    if point == "during-retire" {
        // Finished, and the target may already have dropped the old key; the store keeps it.
        assert_ne!(key(&env, "current"), old);
        assert_eq!(key(&env, "previous"), old);
    } else {
        assert_eq!(key(&env, "current"), old, "current untouched");
        assert!(
            logs_in(&sshd, &old),
            "the old key logs in while interrupted"
        );
    }
    let r = env.rotor(&["resume", "deploy_key"]).ok();
    assert!(r.stdout.contains("deploy_key: rotated"), "{}", r.stdout);
    ssh_check_completed(&sshd, &env, &old, grace);
}

#[test]
fn ssh_rotor_killed_after_create() {
    ssh_rotor_killed_at("after-create", true);
}

#[test]
fn ssh_rotor_killed_after_set() {
    ssh_rotor_killed_at("after-set", true);
}

#[test]
fn ssh_rotor_killed_after_test() {
    ssh_rotor_killed_at("after-test", true);
}

#[test]
fn ssh_rotor_killed_during_retire() {
    ssh_rotor_killed_at("during-retire", false);
}

fn ssh_plugin_killed_at(step: &str, mode: &str, grace: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("stalled");
    std::fs::write(&marker, "not yet").expect("marker");
    let wrapper = stall_wrapper(step, mode, &marker);
    let (sshd, env) = ssh_rotated_once(if grace { "1h" } else { "0s" }, &wrapper);
    let old = key(&env, "current");
    std::fs::remove_file(&marker).expect("remove marker");
    let out = rotate_killing_the_plugin(&env, "deploy_key", &marker, step);
    assert_eq!(
        out.code, 0,
        "stdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );
    assert!(
        out.stderr.contains("killed by a signal"),
        "the engine saw the kill and retried: {}",
        out.stderr
    );
    ssh_check_completed(&sshd, &env, &old, grace);
}

#[test]
fn ssh_plugin_killed_in_create() {
    ssh_plugin_killed_at("create", "after", true);
}

#[test]
fn ssh_plugin_killed_before_set() {
    ssh_plugin_killed_at("set", "before", true);
}

#[test]
fn ssh_plugin_killed_after_set() {
    ssh_plugin_killed_at("set", "after", true);
}

#[test]
fn ssh_plugin_killed_in_test() {
    ssh_plugin_killed_at("test", "after", true);
}

#[test]
fn ssh_plugin_killed_in_finish() {
    ssh_plugin_killed_at("finish", "after", true);
}

#[test]
fn ssh_plugin_killed_in_retire() {
    ssh_plugin_killed_at("retire", "after", false);
}
