//! Issue 15: replicas under chaos, judged from the audit log.
//!
//! Three `rotor serve` replicas on one PostgreSQL store (lease 3 s) rotate 300 random and 30
//! JWT secrets (ES256, so each waits at `activate` for its 1 s prepublish), all due. While they
//! work, replicas are SIGKILLed at random moments and restarted (four kills), and one replica is
//! SIGSTOPped for 6 s (twice the lease) and then SIGCONTed. The seed is printed; `CHAOS_SEED`
//! replays a run's choices (not its timing).
//!
//! Then, read from the store's audit log (and its tables):
//! - every rotation has exactly one `rotation.finish`, and each secret exactly one rotation;
//! - no rotation has more than one `rotation.retire`;
//! - **no lease was taken from a live holder.** Each forced takeover's `rotation.lease` record
//!   names the holder (`took over from HOST:PID:NONCE (holder gone …)` or `(lease expired T)`)
//!   and carries the time it was taken under the audit lock. It is judged against what this
//!   test did to the processes: a takeover is allowed when its holder's PID is one this test
//!   SIGKILLed before the record's time, or when the holder is the paused replica and its lease
//!   ran out (`T`) while it was stopped, i.e. between SIGSTOP and SIGCONT (a live holder renews
//!   its lease with every step, so only a frozen one lets it lapse). "Holder gone" is accepted
//!   only for a killed PID. Anything else is a lease taken from a running replica;
//! - no rotation failed (no `failed` row, no `rotation.failed` record): contention is not
//!   failure, so `secret_rotation_failures_total` has nothing to count;
//! - audit times never decrease along `seq`, and `rotor audit verify` passes;
//! - every secret has exactly one `current` and none is left `pending`.
//!
//! The counts (finishes, retires, takeovers, kills) are printed as one JSON line.
//!
//! What it found: a replica stopped while it held the audit anchor's file lock froze every
//! other replica sharing its config directory (their `Store::apply` waited for the lock on an
//! async thread) until it was continued, so their leases lapsed and were taken over from live
//! holders; fixed in `rotor-cli` `anchor.rs` (regression test there). And a 2 s lease is too
//! short: a stopped replica may hold the audit head for the 2 s idle-in-transaction timeout,
//! and a live holder's lease can lapse meanwhile; hence 3 s here, as docs/ha-postgres.md says.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::Env;
use common::replica::{Replica, count, random_fleet_config, serve, signal, wait_settled};
use jiff::Timestamp;
use rotor_test_support::Postgres;

const RANDOM: usize = 300;
const JWT: usize = 30;
const SECRETS: usize = RANDOM + JWT;
const REPLICAS: usize = 3;
const KILLS: usize = 4;
/// Twice the lease.
const PAUSE: Duration = Duration::from_secs(6);
const FINISHED: &str = "SELECT count(*) FROM rotor_audit WHERE action = 'rotation.finish'";

/// A small xorshift generator: the test needs varied choices, not good randomness.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// What the test did to a process, with wall-clock times comparable to the audit's.
#[derive(Debug)]
enum Fault {
    Killed {
        pid: u32,
        at: Timestamp,
    },
    Paused {
        pid: u32,
        from: Timestamp,
        to: Timestamp,
    },
}

struct Record {
    seq: u64,
    time: Timestamp,
    actor: String,
    action: String,
    rotation: Option<String>,
    reason: Option<String>,
}

fn audit(pg: &Postgres) -> Vec<Record> {
    let json = pg
        .psql_db(
            "rotor",
            "SELECT coalesce(json_agg(json_build_object('seq', seq, 'time', time, 'actor', actor, 'action', action, 'rotation', rotation, 'reason', reason) ORDER BY seq), '[]') FROM rotor_audit",
        )
        .expect("read the audit log");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&json).expect("audit JSON");
    rows.iter()
        .map(|r| Record {
            seq: r["seq"].as_u64().expect("seq"),
            time: r["time"]
                .as_str()
                .expect("time")
                .parse()
                .expect("audit time"),
            actor: r["actor"].as_str().expect("actor").to_owned(),
            action: r["action"].as_str().expect("action").to_owned(),
            rotation: r["rotation"].as_str().map(str::to_owned),
            reason: r["reason"].as_str().map(str::to_owned),
        })
        .collect()
}

