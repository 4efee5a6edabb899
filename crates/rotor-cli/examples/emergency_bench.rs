//! Time to contain (issue 9.9), run on demand, never in tests: `rotor rotate --emergency all`
//! over a fleet of 200 PostgreSQL roles, 200 Redis users and 600 random/JWT secrets on real
//! loopback servers, with live sessions held on some of the old credentials.
//!
//! Measured: from the moment the loopback webhook receives the first notification (the
//! runbook notifies first) to the report's `finished` time, by which every rotation's retire
//! has proven its old credential rejected by a fresh login and its eviction has read the
//! target back (sessions surviving). Also printed: the wall time of the command, sessions
//! ended and surviving (from the report and from the held sessions themselves), and the
//! most connections the PostgreSQL server saw at once.
//!
//! `scripts/bench-emergency` builds the release binary and this example and runs it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use rotor_test_support::{Postgres, Redis};

/// The fleet: 200 PostgreSQL roles, 200 Redis users, 300 random and 300 JWT secrets, or
/// `ROTOR_BENCH_FLEET=PG,REDIS,RANDOM,JWT` (to see what each kind costs).
fn fleet() -> [usize; 4] {
    let mut f = [200, 200, 300, 300];
    if let Ok(v) = std::env::var("ROTOR_BENCH_FLEET") {
        for (slot, n) in f.iter_mut().zip(v.split(',')) {
            if let Ok(n) = n.trim().parse() {
                *slot = n;
            }
        }
    }
    f
}
/// Sessions held open on old credentials during the emergency, per kind (at most).
const HELD: usize = 40;

fn rotor_bin() -> PathBuf {
    // The example lives in target/<profile>/examples/; the binary in target/<profile>/.
    let exe = std::env::current_exe().unwrap_or_default();
    exe.parent()
        .and_then(Path::parent)
        .map(|p| p.join("rotor"))
        .unwrap_or_else(|| PathBuf::from("rotor"))
}

fn rotor(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> anyhow::Result<(i32, String, String)> {
    let mut child = Command::new(rotor_bin())
        .args(args)
        .env("ROTOR_CONFIG", dir.join("rotor.toml"))
        .env_remove("ROTOR_MASTER_KEY")
        .current_dir(dir)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("run {}", rotor_bin().display()))?;
    if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(bytes)?;
    }
    let out = child.wait_with_output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// A loopback webhook: the time of each POST.
fn receiver() -> anyhow::Result<(u16, Arc<Mutex<Vec<SystemTime>>>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let times = Arc::new(Mutex::new(Vec::new()));
    let seen = times.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let at = SystemTime::now();
            let mut reader = BufReader::new(stream);
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0u8; len];
            let _ = reader.read_exact(&mut body);
            if let Ok(mut t) = seen.lock() {
                t.push(at);
            }
            let _ = reader
                .get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    Ok((port, times))
}

fn config(pg: &Postgres, redis: &Redis, hook: u16) -> String {
    let [pg_roles, redis_users, random, jwt] = fleet();
    let mut s = format!(
        r#"[store]
path = "rotor.db"
master_key_file = "rotor.key"

[[notify]]
url = "http://127.0.0.1:{hook}/hook"
format = "json"
events = ["emergency"]

[emergency]
report_dir = "reports"

[secrets.pg-admin]
kind = "postgres"
url = "postgres://127.0.0.1:{pgp}/postgres"
role = "postgres"
rotate_every = "30d"
grace = "0s"

[secrets.redis-admin]
kind = "redis"
url = "redis://127.0.0.1:{rdp}"
user = "{ru}"
rotate_every = "30d"
grace = "0s"
"#,
        pgp = pg.port(),
        rdp = redis.port(),
        ru = redis.admin_user()
    );
    for i in 0..pg_roles {
        s.push_str(&format!(
            "\n[secrets.pg-{i:03}]\nkind = \"postgres\"\nurl = \"postgres://127.0.0.1:{}/postgres\"\nrole = \"fleet_pg_{i}\"\nadmin = \"pg-admin\"\nrotate_every = \"30d\"\ngrace = \"0s\"\n",
            pg.port()
        ));
    }
    for i in 0..redis_users {
        s.push_str(&format!(
            "\n[secrets.rd-{i:03}]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:{}\"\nuser = \"fleet_rd_{i}\"\nadmin = \"redis-admin\"\nrotate_every = \"30d\"\ngrace = \"0s\"\n",
            redis.port()
        ));
    }
    for i in 0..random {
        s.push_str(&format!(
            "\n[secrets.random-{i:03}]\nkind = \"random\"\nrotate_every = \"30d\"\ngrace = \"0s\"\n"
        ));
    }
    for i in 0..jwt {
        let alg = if i % 2 == 0 { "HS256" } else { "EdDSA" };
        s.push_str(&format!(
            "\n[secrets.jwt-{i:03}]\nkind = \"jwt\"\nalgorithm = \"{alg}\"\nrotate_every = \"30d\"\ntoken_lifetime = \"1m\"\nleeway = \"0s\"\ngrace = \"1m\"\n"
        ));
    }
    s
}

