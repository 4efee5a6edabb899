//! The zero-downtime harness shared by `tests/zero_downtime.rs` and
//! `examples/zero_downtime_bench.rs`: real PostgreSQL and Redis servers, a full [`Engine`]
//! (SqliteStore, the real rotators, a [`Renderer`] as delivery) over a generated config, and
//! a client load that behaves like the seed's app: it re-reads the rendered `.env` every
//! 100 ms and opens a fresh connection for every query.
//! Over 600 lines on purpose: one harness (servers, engine, load, verdict) that the test and
//! the bench must share exactly.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use rotor_core::{Config, SecretName, SecretValue, Stage, Store};
use rotor_deliver::Renderer;
use rotor_engine::{Clock, Engine, EngineOptions, Outcome, RotateOptions, Rotators};
use rotor_rotate_postgres::PostgresRotator;
use rotor_rotate_redis::RedisRotator;
use rotor_seal::MasterKey;
use rotor_store_sqlite::SqliteStore;
use rotor_test_support::{Postgres, Redis};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The alternating PostgreSQL secret (group role `app`, login roles `app_a` / `app_b`).
pub const PG_ALT: &str = "database";
/// The single-role PostgreSQL secret (role `legacy`).
pub const PG_SINGLE: &str = "legacy-database";
/// The Redis secret (ACL user `app`).
pub const REDIS: &str = "redis";
pub const PG_ADMIN: &str = "pg-admin";
pub const REDIS_ADMIN: &str = "redis-admin";
/// The grace of the three secrets under load.
pub const GRACE: Duration = Duration::from_secs(2);

/// The system clock plus an offset that a benchmark can advance (to end a grace period
/// without waiting for it). Never advanced while clients depend on a grace.
#[derive(Debug, Default)]
pub struct OffsetClock(AtomicI64);

impl OffsetClock {
    pub fn advance(&self, d: Duration) {
        self.0.fetch_add(
            i64::try_from(d.as_secs()).expect("clock advance fits in i64 seconds"),
            Ordering::SeqCst,
        );
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
            .checked_add(jiff::SignedDuration::from_secs(
                self.0.load(Ordering::SeqCst),
            ))
            .expect("now plus the clock offset is a valid timestamp")
    }
}

/// Servers, store, engine and the rendered file.
pub struct Harness {
    pub pg: Postgres,
    pub redis: Redis,
    pub dir: tempfile::TempDir,
    pub engine: Arc<Engine>,
    pub clock: Arc<OffsetClock>,
    /// The rendered dotenv file the clients read.
    pub env: PathBuf,
    /// Names of the benchmark secrets (`bench_secrets` of each kind).
    pub bench_pg: Vec<String>,
    pub bench_redis: Vec<String>,
}

fn config_text(pg_port: u16, redis_port: u16, bench_secrets: usize) -> String {
    let pg = format!("postgres://127.0.0.1:{pg_port}/postgres");
    let redis = format!("redis://127.0.0.1:{redis_port}");
    let mut t = format!(
        r#"
[secrets.{PG_ADMIN}]
kind = "postgres"
tier = "low"
automation = "manual"
url = "{pg}"
role = "postgres"

[secrets.{PG_ALT}]
kind = "postgres"
tier = "medium"
grace = "2s"
url = "{pg}"
role = "app"
strategy = "alternating"
admin = "{PG_ADMIN}"

[secrets.{PG_SINGLE}]
kind = "postgres"
tier = "medium"
grace = "2s"
url = "{pg}"
role = "legacy"
strategy = "single"
admin = "{PG_ADMIN}"

[secrets.{REDIS_ADMIN}]
kind = "redis"
tier = "low"
automation = "manual"
url = "{redis}"
user = "default"

[secrets.{REDIS}]
kind = "redis"
tier = "medium"
grace = "2s"
url = "{redis}"
user = "app"
admin = "{REDIS_ADMIN}"

[[render]]
kind = "dotenv"
path = "app.env"
[render.vars]
DATABASE_URL = "postgres://{{{{ {PG_ALT}.current.username }}}}:{{{{ {PG_ALT}.current.password }}}}@127.0.0.1:{pg_port}/postgres"
LEGACY_DATABASE_URL = "postgres://{{{{ {PG_SINGLE}.current.username }}}}:{{{{ {PG_SINGLE}.current.password }}}}@127.0.0.1:{pg_port}/postgres"
REDIS_USER = "{{{{ {REDIS}.current.username }}}}"
REDIS_PASSWORD = "{{{{ {REDIS}.current.password }}}}"
"#
    );
    for i in 0..bench_secrets {
        t.push_str(&format!(
            r#"
[secrets.bench-pg-{i}]
kind = "postgres"
tier = "medium"
grace = "1h"
url = "{pg}"
role = "bench_{i}"
strategy = "alternating"
admin = "{PG_ADMIN}"

[secrets.bench-redis-{i}]
kind = "redis"
tier = "medium"
grace = "1h"
url = "{redis}"
user = "bench_{i}"
admin = "{REDIS_ADMIN}"
"#
        ));
    }
    t
}

