//! Three `rotor serve` replicas share one PostgreSQL store. 1,000 random secrets are all due;
//! one replica is SIGKILLed halfway. Every secret must be rotated exactly once (the audit
//! shows one finish each), none lost, and the audit chain must verify.

mod common;

use std::time::{Duration, Instant};

use common::Env;
use common::replica::{Replica, count, random_fleet_config, serve, wait_settled};
use rotor_test_support::Postgres;

const SECRETS: usize = 1_000;

#[test]
fn three_replicas_one_killed_every_secret_rotated_exactly_once() {
    let pg = Postgres::start().expect("start PostgreSQL");
    pg.create_db("rotor").expect("create db");
    let config = random_fleet_config(&pg, SECRETS, "3s");
    let env = Env::uninit(&config);
    let mut init = env.command(&["init"]);
    init.env("PGPW", pg.admin_password());
    assert!(init.output().expect("init").status.success());

    let pw = pg.admin_password().to_owned();
    let mut replicas: Vec<Replica> = (0..3).map(|_| serve(&env, &pw)).collect();

    // Kill replica 0 with SIGKILL once about a third of the secrets are done.
    let start = Instant::now();
    let deadline = Duration::from_secs(400);
    loop {
        let finished = count(
            &pg,
            "SELECT count(*) FROM rotor_audit WHERE action = 'rotation.finish'",
        );
        if finished >= SECRETS / 3 {
            replicas[0].kill().expect("SIGKILL replica 0");
            replicas[0].wait().expect("reap");
            eprintln!(
                "killed replica 0 after {finished} finishes at {:?}",
                start.elapsed()
            );
            break;
        }
        assert!(
            start.elapsed() < deadline,
            "only {finished} rotations after {deadline:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // The survivors finish everything, including what replica 0 left running.
    wait_settled(&pg, SECRETS, start + deadline, Duration::from_millis(200));
    eprintln!("all {SECRETS} rotated in {:?}", start.elapsed());
    for r in replicas.iter_mut().skip(1) {
        r.kill().expect("stop replica");
        r.wait().expect("reap");
    }

    // Exactly one finished rotation per secret, one current version each, nothing pending.
    let per_secret = pg
        .psql_db(
            "rotor",
            "SELECT count(*) FROM (SELECT secret FROM rotor_audit WHERE action = 'rotation.finish' GROUP BY secret HAVING count(*) <> 1) t",
        )
        .expect("psql");
    assert_eq!(
        per_secret.trim(),
        "0",
        "a secret was rotated more than once"
    );
    assert_eq!(
        count(
            &pg,
            "SELECT count(DISTINCT secret) FROM rotor_audit WHERE action = 'rotation.finish'"
        ),
        SECRETS
    );
    assert_eq!(
        count(&pg, "SELECT count(*) FROM rotor_versions"),
        SECRETS,
        "no extra versions"
    );
    assert_eq!(
        count(
            &pg,
            "SELECT count(*) FROM rotor_stages WHERE stage = 'pending'"
        ),
        0
    );
    let resumed = count(
        &pg,
        "SELECT count(*) FROM rotor_audit WHERE action = 'rotation.resume'",
    );
    eprintln!("rotations resumed by a survivor: {resumed}");
    let mut verify = env.command(&["audit", "verify"]);
    verify.env("PGPW", &pw);
    let out = verify.output().expect("verify");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
