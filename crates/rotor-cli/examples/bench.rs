//! Figures for the embedded store, printed side by side (run on demand, never in tests):
//!
//! - `rotor status` over a generated inventory of 10,000 secrets (the release binary,
//!   spawned; target < 0.5 s), and `Engine::status` in-process;
//! - `rotor put` throughput: in-process, and as separate `rotor put` processes;
//! - rotations per second of `random` secrets with every step durable (target ≥ 500/s).
//!
//! `cargo build --release --bin rotor --example bench && target/release/examples/bench`
//! (`scripts/bench-cli` does both).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rotor_core::SecretValue;
use rotor_engine::{Engine, EngineOptions, RotateOptions, Rotators, SystemClock};
use rotor_store_sqlite::SqliteStore;

const SECRETS: usize = 10_000;

fn config_text(n: usize, grace: &str) -> String {
    let mut s = String::from("[store]\npath = \"rotor.db\"\nmaster_key_file = \"rotor.key\"\n");
    for i in 0..n {
        s.push_str(&format!(
            "\n[secrets.secret-{i:05}]\nkind = \"random\"\nrotate_every = \"90d\"\ngrace = \"{grace}\"\n"
        ));
    }
    s
}

fn engine(dir: &Path, n: usize, grace: &str) -> anyhow::Result<Engine> {
    let text = config_text(n, grace);
    let path = dir.join("rotor.toml");
    std::fs::write(&path, &text)?;
    let config = rotor_core::config::parse(&text, &path, &|_| None)?;
    let key = rotor_seal::MasterKey::generate()?;
    rotor_seal::write_key_file(&dir.join("rotor.key"), &key)?;
    let store = SqliteStore::create(&dir.join("rotor.db"), key, "bench")?;
    Ok(Engine::new(
        Arc::new(store),
        Arc::new(config),
        Rotators::new().with(Arc::new(rotor_rotate::RandomRotator)),
        Arc::new(SystemClock),
        EngineOptions::new("bench"),
    ))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn rotor_bin() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("rotor"))
        .ok_or_else(|| anyhow::anyhow!("cannot locate the rotor binary"))?;
    anyhow::ensure!(
        bin.exists(),
        "build it first: cargo build --release --bin rotor"
    );
    Ok(bin)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let rotor = rotor_bin()?;
    // `bench --inventory-only DIR`: build the 10,000-secret store in DIR and stop (for
    // timing `rotor status` by hand).
    let args: Vec<String> = std::env::args().collect();
    let keep = (args.get(1).map(String::as_str) == Some("--inventory-only"))
        .then(|| args.get(2).cloned())
        .flatten();
    let tmp = tempfile::tempdir()?;
    let dir_path = match &keep {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            PathBuf::from(d)
        }
        None => tmp.path().to_path_buf(),
    };
    struct Dir(PathBuf);
    impl Dir {
        fn path(&self) -> &Path {
            &self.0
        }
    }
    let dir = Dir(dir_path);
    println!("rotor benchmarks (embedded SQLite store, release build)");

    // 1. An inventory of 10,000 secrets, each with a current value (in-process puts).
    let eng = engine(dir.path(), SECRETS, "1h")?;
    let start = Instant::now();
    for i in 0..SECRETS {
        let value = SecretValue::new(format!("value-{i:05}-0123456789abcdef").into_bytes());
        eng.put(
            &format!("secret-{i:05}"),
            value,
            serde_json::json!({}),
            None,
        )
        .await?;
    }
    let put_secs = start.elapsed().as_secs_f64();
    println!(
        "put (in-process, one transaction each): {SECRETS} in {put_secs:.2} s = {:.0} puts/s",
        SECRETS as f64 / put_secs
    );
    if keep.is_some() {
        return Ok(());
    }

    // 2. status, in-process and through the binary.
    let mut inproc = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let rows = eng.status().await?;
        inproc.push(t.elapsed());
        anyhow::ensure!(rows.len() == SECRETS);
    }
    let mut spawned = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let out = Command::new(&rotor)
            .args(["--config"])
            .arg(dir.path().join("rotor.toml"))
            .arg("status")
            .stdout(Stdio::null())
            .status()?;
        spawned.push(t.elapsed());
        anyhow::ensure!(out.success(), "rotor status failed");
    }
    println!(
        "status over {SECRETS} secrets: `rotor status` process {:.3} s (median of 5; target < 0.5 s); Engine::status {:.3} s",
        median(spawned).as_secs_f64(),
        median(inproc).as_secs_f64()
    );

    // 3. `rotor put` as separate processes (what a script does).
    let n = 50;
    let t = Instant::now();
    for i in 0..n {
        let mut child = Command::new(&rotor)
            .arg("--config")
            .arg(dir.path().join("rotor.toml"))
            .args(["put", &format!("secret-{:05}", i % SECRETS)])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()?;
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().ok_or_else(|| anyhow::anyhow!("stdin"))?;
            stdin.write_all(b"a-new-value-from-a-script")?;
        }
        anyhow::ensure!(child.wait()?.success(), "rotor put failed");
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "`rotor put` processes: {n} in {s:.2} s = {:.0} puts/s",
        n as f64 / s
    );
    drop(eng);

    // 4. Rotations per second, every step durable (begin, create, set, test, finish, retire).
    let dir2 = tempfile::tempdir()?;
    let n = 1_000;
    let eng = engine(dir2.path(), n, "0s")?;
    let t = Instant::now();
    for i in 0..n {
        eng.rotate(&format!("secret-{i:05}"), &RotateOptions::default())
            .await?;
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "rotations of random secrets, every step committed: {n} in {s:.2} s = {:.0} rotations/s (target >= 500/s)",
        n as f64 / s
    );
    let t = Instant::now();
    for _ in 0..n {
        eng.rotate("secret-00000", &RotateOptions::default())
            .await?;
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "rotations of one random secret back to back (grace 0, retire included): {:.0} rotations/s",
        n as f64 / s
    );
    Ok(())
}