fn cred(user: &str, password: &str) -> SecretValue {
    SecretValue::new(
        serde_json::to_vec(&serde_json::json!({"username": user, "password": password}))
            .expect("encode username/password value as JSON"),
    )
}

impl Harness {
    /// Starts the servers, writes the config, creates the store and bootstraps every secret:
    /// admin credentials put, `setup` for the alternating roles, the single role and the
    /// Redis ACL users created, and a first rotation of each so `current` exists and the
    /// `.env` is rendered.
    pub async fn start(bench_secrets: usize) -> Harness {
        let pg = tokio::task::block_in_place(Postgres::start).expect("PostgreSQL 15");
        let redis = tokio::task::block_in_place(Redis::start_with_aclfile).expect("Redis 7");
        let dir = tempfile::tempdir().expect("temp dir for the harness");
        let text = config_text(pg.port(), redis.port(), bench_secrets);
        let path = dir.path().join("rotor.toml");
        std::fs::write(&path, &text).expect("write harness rotor.toml");
        let config: Arc<Config> = Arc::new(
            rotor_core::config::parse(&text, &path, &|_| None).unwrap_or_else(|e| panic!("{e}")),
        );
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::create(
                &dir.path().join("rotor.db"),
                MasterKey::generate().expect("generate master key"),
                "zero-downtime",
            )
            .expect("create SqliteStore rotor.db"),
        );
        let clock = Arc::new(OffsetClock::default());
        let rotators = Rotators::new()
            .with(Arc::new(PostgresRotator::new()))
            .with(Arc::new(RedisRotator::new()));
        let renderer = Arc::new(Renderer::new(config.clone(), store.clone()));
        let engine = Arc::new(
            Engine::new(
                store,
                config,
                rotators,
                clock.clone(),
                EngineOptions::new("zero-downtime"),
            )
            .with_delivery(renderer),
        );

        engine
            .put(
                PG_ADMIN,
                cred(pg.admin_user(), pg.admin_password()),
                serde_json::json!({}),
                None,
            )
            .await
            .expect("engine put pg-admin");
        engine
            .put(
                REDIS_ADMIN,
                cred(redis.admin_user(), redis.admin_password()),
                serde_json::json!({}),
                None,
            )
            .await
            .expect("engine put redis-admin");
        tokio::task::block_in_place(|| pg.psql("CREATE ROLE legacy LOGIN"))
            .expect("psql CREATE ROLE legacy");

