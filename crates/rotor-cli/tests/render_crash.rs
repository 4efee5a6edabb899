//! Issue 9.5: rendered files are as durable as the store. `rotor` is SIGKILLed between a
//! committed finish, retire or put and its render (fail-points compiled into test builds
//! only); the target is then stale, and the next `rotor resume`, `rotor retire --due`, store
//! change or `rotor serve` start-up must bring it up to date and run its `on_change`.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::Env;

const CONFIG: &str = r#"
[secrets.session]
kind = "random"
tier = "high"
grace = "1s"

[secrets.other]
kind = "random"
tier = "low"
grace = "0s"

[[render]]
kind = "dotenv"
path = "app.env"
on_change = "echo reload >> on_change.log"
[render.vars]
SECRET_KEY = "{{ session.current }}"
SECRET_KEY_PREVIOUS = "{{ session.previous }}"
"#;

/// Runs `rotor ARGS` with the fail-point set, waits until it reports reaching it, and kills
/// it with SIGKILL.
fn kill_at(env: &Env, args: &[&str], point: &str) {
    let mut child = env
        .command(args)
        .env("ROTOR_FAILPOINT", point)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rotor");
    let stderr = child.stderr.take().expect("stderr");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut reached = false;
    for line in BufReader::new(stderr).lines() {
        let line = line.expect("read stderr");
        if line.contains(&format!("rotor-failpoint: {point}")) {
            reached = true;
            break;
        }
        assert!(Instant::now() < deadline, "fail-point {point} not reached");
    }
    assert!(
        reached,
        "rotor {args:?} exited before fail-point {point}: is the failpoints feature on?"
    );
    child.kill().expect("SIGKILL");
    assert!(!child.wait().expect("wait").success());
}

/// `$NAME` after `set -a; . FILE` in bash.
fn bash_read(file: &Path, name: &str) -> String {
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("set -a; . \"$1\"; printf %s \"${name}\""))
        .arg("bash")
        .arg(file)
        .output()
        .expect("bash");
    assert!(out.status.success());
    String::from_utf8(out.stdout).expect("utf-8")
}

fn stage(env: &Env, stage: &str) -> String {
    let r = env.rotor(&["get", "session", "--stage", stage, "--reveal"]);
    if r.code == 0 {
        r.stdout.trim_end_matches('\n').to_owned()
    } else {
        String::new()
    }
}

/// Whether `app.env` holds what the store holds now.
fn up_to_date(env: &Env) -> bool {
    let file = env.path("app.env");
    bash_read(&file, "SECRET_KEY") == stage(env, "current")
        && bash_read(&file, "SECRET_KEY_PREVIOUS") == stage(env, "previous")
}

fn reloads(env: &Env) -> usize {
    std::fs::read_to_string(env.path("on_change.log"))
        .unwrap_or_default()
        .lines()
        .count()
}

struct Tally {
    kills: usize,
    stale_left: usize,
}

impl Tally {
    /// After a kill: the target must be stale (the crash hit between commit and render),
    /// then `repair` must bring it up to date and run on_change once more.
    fn check(&mut self, env: &Env, what: &str, repair: impl FnOnce()) {
        self.kills += 1;
        assert!(
            !up_to_date(env),
            "{what}: the kill left the target up to date; the fail-point is not between commit and render"
        );
        let before = reloads(env);
        repair();
        if !up_to_date(env) {
            self.stale_left += 1;
            eprintln!("{what}: the target is still stale");
        } else {
            assert!(reloads(env) > before, "{what}: on_change did not run");
        }
    }
}

#[test]
fn a_crash_between_commit_and_render_leaves_no_stale_target() {
    let env = Env::new(CONFIG);
    env.rotor(&["rotate", "session", "other"]).ok();
    assert!(up_to_date(&env));
    std::thread::sleep(Duration::from_millis(1100));
    env.rotor(&["retire", "--due"]).ok();
    let mut t = Tally {
        kills: 0,
        stale_left: 0,
    };

    for i in 0..2 {
        // finish committed, render lost: `rotor resume`.
        kill_at(&env, &["rotate", "session"], "after-finish");
        t.check(&env, &format!("finish #{i}, then resume"), || {
            env.rotor(&["resume"]).ok();
        });
        // retire committed, render lost: `rotor retire --due` (nothing left to retire).
        std::thread::sleep(Duration::from_millis(1100));
        kill_at(&env, &["retire", "--due"], "after-retire");
        t.check(&env, &format!("retire #{i}, then retire --due"), || {
            env.rotor(&["retire", "--due"]).ok();
        });
        // put committed, render lost: the next store change (of another secret).
        kill_at(&env, &["put", "session", "--generate"], "after-put");
        t.check(&env, &format!("put #{i}, then put other"), || {
            env.rotor(&["put", "other", "--generate"]).ok();
        });
        std::thread::sleep(Duration::from_millis(1100));
        env.rotor(&["retire", "--due"]).ok();
    }

    // finish committed, render lost: `rotor serve` start-up.
    kill_at(&env, &["rotate", "session"], "after-finish");
    let port = rotor_test_support::free_port().expect("port");
    let mut server = None;
    t.check(&env, "finish, then serve start-up", || {
        server = Some(
            env.command(&[
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--no-scheduler",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("serve"),
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "rotor serve did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let mut server = server.expect("serve started");
    server.kill().expect("stop");
    server.wait().expect("reap");

    eprintln!(
        "render crash: {} kill(s) tried, {} stale target(s) left",
        t.kills, t.stale_left
    );
    assert_eq!(t.kills, 7);
    assert_eq!(t.stale_left, 0, "targets left stale after a crash");
    env.audit_verifies();
}
