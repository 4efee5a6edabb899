//! `rotor serve` replicas on one PostgreSQL store, and counting what they did from its tables.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rotor_test_support::Postgres;

use super::Env;

/// The single number a `SELECT count(*) …` on the store's database returns.
pub fn count(pg: &Postgres, sql: &str) -> usize {
    pg.psql_db("rotor", sql)
        .expect("psql")
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// A running `rotor serve`, SIGKILLed when dropped: a failed assertion leaves no replica
/// (stopped or not) behind.
pub struct Replica(Child);

impl std::ops::Deref for Replica {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Replica {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `rotor serve` replica of `env`'s config, the store's password in `PGPW`.
pub fn serve(env: &Env, pw: &str) -> Replica {
    let child = env
        .command(&["serve", "--listen", "127.0.0.1:0"])
        .env("PGPW", pw)
        .env("ROTOR_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn rotor serve");
    Replica(child)
}

/// Sends `sig` (`-STOP`, `-CONT`) to `child` with kill(1). For those two, returns only once
/// `/proc` shows the process stopped (or no longer stopped), so a caller's clock reading after
/// it brackets the moment (spawning kill(1) can take seconds on a loaded machine).
pub fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill {sig}");
    let want_stopped = match sig {
        "-STOP" => true,
        "-CONT" => false,
        _ => return,
    };
    let stat = format!("/proc/{}/stat", child.id());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // The state is the field after the parenthesised command name.
        let text = std::fs::read_to_string(&stat).unwrap_or_default();
        let state = text
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next());
        if matches!(state, Some('T')) == want_stopped {
            return;
        }
        assert!(Instant::now() < deadline, "{sig} not in effect: {text}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The config of `secrets` due random secrets on the PostgreSQL store `pg` (password from
/// `PGPW`), with the given `[server]` lease.
pub fn random_fleet_config(pg: &Postgres, secrets: usize, lease: &str) -> String {
    let mut config = format!(
        "[store]\nkind = \"postgres\"\nurl = \"postgres://postgres:${{PGPW}}@127.0.0.1:{}/rotor\"\n\n[server]\nlease = \"{lease}\"\nmax_concurrent_rotations = 8\nretry_backoff = \"1s\"\n",
        pg.port()
    );
    for i in 0..secrets {
        config.push_str(&format!(
            "\n[secrets.s{i:04}]\nkind = \"random\"\nrotate_every = \"90d\"\ngrace = \"0s\"\n"
        ));
    }
    config
}

/// Waits until every one of `secrets` secrets has a current value and no rotation is open
/// (running or in grace), polling every `every`; fails once `deadline` has passed.
pub fn wait_settled(pg: &Postgres, secrets: usize, deadline: Instant, every: Duration) {
    loop {
        let current = count(
            pg,
            "SELECT count(*) FROM rotor_stages WHERE stage = 'current'",
        );
        let open = count(
            pg,
            "SELECT count(*) FROM rotor_rotations WHERE status IN ('running', 'grace')",
        );
        if current == secrets && open == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "past the deadline: {current} secrets have a current value, {open} rotations open"
        );
        std::thread::sleep(every);
    }
}
