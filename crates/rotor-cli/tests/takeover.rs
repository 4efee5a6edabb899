//! Issue 15 item 1: a lease is taken only by compare-and-set on the token it was judged on,
//! never from a live holder and never on a finished rotation, so no step runs twice.
//!
//! The deterministic reproduction of the issue, on the PostgreSQL store: 30 JWT secrets with
//! `prepublish = "2s"` are rotated (each waits at activate, its `rotor rotate` gone); once
//! every activation is due `rotor resume` starts, and 50 ms later `rotor resume j29`. Before the fix, j29's
//! rotation got two `rotation.finish` records, the second after a "forced takeover" from the
//! other, live process.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::Env;
use rotor_test_support::Postgres;

const SECRETS: usize = 30;

fn resume(env: &Env, pw: &str, args: &[&str]) -> Child {
    let mut all = vec!["resume"];
    all.extend_from_slice(args);
    env.command(&all)
        .env("PGPW", pw)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rotor resume")
}

#[test]
fn two_resumes_never_finish_a_rotation_twice() {
    let pg = Postgres::start().expect("start PostgreSQL");
    pg.create_db("rotor").expect("create db");
    let mut config = format!(
        "[store]\nkind = \"postgres\"\nurl = \"postgres://postgres:${{PGPW}}@127.0.0.1:{}/rotor\"\n",
        pg.port()
    );
    for i in 0..SECRETS {
        config.push_str(&format!(
            "\n[secrets.j{i:02}]\nkind = \"jwt\"\nalgorithm = \"ES256\"\njwks_max_age = \"1s\"\nprepublish = \"2s\"\ngrace = \"1h\"\nrotate_every = \"90d\"\n"
        ));
    }
    let env = Env::uninit(&config);
    let pw = pg.admin_password().to_owned();
    let run = |args: &[&str]| {
        let mut c = env.command(args);
        c.env("PGPW", &pw);
        common::run_of(c.output().expect("run rotor"))
    };
    run(&["init"]).ok();
    let rotated = run(&["rotate", "--all"]).ok();
    // Every activation is due 2 s after its create at the latest (on a loaded machine the
    // rotate itself takes a while, so count from its end).
    let rotated_at = Instant::now();
    assert_eq!(
        rotated.stdout.matches("activates after").count(),
        SECRETS,
        "{}",
        rotated.stdout
    );
    std::thread::sleep(Duration::from_millis(2_100).saturating_sub(rotated_at.elapsed()));
    let all = resume(&env, &pw, &[]);
    std::thread::sleep(Duration::from_millis(50));
    let one = resume(&env, &pw, &["j29"]);
    let pids = [all.id(), one.id()];
    let all = common::run_of(all.wait_with_output().expect("wait"));
    let one = common::run_of(one.wait_with_output().expect("wait"));
    // Contention is not an error worth more than a line: whichever lost j29 says it is busy.
    for r in [&all, &one] {
        assert!(
            r.code == 0 || r.stderr.contains("busy"),
            "{}\n{}",
            r.stdout,
            r.stderr
        );
    }

    eprintln!(
        "resume (all): exit {}, j29: {:?}\nresume j29: exit {}, {:?}",
        all.code,
        all.stdout
            .lines()
            .chain(all.stderr.lines())
            .rfind(|l| l.contains("j29")),
        one.code,
        one.stdout.lines().chain(one.stderr.lines()).next_back()
    );
    let q = |sql: &str| pg.psql_db("rotor", sql).expect("psql").trim().to_owned();
    assert_eq!(
        q("SELECT count(*) FROM rotor_audit WHERE action = 'rotation.finish'"),
        SECRETS.to_string(),
        "every rotation finished: {}\n{}",
        all.stderr,
        one.stderr
    );
    assert_eq!(
        q(
            "SELECT count(*) FROM (SELECT rotation FROM rotor_audit WHERE action = 'rotation.finish' GROUP BY rotation HAVING count(*) > 1) t"
        ),
        "0",
        "a rotation finished twice"
    );
    // Nothing is audited twice either: one activate per rotation.
    assert_eq!(
        q(
            "SELECT count(*) FROM (SELECT rotation FROM rotor_audit WHERE action = 'rotation.activate' GROUP BY rotation HAVING count(*) > 1) t"
        ),
        "0",
        "a step was run twice"
    );
    // No lease was taken from a live holder: never from either resume process.
    for pid in pids {
        assert_eq!(
            q(&format!(
                "SELECT count(*) FROM rotor_audit WHERE action = 'rotation.lease' AND reason LIKE '%:{pid}:%'"
            )),
            "0",
            "a lease was taken from live process {pid}"
        );
    }
    assert_eq!(
        q("SELECT count(*) FROM rotor_audit WHERE reason LIKE 'forced takeover%'"),
        "0"
    );
    assert_eq!(
        // A first rotation has no previous value to keep, so it retires at once.
        q("SELECT count(*) FROM rotor_rotations WHERE status IN ('grace', 'completed')"),
        SECRETS.to_string()
    );
    run(&["audit", "verify"]).ok();
}
