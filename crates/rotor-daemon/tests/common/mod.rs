//! Test fixtures: a temp dir with a real SQLite store, an engine over it, tokens, a loopback
//! webhook recorder, and fake *targets* (test-only `Rotator`s of kind `command`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rotor_core::rotator::{Generated, PlannedStep, StepContext};
use rotor_core::store::Versioned;
use rotor_core::{Config, Kind, Rotator, RotatorError, SecretSpec, SecretValue, Store};
use rotor_engine::{Clock, Engine, EngineOptions, Rotators};
use rotor_seal::MasterKey;
use rotor_store_sqlite::SqliteStore;

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
}

pub fn fixture(toml: &str) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir for the fixture");
    let text = format!("[store]\nkind = \"sqlite\"\n{toml}");
    let config = rotor_core::config::parse(&text, &dir.path().join("rotor.toml"), &|_| None)
        .unwrap_or_else(|e| panic!("config: {e}"));
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::create(
            &dir.path().join("rotor.db"),
            MasterKey::generate().expect("generate master key"),
            "test",
        )
        .expect("create SqliteStore rotor.db"),
    );
    Fixture {
        dir,
        config: Arc::new(config),
        store,
    }
}

impl Fixture {
    pub fn engine(&self, clock: Arc<dyn Clock>, extra: Option<Arc<dyn Rotator>>) -> Engine {
        let mut rotators = Rotators::new()
            .with(Arc::new(rotor_rotate::RandomRotator))
            .with(Arc::new(rotor_rotate::JwtRotator));
        if let Some(r) = extra {
            rotators = rotators.with(r);
        }
        let mut opts = EngineOptions::new("rotor-test");
        opts.retry.attempts = 1;
        Engine::new(
            self.store.clone(),
            self.config.clone(),
            rotators,
            clock,
            opts,
        )
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Tokens for each scope used in the tests: (token, toml).
pub fn tokens(list: &[(&str, &[&str])]) -> (Vec<String>, String) {
    let mut toks = Vec::new();
    let mut toml = String::new();
    for (name, scopes) in list {
        let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
        let (t, lines) = rotor_daemon::new_token(name, &scopes).expect("new API token");
        toks.push(t);
        toml.push_str(&lines);
    }
    (toks, toml)
}

/// A fake target (kind `command`): fails `test` while `fail_left > 0`, may take time in
/// `set`, and records how many run at once.
#[derive(Debug, Default)]
pub struct FakeTarget {
    pub fail_left: AtomicU32,
    pub creates: AtomicU32,
    pub running: AtomicUsize,
    pub max_running: AtomicUsize,
    pub set_takes: Mutex<std::time::Duration>,
    /// Block in `set` forever (to leave a rotation interrupted).
    pub hang: AtomicBool,
    pub create_times: Mutex<Vec<tokio::time::Instant>>,
    /// `set` and `rollback` fail (transiently, as an unreachable target does) while set.
    pub unreachable: AtomicBool,
    pub rollback_times: Mutex<Vec<tokio::time::Instant>>,
    /// When each `probe` ran; it fails while `probe_fails` is set.
    pub probe_times: Mutex<Vec<tokio::time::Instant>>,
    pub probe_fails: AtomicBool,
}

#[async_trait]
impl Rotator for FakeTarget {
    fn kind(&self) -> Kind {
        Kind::Command
    }
    fn plan(&self, _spec: &SecretSpec) -> Vec<PlannedStep> {
        Vec::new()
    }
    async fn create(&self, _ctx: &StepContext<'_>) -> Result<Generated, RotatorError> {
        self.creates.fetch_add(1, Ordering::SeqCst);
        self.create_times
            .lock()
            .expect("lock fake target create_times")
            .push(tokio::time::Instant::now());
        Ok(Generated {
            value: SecretValue::from_slice(b"fake-target-value-0123456789"),
            metadata: serde_json::json!({}),
        })
    }
    async fn set(&self, _ctx: &StepContext<'_>, _p: &Versioned) -> Result<(), RotatorError> {
        if self.unreachable.load(Ordering::SeqCst) {
            return Err(RotatorError::transient(
                "the fake target is unreachable (connection refused)",
            ));
        }
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        let d = *self.set_takes.lock().expect("lock fake target set_takes");
        if self.hang.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
        self.running.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
    async fn rollback(&self, _ctx: &StepContext<'_>, _p: &Versioned) -> Result<(), RotatorError> {
        self.rollback_times
            .lock()
            .expect("lock fake target rollback_times")
            .push(tokio::time::Instant::now());
        if self.unreachable.load(Ordering::SeqCst) {
            return Err(RotatorError::transient(
                "the fake target is unreachable (connection refused)",
            ));
        }
        Ok(())
    }
    async fn probe(&self, _ctx: &StepContext<'_>) -> Result<Vec<String>, RotatorError> {
        self.probe_times
            .lock()
            .expect("lock fake target probe_times")
            .push(tokio::time::Instant::now());
        if self.probe_fails.load(Ordering::SeqCst) {
            return Err(RotatorError::transient("the fake target is unreachable")
                .with_fix("start the fake target"));
        }
        Ok(vec!["the fake target answers".into()])
    }
    async fn test(&self, _ctx: &StepContext<'_>, _p: &Versioned) -> Result<(), RotatorError> {
        let left = self.fail_left.load(Ordering::SeqCst);
        if left > 0 {
            self.fail_left.store(left - 1, Ordering::SeqCst);
            return Err(RotatorError::permanent(
                "the fake target refused the new value",
            ));
        }
        Ok(())
    }
}

/// A loopback HTTP server recording request bodies; answers `status_plan` in turn (then 200),
/// and serves `GET /health` (200) and `GET /errors` (the next number of `rates`).
pub struct Recorder {
    pub url: String,
    pub bodies: Arc<Mutex<Vec<String>>>,
    pub shutdown: tokio_util::sync::CancellationToken,
}

pub async fn recorder(status_plan: Vec<u16>, rates: Vec<&'static str>) -> Recorder {
    use axum::routing::{get, post};
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let plan = Arc::new(Mutex::new(status_plan));
    let rates = Arc::new(Mutex::new(rates));
    let b = bodies.clone();
    let app = axum::Router::new()
        .route(
            "/hook",
            post(move |body: String| {
                let b = b.clone();
                let plan = plan.clone();
                async move {
                    b.lock().expect("lock recorder bodies").push(body);
                    let mut p = plan.lock().expect("lock recorder status plan");
                    let code = if p.is_empty() { 200 } else { p.remove(0) };
                    axum::http::StatusCode::from_u16(code).expect("recorder status plan code")
                }
            }),
        )
        .route("/health", get(|| async { "ok" }))
        .route(
            "/errors",
            get(move || {
                let rates = rates.clone();
                async move {
                    let mut r = rates.lock().expect("lock recorder error rates");
                    if r.len() > 1 { r.remove(0) } else { r[0] }.to_owned()
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the webhook recorder on loopback");
    let addr = listener
        .local_addr()
        .expect("local address of the webhook recorder");
    let shutdown = tokio_util::sync::CancellationToken::new();
    let s = shutdown.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(s.cancelled_owned())
            .await
            .expect("serve the webhook recorder");
    });
    Recorder {
        url: format!("http://{addr}"),
        bodies,
        shutdown,
    }
}

/// `promtool`, or a failure telling how to get it.
pub fn promtool() -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join("promtool");
        if p.is_file() {
            return p;
        }
    }
    panic!("promtool is not installed: run scripts/install-deps (Debian package `prometheus`)");
}
