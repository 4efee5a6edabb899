//! Issue 15 item 2: a paused replica must not freeze the fleet.
//!
//! Two `rotor serve` replicas on one PostgreSQL store (and one config directory) rotate many
//! due secrets. Their rate together is measured; then replica A is SIGSTOPped at a moment its
//! session is idle inside a store transaction (holding row locks, possibly the audit head) and
//! kept stopped for 8 s. Asserted:
//! - rotor's sessions carry a 2 s `idle_in_transaction_session_timeout`, so the server ends A's
//!   sessions: none stays idle in a transaction past it (before, PostgreSQL's 60 s);
//! - B keeps rotating: over the whole pause it keeps at least `MIN_SHARE` of the two replicas'
//!   rate, and it never stands still for longer than `MAX_FLAT` (the server's timeout, a head
//!   lock wait and the sampling interval). Before, B sometimes finished nothing at all for the
//!   whole pause (seen: 99 -> 185, 152 -> 250, 61 -> 61): A was stopped while holding the audit
//!   anchor's file lock (`audit.anchor.lock`, shared by processes with one config directory),
//!   and B's blocking wait for it inside `Store::apply` froze B's async runtime until A went on;
//!   now only the anchor's writer thread waits for that lock (`anchor::Anchored`);
//! - after SIGCONT everything is rotated exactly once and the audit chain verifies.

mod common;

use std::time::{Duration, Instant};

use common::Env;
use common::replica::{count, random_fleet_config, serve, signal, wait_settled};
use rotor_test_support::Postgres;

const SECRETS: usize = 500;
/// How long A stays stopped: four times the server's idle-in-transaction timeout.
const PAUSE: Duration = Duration::from_secs(8);
/// How long the two replicas' rate is measured before the pause.
const RATE_WINDOW: Duration = Duration::from_secs(2);
/// The least share of the two replicas' rate B keeps alone through the pause.
const MIN_SHARE: f64 = 0.3;
/// The longest B may finish nothing while A is stopped, in ms.
const MAX_FLAT: u128 = 3_000;

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
    // The fleet's rate with both replicas running.
    let (n0, t0) = (count(&pg, FINISHED), Instant::now());
    std::thread::sleep(RATE_WINDOW);
    let unpaused = (count(&pg, FINISHED) - n0) as f64 / t0.elapsed().as_secs_f64();

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
    // B's progress through the pause, sampled: a freeze shows as a flat stretch.
    let mut timeline = vec![(0u128, before)];
    let mut stuck = None;
    while stopped.elapsed() < PAUSE {
        std::thread::sleep(Duration::from_millis(500));
        timeline.push((stopped.elapsed().as_millis(), count(&pg, FINISHED)));
        // Past the server's idle-in-transaction timeout nothing of A may hold a lock.
        if stuck.is_none() && stopped.elapsed() > Duration::from_millis(3_000) {
            stuck = Some((
                count(&pg, STUCK),
                pg.psql_db(
                    "rotor",
                    "SELECT pid, state, now() - state_change, now() - xact_start, left(query, 80) FROM pg_stat_activity WHERE application_name = 'rotor'",
                )
                .unwrap_or_default(),
            ));
        }
    }
    let after = count(&pg, FINISHED);
    let paused = (after - before) as f64 / stopped.elapsed().as_secs_f64();
    eprintln!(
        "{{\"unpaused_per_s\": {unpaused:.1}, \"paused_per_s\": {paused:.1}, \"timeline_ms_finished\": {timeline:?}}}"
    );
    let stuck_at_end = count(&pg, STUCK);
    signal(&a, "-CONT");
    let (stuck, sessions) = stuck.expect("sampled after the timeout");
    assert_eq!(stuck, 0, "the stalled session was ended: {sessions}");
    assert_eq!(stuck_at_end, 0, "no session of A outlives the timeout");
    let mut flat = 0;
    let mut since = timeline[0];
    for &(at, n) in &timeline {
        if n != since.1 {
            since = (at, n);
        }
        flat = flat.max(at - since.0);
    }
    assert!(
        flat <= MAX_FLAT || since.1 == SECRETS,
        "B finished nothing for {flat} ms while A was stopped; timeline {timeline:?}"
    );
    // B alone, over the whole pause (its first seconds included, while the server ends A's
    // sessions), keeps at least MIN_SHARE of the two replicas' rate; unless it ran out of work.
    assert!(
        paused >= MIN_SHARE * unpaused || after == SECRETS,
        "B stalled while A was stopped: {paused:.1}/s against {unpaused:.1}/s before ({before} -> {after}); timeline {timeline:?}"
    );

    let deadline = Instant::now() + Duration::from_secs(300);
    wait_settled(&pg, SECRETS, deadline, Duration::from_millis(200));
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
