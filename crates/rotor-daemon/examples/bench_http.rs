//! Benchmarks for `scripts/bench-http` (on demand, never in tests). Build in release.
//!
//! - `bench_http serve PORT_FILE`: a daemon on a free loopback port over a fresh SQLite store
//!   with one rotated secret `bench-key`; writes `URL TOKEN` to PORT_FILE and serves until
//!   stdin closes (wrk then reads `/v1/secrets/bench-key/value?stage=current`);
//! - `bench_http idle N SECS`: N secrets in the inventory (all with a value), the daemon with
//!   its scheduler, idle for SECS: prints RSS (MiB) and CPU (% of one core);
//! - `bench_http watch N`: N rotations through the API, each timed from the engine's finish
//!   (a delivery hook) to the SSE event arriving at a watching client: prints p50/p99/max.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rotor_core::Config;
use rotor_core::Store;
use rotor_daemon::{Daemon, ServeOptions};
use rotor_engine::{Deliver, Engine, EngineOptions, Rotators, StageChange, SystemClock};
use rotor_store_sqlite::SqliteStore;

fn setup(n: usize, dir: &std::path::Path, token_toml: &str) -> (Arc<Config>, Arc<dyn Store>) {
    let mut text = String::from("[store]\nkind = \"sqlite\"\n");
    text.push_str(token_toml);
    text.push_str("[secrets.bench-key]\nkind = \"random\"\ntier = \"high\"\nlength = 40\n");
    for i in 1..n {
        text.push_str(&format!(
            "[secrets.svc-{i:05}]\nkind = \"random\"\ntier = \"high\"\nautomation = \"automatic\"\njitter = \"6h\"\n"
        ));
    }
    let config = rotor_core::config::parse(&text, &dir.join("rotor.toml"), &|_| None)
        .expect("bench setup failed");
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::create(
            &dir.join("rotor.db"),
            rotor_seal::MasterKey::generate().expect("bench setup failed"),
            "bench",
        )
        .expect("bench setup failed"),
    );
    (Arc::new(config), store)
}

fn engine(config: Arc<Config>, store: Arc<dyn Store>) -> Engine {
    Engine::new(
        store,
        config,
        Rotators::new().with(Arc::new(rotor_rotate::RandomRotator)),
        Arc::new(SystemClock),
        EngineOptions::new("bench"),
    )
}

#[derive(Debug, Default)]
struct Stamp(Mutex<Vec<Instant>>);

#[async_trait::async_trait]
impl Deliver for Stamp {
    async fn deliver(
        &self,
        _s: &rotor_core::SecretName,
        change: StageChange,
    ) -> Result<(), String> {
        if change == StageChange::Finished {
            self.0
                .lock()
                .expect("bench setup failed")
                .push(Instant::now());
        }
        Ok(())
    }
}

fn rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn cpu_ticks() -> u64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15; after the `)` they are at 11 and 12.
    f.get(11).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)
}

fn main() {
    // ROTOR_BENCH_WORKERS: tokio worker threads (default: one per core). On a 2-core box that
    // also runs wrk, fewer workers than cores can cut tail latency (less oversubscription).
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = std::env::var("ROTOR_BENCH_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        rt.worker_threads(n);
    }
    rt.enable_all()
        .build()
        .expect("bench setup failed")
        .block_on(run());
}