fn credential(user: &str, password: &str) -> Vec<u8> {
    serde_json::json!({ "username": user, "password": password })
        .to_string()
        .into_bytes()
}

fn reveal(dir: &Path, name: &str) -> anyhow::Result<(String, String)> {
    let (code, out, err) = rotor(dir, &["get", name, "--reveal"], None)?;
    anyhow::ensure!(code == 0, "rotor get {name}: {err}");
    let v: serde_json::Value = serde_json::from_str(out.trim())?;
    Ok((
        v["username"].as_str().unwrap_or_default().to_owned(),
        v["password"].as_str().unwrap_or_default().to_owned(),
    ))
}

/// A Redis connection authenticated as `user`, kept open.
fn redis_session(port: u16, user: &str, password: &str) -> anyhow::Result<std::net::TcpStream> {
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port))?;
    c.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(c, "AUTH {user} {password}\r\n")?;
    let mut buf = [0u8; 64];
    let n = c.read(&mut buf)?;
    anyhow::ensure!(buf[..n].starts_with(b"+OK"), "AUTH as {user} failed");
    Ok(c)
}

fn redis_alive(c: &mut std::net::TcpStream) -> bool {
    if c.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    matches!(c.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
}

/// `(sessions, xact_commit)` of database postgres, read afresh.
async fn counters(c: &tokio_postgres::Client) -> anyhow::Result<(i64, i64)> {
    c.batch_execute("SELECT pg_stat_clear_snapshot()").await?;
    let row = c
        .query_one(
            "SELECT sessions, xact_commit FROM pg_stat_database WHERE datname = 'postgres'",
            &[],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let [pg_roles, redis_users, random, jwt] = fleet();
    anyhow::ensure!(
        rotor_bin().exists(),
        "build the binary first: cargo build --release --bin rotor --example emergency_bench"
    );
    let pg = Postgres::start()?;
    let redis = Redis::start()?;
    let (hook, posts) = receiver()?;
    let dir = tempfile::tempdir()?;
    let d = dir.path();

    let t = Instant::now();
    // A role of its own for sampling connections (the emergency evicts `postgres` sessions).
    let watch_pw = rotor_test_support::random_password()?;
    pg.psql(&format!(
        "CREATE ROLE bench_watch LOGIN SUPERUSER PASSWORD '{watch_pw}'"
    ))?;
    pg.psql(&format!(
        "DO $$ BEGIN FOR i IN 0..{} LOOP EXECUTE format('CREATE ROLE %I LOGIN', 'fleet_pg_' || i); END LOOP; END $$;",
        i64::try_from(pg_roles)? - 1
    ))?;
    for i in 0..redis_users {
        redis.cli(&[
            "ACL",
            "SETUSER",
            &format!("fleet_rd_{i}"),
            "on",
            "~*",
            "+@all",
        ])?;
    }
    std::fs::write(d.join("rotor.toml"), config(&pg, &redis, hook))?;
    let (code, _, err) = rotor(d, &["init"], None)?;
    anyhow::ensure!(code == 0, "init: {err}");
    for (name, user, pw) in [
        ("pg-admin", pg.admin_user(), pg.admin_password()),
        ("redis-admin", redis.admin_user(), redis.admin_password()),
    ] {
        let (code, _, err) = rotor(d, &["put", name], Some(&credential(user, pw)))?;
        anyhow::ensure!(code == 0, "put {name}: {err}");
    }
    // Every secret gets a first value (this also rotates the two admins).
    let setup = Instant::now();
    let (code, _, err) = rotor(
        d,
        &[
            "--format",
            "json",
            "rotate",
            "--emergency",
            "all",
            "--reason",
            "bench setup",
        ],
        None,
    )?;
    anyhow::ensure!(code == 0, "setup emergency failed: {err}");
    let setup_took = setup.elapsed();
    eprintln!(
        "fleet ready in {:.1}s (first emergency, from no values: {:.2}s)",
        t.elapsed().as_secs_f64(),
        setup_took.as_secs_f64()
    );

    // Sessions held open with the old credentials.
    let mut pg_held = Vec::new();
    for i in 0..HELD.min(pg_roles) {
        let (user, pw) = reveal(d, &format!("pg-{i:03}"))?;
        let url = format!(
            "host=127.0.0.1 port={} user={user} password={pw} dbname=postgres",
            pg.port()
        );
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
        let task = tokio::spawn(conn);
        client.simple_query("SELECT 1").await?;
        pg_held.push((client, task));
    }
    let mut redis_held = Vec::new();
    for i in 0..HELD.min(redis_users) {
        let (user, pw) = reveal(d, &format!("rd-{i:03}"))?;
        redis_held.push(redis_session(redis.port(), &user, &pw)?);
    }
    let peak = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let watcher = {
        let url = format!(
            "host=127.0.0.1 port={} user=bench_watch password={watch_pw} dbname=postgres",
            pg.port()
        );
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                if let Ok(row) = client
                    .query_one("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'", &[])
                    .await
                {
                    peak.fetch_max(row.get::<_, i64>(0), std::sync::atomic::Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    // PostgreSQL's own counters over the measured emergency: sessions opened (backend
    // forks that logged in) and transactions committed, in database postgres.
    let stats = {
        let url = format!(
            "host=127.0.0.1 port={} user=bench_watch password={watch_pw} dbname=postgres",
            pg.port()
        );
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        client
    };
    let before = counters(&stats).await?;
    posts.lock().map_err(|_| anyhow::anyhow!("lock"))?.clear();

    // The measured emergency. The command runs on a blocking thread so this runtime keeps
    // sampling the connection count meanwhile.
    let started = Instant::now();
    let dd = d.to_path_buf();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        rotor(
            &dd,
            &[
                "--format",
                "json",
                "rotate",
                "--emergency",
                "all",
                "--reason",
                "bench",
            ],
            None,
        )
    })
    .await??;
    let wall = started.elapsed();
    watcher.abort();
    anyhow::ensure!(code == 0, "emergency failed ({code}): {err}\n{out}");
    let report: serde_json::Value = serde_json::from_str(&out)?;
    let first_post = posts
        .lock()
        .map_err(|_| anyhow::anyhow!("lock"))?
        .first()
        .copied()
        .context("no notification arrived")?;
    let finished: jiff::Timestamp = report["finished"]
        .as_str()
        .context("report.finished")?
        .parse()?;
    let first: jiff::Timestamp = jiff::Timestamp::try_from(first_post)?;
    let contain = finished.duration_since(first);

    let secrets = report["secrets"].as_array().context("report.secrets")?;
    let proven = secrets
        .iter()
        .filter(|s| s["old_rejected"]["status"] == "pass")
        .count();
    let (mut ended, mut surviving) = (0u64, 0u64);
    for s in secrets {
        ended += s["sessions"]["ended"].as_u64().unwrap_or(0);
        surviving += s["sessions"]["surviving"].as_u64().unwrap_or(0);
    }
    // Backends report their counters at exit or within a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = counters(&stats).await?;
    let mut pg_alive = 0;
    for (client, _) in &pg_held {
        if client.simple_query("SELECT 1").await.is_ok() {
            pg_alive += 1;
        }
    }
    let mut redis_alive_n = 0;
    for c in &mut redis_held {
        if redis_alive(c) {
            redis_alive_n += 1;
        }
    }

    println!(
        "emergency over {} secrets ({pg_roles} postgres roles, {redis_users} redis users, {random} random, {jwt} jwt, 2 admins)",
        secrets.len()
    );
    println!(
        "  time to contain (first notification -> last old credential proven dead): {:.2}s (goal < 5 s)",
        contain.as_secs_f64()
    );
    println!("  command wall time: {:.2}s", wall.as_secs_f64());
    println!(
        "  old value rejected, proven by the target: {proven} of {} with a target",
        pg_roles + redis_users + 2
    );
    println!(
        "  sessions (report): ended {ended}, surviving {surviving}; held sessions still alive: postgres {pg_alive}/{}, redis {redis_alive_n}/{}",
        pg_held.len(),
        redis_held.len()
    );
    println!(
        "  concurrency: at most 32 rotations, 8 per target; peak PostgreSQL client connections {}",
        peak.load(std::sync::atomic::Ordering::Relaxed)
    );
    println!(
        "  PostgreSQL over the emergency: {} sessions opened (logins that passed), {} transactions committed",
        after.0 - before.0,
        after.1 - before.1
    );
    if std::env::var_os("ROTOR_BENCH_KEEP").is_some() {
        let kept = dir.keep();
        println!("  kept {} (rotor.db holds the audit log)", kept.display());
    }
    Ok(())
}
