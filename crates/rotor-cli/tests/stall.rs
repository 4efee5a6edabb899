//! Issue 15 item 2: a paused replica must not freeze the fleet.
//!
//! Two `rotor serve` replicas on one PostgreSQL store rotate many due secrets. Replica A is
//! SIGSTOPped at a moment its session is idle inside a store transaction (holding row locks,
//! possibly the audit head), and kept stopped for 8 s. rotor sets a short
//! `idle_in_transaction_session_timeout` on its sessions, so the server ends A's session within
//! seconds: no session of A stays idle in a transaction past it (before, A held its locks until
//! PostgreSQL's 60 s timeout). After SIGCONT everything is rotated exactly once. B's progress
//! during the pause is printed: it is still uneven (issue 15.2 stays open).

mod common;

use std::time::{Duration, Instant};

use common::Env;
use common::replica::{count, random_fleet_config, serve, signal};
use rotor_test_support::Postgres;

const SECRETS: usize = 250;

const FINISHED: &str = "SELECT count(*) FROM rotor_audit WHERE action = 'rotation.finish'";
/// rotor sessions idle inside a transaction for more than 200 ms: only a stopped process's
/// (rotor's own transactions never wait on anything but their statements).
const STALLED: &str = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'rotor' AND state = 'idle in transaction' AND state_change < now() - interval '200 milliseconds'";
/// A session of the stopped replica idle in a transaction past the 2 s server timeout (plus
/// slack): none may be. (Another of its connections may be granted a lock just as the first is
/// ended and sit idle for up to the timeout itself: that one is ended the same way.)
const STUCK: &str = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'rotor' AND state LIKE 'idle in transaction%' AND state_change < now() - interval '2500 milliseconds'";

#[test]
fn a_replica_stopped_inside_a_transaction_does_not_stall_the_other() {
    let pg = Postgres::start().expect("start PostgreSQL");
    pg.create_db("rotor").expect("create db");
    let config = random_fleet_config(&pg, SECRETS, "3s");
    let env = Env::uninit(&config);
    let mut init = env.command(&["init"]);
    init.env("PGPW", pg.admin_password());
    assert!(init.output().expect("init").status.success());
    let pw = pg.admin_password().to_owned();
    let mut a = serve(&env, &pw);
    let mut b = serve(&env, &pw);

    let start = Instant::now();
    while count(&pg, FINISHED) < 50 {
        assert!(start.elapsed() < Duration::from_secs(120), "no progress");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Stop A until it is caught inside a transaction.
    let mut tries = 0;
    loop {
        tries += 1;
        signal(&a, "-STOP");
        std::thread::sleep(Duration::from_millis(300));
        if count(&pg, STALLED) > 0 {
            break;
        }
        signal(&a, "-CONT");
        assert!(tries < 200, "never caught replica A inside a transaction");
        std::thread::sleep(Duration::from_millis(7 * (tries % 5)));
    }
    let stopped = Instant::now();
    let before = count(&pg, FINISHED);
    eprintln!("replica A stopped inside a transaction after {tries} tries");
    // Give the server its idle-in-transaction timeout: then nothing of A may hold a lock.
    std::thread::sleep(Duration::from_millis(3_000));
    assert_eq!(
        count(&pg, STUCK),
        0,
        "the stalled session was ended: {}",
        pg.psql_db(
            "rotor",
            "SELECT pid, state, now() - state_change, now() - xact_start, left(query, 80) FROM pg_stat_activity WHERE application_name = 'rotor'"
        )
        .unwrap_or_default()
    );
    // How far B gets while A is still stopped is printed, not asserted: B still loses whole
    // seconds behind A's other connections, each granted A's locks in turn and then ended by
    // the server's timeout (issue 15.2 is open; seen: 99 -> 185, 152 -> 250, 61 -> 61).
    std::thread::sleep(Duration::from_millis(7_500).saturating_sub(stopped.elapsed()));
    let after = count(&pg, FINISHED);
    eprintln!(
        "while A was stopped ({:?} in): {before} -> {after} rotations finished",
        stopped.elapsed()
    );
    assert_eq!(count(&pg, STUCK), 0, "no session of A outlives the timeout");
    std::thread::sleep(Duration::from_secs(8).saturating_sub(stopped.elapsed()));
    signal(&a, "-CONT");

    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let current = count(
            &pg,
            "SELECT count(*) FROM rotor_stages WHERE stage = 'current'",
        );
        let open = count(
            &pg,
            "SELECT count(*) FROM rotor_rotations WHERE status IN ('running', 'grace')",
        );
        if current == SECRETS && open == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{current} secrets have a current value, {open} rotations open"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for r in [&mut a, &mut b] {
        r.kill().expect("stop replica");
        r.wait().expect("reap");
    }
    assert_eq!(
        count(
            &pg,
            "SELECT count(*) FROM (SELECT rotation FROM rotor_audit WHERE action = 'rotation.finish' GROUP BY rotation HAVING count(*) <> 1) t"
        ),
        0,
        "a rotation finished twice"
    );
    assert_eq!(count(&pg, FINISHED), SECRETS);
    let mut verify = env.command(&["audit", "verify"]);
    verify.env("PGPW", &pw);
    assert!(verify.output().expect("verify").status.success());
}