async fn run() {
    let args: Vec<String> = std::env::args().collect();
    let dir = tempfile::tempdir().expect("bench setup failed");
    let (token, toml) =
        rotor_daemon::new_token("bench", &["admin".into()]).expect("bench setup failed");
    match args.get(1).map(String::as_str) {
        Some("serve") => {
            let (config, store) = setup(1, dir.path(), &toml);
            let engine = engine(config, store);
            engine
                .rotate("bench-key", &Default::default())
                .await
                .expect("bench setup failed");
            // ROTOR_BENCH_CACHE_TTL_MS=0 measures the uncached path (store read + decrypt).
            let ttl = std::env::var("ROTOR_BENCH_CACHE_TTL_MS")
                .ok()
                .and_then(|v| v.parse().ok())
                .map_or(Duration::from_secs(1), Duration::from_millis);
            let running = Daemon::new(engine, Arc::new(SystemClock))
                .start(ServeOptions {
                    listen: Some("127.0.0.1:0".parse().expect("bench setup failed")),
                    value_cache_ttl: ttl,
                    ..Default::default()
                })
                .await
                .expect("bench setup failed");
            std::fs::write(&args[2], format!("{} {token}\n", running.url()))
                .expect("bench setup failed");
            // Serve until stdin closes.
            let stop = running.shutdown_token();
            std::thread::spawn(move || {
                let mut buf = String::new();
                while std::io::stdin()
                    .read_line(&mut buf)
                    .map(|n| n > 0)
                    .unwrap_or(false)
                {}
                stop.cancel();
            });
            running.until_signal().await;
        }
        Some("idle") => {
            let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
            let secs: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10);
            let (config, store) = setup(n, dir.path(), &toml);
            let engine = engine(config.clone(), store);
            let t = Instant::now();
            for s in &config.secrets {
                engine
                    .rotate(s.name.as_str(), &Default::default())
                    .await
                    .expect("bench setup failed");
            }
            let seeded = t.elapsed();
            let running = Daemon::new(engine, Arc::new(SystemClock))
                .start(ServeOptions {
                    listen: Some("127.0.0.1:0".parse().expect("bench setup failed")),
                    ..Default::default()
                })
                .await
                .expect("bench setup failed");
            // Let start-up (resume, first scheduler tick) settle, then measure idle.
            tokio::time::sleep(Duration::from_secs(3)).await;
            let tick = 100.0; // USER_HZ
            let c0 = cpu_ticks();
            let t0 = Instant::now();
            tokio::time::sleep(Duration::from_secs(secs)).await;
            let cpu = (cpu_ticks() - c0) as f64 / tick / t0.elapsed().as_secs_f64() * 100.0;
            let scrape = Instant::now();
            let body = reqwest::get(format!("{}/metrics", running.url()))
                .await
                .expect("bench setup failed")
                .text()
                .await
                .expect("bench setup failed");
            println!(
                "idle: secrets={n} seeded_in={:.1}s rss_mib={:.1} idle_cpu_pct={cpu:.2} metrics_scrape_ms={} metrics_bytes={}",
                seeded.as_secs_f64(),
                rss_mib(),
                scrape.elapsed().as_millis(),
                body.len()
            );
            running.stop().await;
        }
        Some("watch") => {
            let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100);
            let (config, store) = setup(1, dir.path(), &toml);
            let stamps = Arc::new(Stamp::default());
            let engine = engine(config, store).with_delivery(stamps.clone());
            let running = Daemon::new(engine, Arc::new(SystemClock))
                .start(ServeOptions {
                    listen: Some("127.0.0.1:0".parse().expect("bench setup failed")),
                    scheduler: None,
                    ..Default::default()
                })
                .await
                .expect("bench setup failed");
            let url = running.url();
            let http = reqwest::Client::new();
            let mut watch = http
                .get(format!("{url}/v1/watch"))
                .bearer_auth(&token)
                .send()
                .await
                .expect("bench setup failed");
            let _ready = watch.chunk().await.expect("bench setup failed");
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
            let reader = tokio::spawn(async move {
                let mut buf = String::new();
                while let Ok(Some(chunk)) = watch.chunk().await {
                    let at = Instant::now();
                    buf.push_str(&String::from_utf8_lossy(&chunk));
                    while let Some(i) = buf.find("\n\n") {
                        let ev: String = buf.drain(..i + 2).collect();
                        if ev.contains("\"finished\"") {
                            let _ = tx.send(at);
                        }
                    }
                }
            });
            let mut lat = Vec::new();
            for _ in 0..n {
                let r = http
                    .post(format!("{url}/v1/secrets/bench-key/rotate"))
                    .bearer_auth(&token)
                    .json(&serde_json::json!({"emergency": true, "reason": "bench"}))
                    .send()
                    .await
                    .expect("bench setup failed");
                assert!(r.status().is_success());
                let got = tokio::time::timeout(Duration::from_secs(2), rx.recv())
                    .await
                    .expect("bench setup failed")
                    .expect("bench setup failed");
                let finished = *stamps
                    .0
                    .lock()
                    .expect("bench setup failed")
                    .last()
                    .expect("bench setup failed");
                lat.push(got.saturating_duration_since(finished).as_secs_f64() * 1000.0);
            }
            lat.sort_by(f64::total_cmp);
            let pct =
                |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1];
            println!(
                "watch: rotations={n} finish_to_sse_ms p50={:.3} p99={:.3} max={:.3}",
                pct(0.50),
                pct(0.99),
                lat[lat.len() - 1]
            );
            reader.abort();
            running.stop().await;
        }
        _ => {
            eprintln!("usage: bench_http serve PORT_FILE | idle N SECS | watch N");
            std::process::exit(2);
        }
    }
}