        let bench_pg: Vec<String> = (0..bench_secrets)
            .map(|i| format!("bench-pg-{i}"))
            .collect();
        let bench_redis: Vec<String> = (0..bench_secrets)
            .map(|i| format!("bench-redis-{i}"))
            .collect();
        let mut admin = RedisClient::connect(redis.port())
            .await
            .expect("connect admin session to redis");
        assert_eq!(
            admin
                .cmd(&["AUTH", redis.admin_user(), redis.admin_password()])
                .await
                .expect("redis AUTH as admin"),
            "+OK"
        );
        let mut users = vec!["app".to_owned()];
        users.extend((0..bench_secrets).map(|i| format!("bench_{i}")));
        for u in &users {
            // On, every permission, no password yet: the first rotation adds one.
            let r = admin
                .cmd(&["ACL", "SETUSER", u, "on", "~*", "&*", "+@all"])
                .await
                .expect("redis ACL SETUSER of a load user");
            assert_eq!(r, "+OK");
        }

        for name in std::iter::once(PG_ALT).chain(bench_pg.iter().map(String::as_str)) {
            engine
                .setup(name)
                .await
                .expect("engine setup of an alternating postgres secret");
        }
        let first: Vec<&str> = [PG_ALT, PG_SINGLE, REDIS]
            .into_iter()
            .chain(bench_pg.iter().map(String::as_str))
            .chain(bench_redis.iter().map(String::as_str))
            .collect();
        for name in first {
            let out = engine
                .rotate(name, &RotateOptions::default())
                .await
                .expect("engine first rotation");
            assert!(matches!(out, Outcome::Completed { .. }), "{name}: {out:?}");
        }
        let env = dir.path().join("app.env");
        assert!(
            env.exists(),
            "the first rotations rendered {}",
            env.display()
        );
        Harness {
            pg,
            redis,
            dir,
            engine,
            clock,
            env,
            bench_pg,
            bench_redis,
        }
    }

    /// The (username, password) of a secret's stage.
    pub async fn stage_cred(&self, secret: &str, stage: Stage) -> Option<(String, String)> {
        let v = self
            .engine
            .store()
            .read_stage(&SecretName::new(secret).expect("secret name"), stage)
            .await
            .expect("store read_stage")?;
        let j: serde_json::Value =
            serde_json::from_slice(v.value.expose()).expect("parse credential value as JSON");
        Some((
            j["username"]
                .as_str()
                .expect("credential value has a string \"username\"")
                .to_owned(),
            j["password"]
                .as_str()
                .expect("credential value has a string \"password\"")
                .to_owned(),
        ))
    }
}

// ---- the client load ---------------------------------------------------------------------

/// Counters of one kind of client.
#[derive(Debug, Default)]
pub struct Stats {
    pub ok: AtomicU64,
    /// The server rejected the credential (PostgreSQL 28P01/28000, Redis WRONGPASS).
    pub auth_failed: AtomicU64,
    /// Anything else (connection errors, timeouts).
    pub other_failed: AtomicU64,
    pub first_other: Mutex<Option<String>>,
}

impl Stats {
    fn other(&self, what: String) {
        self.other_failed.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_other.lock().expect("lock first other error");
        if first.is_none() {
            *first = Some(what);
        }
    }

    pub fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.ok.load(Ordering::Relaxed),
            self.auth_failed.load(Ordering::Relaxed),
            self.other_failed.load(Ordering::Relaxed),
        )
    }
}

/// What the clients currently believe, from the last read of the rendered file.
#[derive(Debug, Default, Clone)]
struct Creds {
    database_url: String,
    legacy_database_url: String,
    redis_user: String,
    redis_password: String,
}

