//! The child runner with real processes (`sh`, `sleep`): the timeout kills the whole
//! group, output is bounded, the environment is cleared, input arrives on stdin.

use std::time::{Duration, Instant};

use rotor_process::{ProcessError, Spec, run};
use zeroize::Zeroizing;

fn sh(script: &str, timeout: Duration) -> Spec {
    Spec::new("/bin/sh", timeout).args(["-c", script])
}

fn alive(pid: &str) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[tokio::test]
async fn timeout_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pidfile = dir.path().join("grandchild");
    // The child starts a grandchild that would outlive it, then hangs itself.
    let script = format!(
        "sleep 300 & echo $! > {}; echo started >&2; wait",
        pidfile.display()
    );
    let started = Instant::now();
    let err = run(sh(&script, Duration::from_millis(500)))
        .await
        .expect_err("must time out");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let ProcessError::TimedOut { stderr, .. } = &err else {
        panic!("not a timeout: {err}");
    };
    assert_eq!(String::from_utf8_lossy(stderr), "started\n");
    assert!(
        err.to_string()
            .contains("every process it started were killed"),
        "{err}"
    );
    let pid = std::fs::read_to_string(&pidfile).expect("pid");
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid.trim()) {
        assert!(
            Instant::now() < deadline,
            "grandchild {pid} survived the timeout"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn a_straggler_left_after_exit_is_killed_and_does_not_hold_the_pipes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pidfile = dir.path().join("straggler");
    let script = format!("sleep 300 & echo $! > {}; echo done", pidfile.display());
    let started = Instant::now();
    let out = run(sh(&script, Duration::from_secs(30)))
        .await
        .expect("run");
    assert!(out.status.success());
    assert_eq!(&out.stdout.bytes[..], b"done\n");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let pid = std::fs::read_to_string(&pidfile).expect("pid");
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid.trim()) {
        assert!(Instant::now() < deadline, "straggler {pid} survived");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn output_is_bounded_and_the_child_is_not_blocked() {
    // 4 MiB on stdout against a 64 KiB limit: the rest is drained, the child finishes.
    let out = run(sh(
        "head -c 4194304 /dev/zero; echo end >&2",
        Duration::from_secs(30),
    )
    .output_limit(65536))
    .await
    .expect("run");
    assert!(out.status.success());
    assert_eq!(out.stdout.bytes.len(), 65536);
    assert!(out.stdout.truncated);
    assert!(!out.stderr.truncated);
    assert_eq!(&out.stderr.bytes[..], b"end\n");
}

#[tokio::test]
async fn environment_is_cleared_but_for_the_allow_list_and_what_is_set() {
    let out = run(sh("env", Duration::from_secs(10)).env("ROTOR_STEP", "set"))
        .await
        .expect("run");
    let env = String::from_utf8_lossy(&out.stdout.bytes).into_owned();
    let keys: Vec<&str> = env.lines().filter_map(|l| l.split('=').next()).collect();
    assert!(keys.contains(&"ROTOR_STEP"), "{env}");
    for k in &keys {
        assert!(
            rotor_process::INHERITED_ENV.contains(k)
                || *k == "ROTOR_STEP"
                || *k == "PWD"
                || *k == "SHLVL"
                || *k == "_",
            "{k} leaked into the child: {env}"
        );
    }
    // Whatever this test process has (CARGO_*, RUST_*), the child does not.
    assert!(std::env::vars().any(|(k, _)| k.starts_with("CARGO")));
    assert!(!keys.iter().any(|k| k.starts_with("CARGO")), "{env}");
}

#[tokio::test]
async fn stdin_reaches_the_child_and_exit_codes_are_reported() {
    let input = Zeroizing::new(b"hello on stdin\n".to_vec());
    let out = run(sh("cat; exit 75", Duration::from_secs(10)).stdin(input))
        .await
        .expect("run");
    assert_eq!(out.code(), Some(75));
    assert_eq!(&out.stdout.bytes[..], b"hello on stdin\n");
    // A child that never reads its stdin does not break the run.
    let big = Zeroizing::new(vec![b'x'; 1 << 20]);
    let out = run(sh("exit 0", Duration::from_secs(10)).stdin(big))
        .await
        .expect("run");
    assert!(out.status.success());
}

#[tokio::test]
async fn a_missing_program_is_a_spawn_error_naming_it() {
    let err = run(Spec::new("/nonexistent/plugin", Duration::from_secs(1)))
        .await
        .expect_err("no such program");
    assert!(matches!(err, ProcessError::Spawn { .. }));
    assert!(err.to_string().contains("/nonexistent/plugin"), "{err}");
}