/// The PID in a lease owner `host:pid:nonce`.
fn owner_pid(owner: &str) -> Option<u32> {
    owner.rsplit(':').nth(1)?.parse().ok()
}

/// Why the takeover in `rec` was allowed, or `None` when it took a live holder's lease.
fn judge(rec: &Record, faults: &[Fault]) -> Option<&'static str> {
    let reason = rec.reason.as_deref()?;
    let rest = reason.strip_prefix("took over from ")?;
    let (holder, why) = rest.split_once(" (")?;
    let pid = owner_pid(holder)?;
    let killed = faults
        .iter()
        .any(|f| matches!(f, Fault::Killed { pid: p, at } if *p == pid && *at <= rec.time));
    if killed {
        return Some("dead");
    }
    let expired: Timestamp = why
        .strip_prefix("lease expired ")?
        .trim_end_matches(')')
        .parse()
        .ok()?;
    let paused = faults.iter().any(|f| {
        matches!(f, Fault::Paused { pid: p, from, to }
            if *p == pid && *from <= expired && expired <= *to && expired <= rec.time)
    });
    paused.then_some("paused")
}

#[test]
fn replicas_under_kills_and_a_pause_do_every_step_once() {
    let seed = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| Timestamp::now().as_nanosecond().unsigned_abs() as u64 | 1);
    eprintln!("CHAOS_SEED={seed}");
    let mut rng = Rng(seed);

    let pg = Postgres::start().expect("start PostgreSQL");
    pg.create_db("rotor").expect("create db");
    let mut config = random_fleet_config(&pg, RANDOM, "3s");
    for i in 0..JWT {
        config.push_str(&format!(
            "\n[secrets.j{i:02}]\nkind = \"jwt\"\nalgorithm = \"ES256\"\njwks_max_age = \"0s\"\ntoken_lifetime = \"1s\"\nleeway = \"0s\"\ngrace = \"1s\"\nrotate_every = \"90d\"\n"
        ));
    }
    let env = Env::uninit(&config);
    let pw = pg.admin_password().to_owned();
    let mut init = env.command(&["init"]);
    init.env("PGPW", &pw);
    assert!(init.output().expect("init").status.success());

    let start = Instant::now();
    let deadline = Duration::from_secs(55);
    let mut replicas: Vec<Replica> = (0..REPLICAS).map(|_| serve(&env, &pw)).collect();
    let mut faults = Vec::new();

    // Faults at random points of the work: four kills (each restarted after a moment) and one
    // pause, spread over the first four fifths of the finishes.
    let mut plan: Vec<(usize, bool)> = (0..=KILLS)
        .map(|i| {
            let band = SECRETS * 4 / 5 / (KILLS + 1);
            let at = band * i + usize::try_from(rng.below(band as u64)).unwrap_or(0);
            (at, i == 2)
        })
        .collect();
    plan.sort_unstable();
    for (at, pause) in plan {
        while count(&pg, FINISHED) < at {
            assert!(start.elapsed() < deadline, "fewer than {at} finishes");
            std::thread::sleep(Duration::from_millis(20));
        }
        let i = usize::try_from(rng.below(REPLICAS as u64)).unwrap_or(0);
        let pid = replicas[i].id();
        if pause {
            signal(&replicas[i], "-STOP");
            let from = Timestamp::now();
            std::thread::sleep(PAUSE);
            signal(&replicas[i], "-CONT");
            faults.push(Fault::Paused {
                pid,
                from,
                to: Timestamp::now(),
            });
            eprintln!("paused replica {pid} for {PAUSE:?} at {at} finishes");
        } else {
            faults.push(Fault::Killed {
                pid,
                at: Timestamp::now(),
            });
            replicas[i].kill().expect("SIGKILL");
            replicas[i].wait().expect("reap");
            std::thread::sleep(Duration::from_millis(100 + rng.below(500)));
            replicas[i] = serve(&env, &pw);
            eprintln!("killed replica {pid} at {at} finishes, restarted");
        }
    }

    // Every secret rotated and retired: a current value each, no rotation open.
    wait_settled(&pg, SECRETS, start + deadline, Duration::from_millis(100));
    let elapsed = start.elapsed();
    for r in &mut replicas {
        r.kill().expect("stop replica");
        r.wait().expect("reap");
    }

    let records = audit(&pg);
    let mut finishes: BTreeMap<&str, usize> = BTreeMap::new();
    let mut retires: BTreeMap<&str, usize> = BTreeMap::new();
    let mut takeovers: BTreeMap<&str, usize> = BTreeMap::new();
    let mut live = Vec::new();
    for rec in &records {
        let rotation = rec.rotation.as_deref().unwrap_or("");
        match rec.action.as_str() {
            "rotation.finish" => *finishes.entry(rotation).or_default() += 1,
            "rotation.retire" => *retires.entry(rotation).or_default() += 1,
            "rotation.lease" if rec.reason.is_some() => match judge(rec, &faults) {
                Some(kind) => *takeovers.entry(kind).or_default() += 1,
                None => live.push(format!(
                    "seq {} at {} by {}: {}; before it: {:?}",
                    rec.seq,
                    rec.time,
                    rec.actor,
                    rec.reason.as_deref().unwrap_or(""),
                    records
                        .iter()
                        .filter(|r| r.rotation == rec.rotation && r.seq < rec.seq)
                        .map(|r| format!("{} {} {}", r.time, r.action, r.actor))
                        .collect::<Vec<_>>()
                )),
            },
            _ => {}
        }
    }
    let backwards: Vec<String> = records
        .windows(2)
        .filter(|w| w[1].time < w[0].time)
        .map(|w| format!("seq {} at {} after {}", w[1].seq, w[1].time, w[0].time))
        .collect();
    let rotations: BTreeSet<String> = pg
        .psql_db("rotor", "SELECT id FROM rotor_rotations")
        .expect("psql")
        .lines()
        .map(str::to_owned)
        .collect();
    let count_of = |what: &str| records.iter().filter(|r| r.action == what).count();
    let line = serde_json::json!({
        "seed": seed,
        "secrets": SECRETS,
        "rotations": rotations.len(),
        "finishes": finishes.values().sum::<usize>(),
        "retires": retires.values().sum::<usize>(),
        "takeovers": takeovers.values().sum::<usize>() + live.len(),
        "takeovers_from_dead": takeovers.get("dead").copied().unwrap_or(0),
        "takeovers_from_paused": takeovers.get("paused").copied().unwrap_or(0),
        "takeovers_from_live": live.len(),
        "resumes": count_of("rotation.resume"),
        "kills": faults.iter().filter(|f| matches!(f, Fault::Killed { .. })).count(),
        "pauses": faults.iter().filter(|f| matches!(f, Fault::Paused { .. })).count(),
        "audit_time_inversions": backwards.len(),
        "seconds": elapsed.as_secs_f64(),
    });
    println!("{line}");

    assert_eq!(rotations.len(), SECRETS, "one rotation per secret");
    for id in &rotations {
        assert_eq!(
            finishes.get(id.as_str()).copied().unwrap_or(0),
            1,
            "rotation {id}: finish records"
        );
    }
    assert_eq!(finishes.len(), SECRETS, "a finish of an unknown rotation");
    let twice: Vec<_> = retires.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "retired more than once: {twice:?}");
    assert!(
        live.is_empty(),
        "leases taken from live holders: {live:#?}\nfaults: {faults:#?}"
    );
    assert_eq!(count_of("rotation.failed"), 0, "a rotation failed");
    assert_eq!(
        count(
            &pg,
            "SELECT count(*) FROM rotor_rotations WHERE status <> 'completed'"
        ),
        0,
        "every rotation completed"
    );
    assert!(
        backwards.is_empty(),
        "audit times go backwards: {backwards:?}"
    );
    assert_eq!(
        count(
            &pg,
            "SELECT count(DISTINCT secret) FROM rotor_stages WHERE stage = 'current'"
        ),
        SECRETS
    );
    assert_eq!(
        count(
            &pg,
            "SELECT count(*) FROM rotor_stages WHERE stage = 'pending'"
        ),
        0,
        "a pending value left"
    );
    let mut verify = env.command(&["audit", "verify"]);
    verify.env("PGPW", &pw);
    let out = verify.output().expect("verify");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
