//! `on_emergency` hooks with real processes: output is dropped however much there is, and a
//! timeout kills the hook and everything it started.

use std::time::{Duration, Instant};

use super::*;

fn secret() -> SecretName {
    SecretName::new("db-main").unwrap()
}

fn alive(pid: &str) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[tokio::test]
async fn a_hook_that_prints_without_end_keeps_none_of_it_and_is_not_blocked() {
    // 32 MiB on each stream, then a clean exit: nothing is kept, nothing blocks.
    let hook = "head -c 33554432 /dev/zero; head -c 33554432 /dev/zero >&2; exit 0";
    let done = rotor_process::run(hook_spec(hook, &secret(), Duration::from_secs(30)))
        .await
        .unwrap();
    assert!(done.status.success());
    assert!(done.stdout.bytes.is_empty() && done.stdout.truncated);
    assert!(done.stderr.bytes.is_empty() && done.stderr.truncated);
    let check = run_hook(hook, &secret(), Duration::from_secs(30)).await;
    assert_eq!(check.status, CheckStatus::Pass, "{}", check.detail);

    // One that never stops printing ends at its timeout.
    let started = Instant::now();
    let check = run_hook("yes rotor", &secret(), Duration::from_secs(1)).await;
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(check.status, CheckStatus::Fail);
    assert_eq!(check.detail, "timed out after 1s (killed)");
}

#[tokio::test]
async fn a_hook_that_times_out_takes_the_children_it_forked_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("child");
    let hook = format!("sleep 300 & echo $! > {}; wait", pidfile.display());
    let started = Instant::now();
    let check = run_hook(&hook, &secret(), Duration::from_secs(1)).await;
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(check.status, CheckStatus::Fail);
    assert_eq!(check.detail, "timed out after 1s (killed)");
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid.trim()) {
        assert!(
            Instant::now() < deadline,
            "the hook's child {pid} survived its timeout"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn a_hook_is_told_its_secret_and_that_this_is_an_emergency() {
    let hook = r#"test "$ROTOR_SECRET" = db-main && test "$ROTOR_EMERGENCY" = 1"#;
    let check = run_hook(hook, &secret(), Duration::from_secs(10)).await;
    assert_eq!(check.status, CheckStatus::Pass, "{}", check.detail);
}