/// The result of one load run.
#[derive(Debug)]
pub struct LoadReport {
    pub elapsed: Duration,
    /// (kind, ok, auth failures, other failures, first other error)
    pub kinds: Vec<(&'static str, u64, u64, u64, Option<String>)>,
    /// Rotations and retires that returned Ok, of those attempted.
    pub rotations_ok: usize,
    pub rotations: usize,
    /// Whether each old credential (current before the last rotation) was rejected after
    /// the last retire, and the new one accepted: (kind, old rejected, new accepted).
    pub after_retire: Vec<(&'static str, bool, bool)>,
}

impl LoadReport {
    pub fn kind(&self, name: &str) -> (u64, u64, u64) {
        self.kinds
            .iter()
            .find(|k| k.0 == name)
            .map(|k| (k.1, k.2, k.3))
            .expect("load report has this client kind")
    }

    pub fn print(&self) {
        println!(
            "load: {:.1} s, {} of {} rotation steps ok",
            self.elapsed.as_secs_f64(),
            self.rotations_ok,
            self.rotations
        );
        for (kind, ok, auth, other, first) in &self.kinds {
            let total = ok + auth + other;
            println!(
                "  {kind:<22} failed logins {auth:>4} / {total:>5} total ({:.0}/s), other errors {other}{}",
                total as f64 / self.elapsed.as_secs_f64(),
                first
                    .as_ref()
                    .map(|e| format!(" (first: {e})"))
                    .unwrap_or_default()
            );
        }
        for (kind, rejected, accepted) in &self.after_retire {
            println!(
                "  {kind:<22} after the last retire: old credential rejected {rejected}, new accepted {accepted}"
            );
        }
    }
}

pub const KIND_PG_ALT: &str = "postgres alternating";
pub const KIND_PG_SINGLE: &str = "postgres single";
pub const KIND_REDIS: &str = "redis";

/// Runs the client load while rotating the three secrets `rounds` times (rotate, wait the
/// grace in wall time, `retire_due`). Each PostgreSQL kind is paced to `pg_rate` and Redis
/// to `redis_rate` fresh connections per second (at most: a slow build sustains less).
///
/// The clients of each kind (and the file watcher) run on their own single-thread runtime:
/// a SCRAM login is 4096 PBKDF2 rounds of CPU, and neither the engine nor the other kinds
/// may wait behind it (as separate processes would not).
pub async fn run_load(h: &Harness, rounds: usize, pg_rate: u32, redis_rate: u32) -> LoadReport {
    let creds = Arc::new(RwLock::new(read_creds(&h.env)));
    let stop = Arc::new(AtomicBool::new(false));
    let stats: Vec<Arc<Stats>> = (0..3).map(|_| Arc::new(Stats::default())).collect();
    let runtime = |name: &str| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(name)
            .enable_all()
            .build()
            .expect("build a load client runtime")
    };
    let runtimes = [
        runtime("load-pg-alternating"),
        runtime("load-pg-single"),
        runtime("load-redis"),
        runtime("load-env-reader"),
    ];
    let mut tasks = Vec::new();

    // The app's config reload: every 100 ms, read the file again.
    {
        let (creds, stop, env) = (creds.clone(), stop.clone(), h.env.clone());
        tasks.push(runtimes[3].spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let fresh = read_creds(&env);
                *creds.write().expect("lock client creds for writing") = fresh;
            }
        }));
    }
    // Per kind, a few concurrent clients paced to the rate together: a fresh connection per
    // query.
    const PG_CLIENTS: u32 = 4;
    const REDIS_CLIENTS: u32 = 2;
    let redis_port = h.redis.port();
    for (k, clients, rate) in [
        (0usize, PG_CLIENTS, pg_rate),
        (1, PG_CLIENTS, pg_rate),
        (2, REDIS_CLIENTS, redis_rate),
    ] {
        for _ in 0..clients {
            let (creds, stop, stats) = (creds.clone(), stop.clone(), stats[k].clone());
            let period = Duration::from_secs(1) * clients / rate.max(1);
            tasks.push(runtimes[k].spawn(async move {
                let mut tick = tokio::time::interval(period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    let c = creds.read().expect("lock client creds for reading").clone();
                    match k {
                        0 => pg_query(&c.database_url, &stats).await,
                        1 => pg_query(&c.legacy_database_url, &stats).await,
                        _ => redis_ping(redis_port, &c.redis_user, &c.redis_password, &stats).await,
                    }
                }
            }));
        }
    }

    let start = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut rotations = 0;
    let mut rotations_ok = 0;
    let mut before_last = Vec::new();
    for round in 0..rounds {
        if round + 1 == rounds {
            for s in [PG_ALT, PG_SINGLE, REDIS] {
                before_last.push(
                    h.stage_cred(s, Stage::Current)
                        .await
                        .expect("current of a rotated secret before the last round"),
                );
            }
        }
        let opts = RotateOptions::default();
        let (a, b, c) = tokio::join!(
            h.engine.rotate(PG_ALT, &opts),
            h.engine.rotate(PG_SINGLE, &opts),
            h.engine.rotate(REDIS, &opts),
        );
        for r in [a, b, c] {
            rotations += 1;
            match r {
                Ok(Outcome::InGrace { .. }) => rotations_ok += 1,
                other => eprintln!("round {round}: rotate: {other:?}"),
            }
        }
        tokio::time::sleep(GRACE + Duration::from_millis(50)).await;
        let retired = h.engine.retire_due().await.expect("engine retire_due");
        rotations += 3;
        for (name, r) in &retired {
            match r {
                Ok(Outcome::Completed { .. }) => rotations_ok += 1,
                other => eprintln!("round {round}: retire {name}: {other:?}"),
            }
        }
    }
    // Let the clients pick up the last change and run a little after it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("join a load client task");
    }
    let elapsed = start.elapsed();
    for rt in runtimes {
        rt.shutdown_background();
    }

    let mut after_retire = Vec::new();
    if before_last.len() == 3 {
        let url = |(u, p): &(String, String)| {
            format!("postgres://{u}:{p}@127.0.0.1:{}/postgres", h.pg.port())
        };
        for (i, (kind, secret)) in [
            (KIND_PG_ALT, PG_ALT),
            (KIND_PG_SINGLE, PG_SINGLE),
            (KIND_REDIS, REDIS),
        ]
        .into_iter()
        .enumerate()
        {
            let old = &before_last[i];
            let new = h
                .stage_cred(secret, Stage::Current)
                .await
                .expect("current of a rotated secret after the last retire");
            let (old_ok, new_ok) = if i < 2 {
                (
                    login_outcome_pg(&url(old)).await,
                    login_outcome_pg(&url(&new)).await,
                )
            } else {
                (
                    login_outcome_redis(h.redis.port(), old).await,
                    login_outcome_redis(h.redis.port(), &new).await,
                )
            };
            after_retire.push((kind, old_ok == Login::Rejected, new_ok == Login::Ok));
        }
    }

    let kinds = [KIND_PG_ALT, KIND_PG_SINGLE, KIND_REDIS]
        .into_iter()
        .zip(&stats)
        .map(|(k, s)| {
            let (ok, auth, other) = s.snapshot();
            let first = s
                .first_other
                .lock()
                .expect("lock first other error")
                .clone();
            (k, ok, auth, other, first)
        })
        .collect();
    LoadReport {
        elapsed,
        kinds,
        rotations_ok,
        rotations,
        after_retire,
    }
}

/// Reads the app's variables from the rendered file (rotor's dotenv dialect).
fn read_creds(path: &Path) -> Creds {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let vars = parse_dotenv(&text);
    let get = |k: &str| vars.get(k).cloned().unwrap_or_default();
    Creds {
        database_url: get("DATABASE_URL"),
        legacy_database_url: get("LEGACY_DATABASE_URL"),
        redis_user: get("REDIS_USER"),
        redis_password: get("REDIS_PASSWORD"),
    }
}

/// A reader of rotor's dotenv dialect: `NAME="value"` with `\X` → `X`, literal newlines
/// inside the quotes, `#` comment lines.
pub fn parse_dotenv(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.peek() {
            None => break,
            Some('#') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
                continue;
            }
            Some(_) => {}
        }
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        assert_eq!(chars.next(), Some('"'), "value of {name} is not quoted");
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => value.extend(chars.next()),
                '"' => break,
                c => value.push(c),
            }
        }
        out.insert(name, value);
    }
    out
}

/// A fresh connection + `SELECT 1`.
async fn pg_query(url: &str, stats: &Stats) {
    match tokio::time::timeout(Duration::from_secs(10), pg_connect(url)).await {
        Err(_) => stats.other("connect: timed out after 10 s".into()),
        Ok(Ok((client, conn))) => {
            let result = client.simple_query("SELECT 1").await;
            drop(client);
            let _ = conn.await;
            match result {
                Ok(_) => {
                    stats.ok.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => stats.other(format!("SELECT 1: {e}")),
            }
        }
        Ok(Err(e)) if is_auth_error(&e) => {
            stats.auth_failed.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Err(e)) => stats.other(format!("connect: {e}")),
    }
}

type PgConn = (tokio_postgres::Client, tokio::task::JoinHandle<()>);

/// A fresh connection from a `postgres://user:password@host:port/db` URL (as the app has it).
pub async fn pg_connect(url: &str) -> Result<PgConn, tokio_postgres::Error> {
    let config: tokio_postgres::Config = url.parse()?;
    let (client, conn) = config.connect(tokio_postgres::NoTls).await?;
    let handle = tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok((client, handle))
}

pub fn is_auth_error(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    matches!(
        e.code(),
        Some(c) if *c == SqlState::INVALID_PASSWORD || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
    )
}

#[derive(Debug, PartialEq, Eq)]
enum Login {
    Ok,
    Rejected,
    Other,
}

async fn login_outcome_pg(url: &str) -> Login {
    match pg_connect(url).await {
        Ok((client, conn)) => {
            let ok = client.simple_query("SELECT 1").await.is_ok();
            drop(client);
            let _ = conn.await;
            if ok { Login::Ok } else { Login::Other }
        }
        Err(e) if is_auth_error(&e) => Login::Rejected,
        Err(_) => Login::Other,
    }
}

async fn login_outcome_redis(port: u16, (user, password): &(String, String)) -> Login {
    let stats = Stats::default();
    redis_ping(port, user, password, &stats).await;
    match stats.snapshot() {
        (1, 0, 0) => Login::Ok,
        (0, 1, 0) => Login::Rejected,
        _ => Login::Other,
    }
}

/// A fresh TCP connection + `AUTH user password` + `PING`.
async fn redis_ping(port: u16, user: &str, password: &str, stats: &Stats) {
    let result = async {
        let mut c = RedisClient::connect(port).await?;
        let auth = c.cmd(&["AUTH", user, password]).await?;
        if auth.starts_with("-WRONGPASS") {
            return Ok(false);
        }
        if auth != "+OK" {
            return Err(std::io::Error::other(format!("AUTH answered {auth}")));
        }
        let pong = c.cmd(&["PING"]).await?;
        if pong != "+PONG" {
            return Err(std::io::Error::other(format!("PING answered {pong}")));
        }
        Ok(true)
    }
    .await;
    match result {
        Ok(true) => {
            stats.ok.fetch_add(1, Ordering::Relaxed);
        }
        Ok(false) => {
            stats.auth_failed.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => stats.other(e.to_string()),
    }
}

/// A minimal RESP client: commands as bulk-string arrays, one-line replies.
pub struct RedisClient(BufReader<TcpStream>);

impl RedisClient {
    pub async fn connect(port: u16) -> std::io::Result<RedisClient> {
        let s = tokio::time::timeout(
            Duration::from_secs(5),
            TcpStream::connect(("127.0.0.1", port)),
        )
        .await
        .map_err(|_| std::io::Error::other("connect timeout"))??;
        s.set_nodelay(true)?;
        Ok(RedisClient(BufReader::new(s)))
    }

    /// Sends a command; returns the reply's first line (`+OK`, `-WRONGPASS …`, `:1`).
    pub async fn cmd(&mut self, args: &[&str]) -> std::io::Result<String> {
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        self.0.get_mut().write_all(out.as_bytes()).await?;
        let mut line = String::new();
        let n = tokio::time::timeout(Duration::from_secs(5), self.0.read_line(&mut line))
            .await
            .map_err(|_| std::io::Error::other("reply timeout"))??;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        Ok(line.trim_end().to_owned())
    }
}
