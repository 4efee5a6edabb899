//! What every command needs: the parsed config, the opened store, and an engine over them.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use std::sync::Arc;

use rotor_core::{Config, Store};
use rotor_engine::{Engine, EngineOptions, Rotators, SystemClock};
use rotor_store_sqlite::IntegrityCheck;

/// Reads and validates the config file.
pub fn load_config(path: &Path) -> anyhow::Result<Config> {
    let text = std::fs::read_to_string(path).with_context(|| {
        crate::Usage(format!(
            "cannot read config {}: pass --config FILE or set ROTOR_CONFIG",
            path.display()
        ))
    })?;
    let path = absolute(path);
    Ok(rotor_core::config::parse(&text, &path, &|k| {
        std::env::var(k).ok()
    })?)
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// `user@host`, for the audit log.
pub fn actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .or_else(user_from_passwd)
        .unwrap_or_else(|| "unknown".into());
    format!(
        "{user}@{}",
        rotor_engine::Owner::this_process()
            .as_str()
            .split(':')
            .next()
            .unwrap_or("localhost")
    )
}

/// The login name of this process's real uid, from /proc and /etc/passwd (no libc needed).
fn user_from_passwd() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .to_owned();
    std::fs::read_to_string("/etc/passwd")
        .ok()?
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            (f.nth(1)? == uid).then(|| name.to_owned())
        })
}

/// The rotators this binary has.
pub fn rotators() -> Rotators {
    Rotators::new()
        .with(Arc::new(rotor_rotate::RandomRotator))
        .with(Arc::new(rotor_rotate::JwtRotator))
        .with(Arc::new(rotor_rotate_postgres::PostgresRotator::new()))
        .with(Arc::new(rotor_rotate_redis::RedisRotator::new()))
        .with(Arc::new(rotor_rotate_command::CommandRotator::new()))
}

/// Config, store and engine together.
pub struct Context {
    pub engine: Engine,
    /// The `[[render]]` targets (also the engine's delivery), when the config has any.
    renderer: Option<Arc<rotor_deliver::Renderer>>,
}

impl Context {
    /// For a command: the embedded store checks its whole file before its first write only,
    /// so a command that only reads (`status`, `get`, `history`) does not read it all first.
    pub async fn open(config_path: &Path) -> anyhow::Result<Self> {
        Self::open_with(config_path, IntegrityCheck::BeforeFirstWrite).await
    }

    /// For `rotor serve` and the source of `rotor store migrate`: the whole file is checked
    /// at once, so damage is reported at start-up (or before anything is copied).
    pub async fn open_checked(config_path: &Path) -> anyhow::Result<Self> {
        Self::open_with(config_path, IntegrityCheck::OnOpen).await
    }

    async fn open_with(config_path: &Path, integrity: IntegrityCheck) -> anyhow::Result<Self> {
        let config = Arc::new(load_config(config_path)?);
        let mut store = crate::stores::open(&config.store, &config.secrets, integrity).await?;
        if let Some(key) = crate::anchor::key_for(&config.store) {
            store =
                crate::anchor::Anchored::wrap(store, crate::anchor::path_for(&config.source), key);
        }
        let mut engine = Engine::new(
            store.clone(),
            config.clone(),
            rotators(),
            Arc::new(SystemClock),
            EngineOptions {
                lease_for: config.server.lease.to_std(),
                ..EngineOptions::new(actor())
            },
        );
        let renderer = (!config.render.is_empty())
            .then(|| Arc::new(rotor_deliver::Renderer::new(config, store)));
        if let Some(r) = &renderer {
            engine = engine.with_delivery(r.clone());
        }
        // A declared `last_rotated` is a person's word: audited once (never fatal here).
        if let Err(e) = engine.record_declared_ages().await {
            tracing::warn!(error = %e, "cannot record the declared last_rotated times in the audit log");
        }
        Ok(Self { engine, renderer })
    }

    /// Brings every rendered target that is behind the store up to date (a render lost to a
    /// crash between a commit and its delivery), running `on_change` for those it rewrites.
    /// Called by the commands that change the store, `resume` and `serve` start-up. Never
    /// fails the command: problems are printed (and the next delivery tries again).
    pub async fn catch_up(&self) {
        self.catch_up_later().run().await;
    }

    /// A handle for [`catch_up`](Self::catch_up) that outlives a moved-out engine.
    pub fn catch_up_later(&self) -> CatchUp {
        CatchUp(self.renderer.clone())
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        self.engine.store()
    }

    pub fn config(&self) -> &Config {
        self.engine.config()
    }
}

/// See [`Context::catch_up`].
pub struct CatchUp(Option<Arc<rotor_deliver::Renderer>>);

impl CatchUp {
    pub async fn run(&self) {
        let Some(renderer) = &self.0 else {
            return;
        };
        let (results, errors) = match renderer.catch_up().await {
            Ok(r) => (r, Vec::new()),
            Err(rotor_deliver::DeliverError::Incomplete { errors, results }) => (results, errors),
            Err(e) => (Vec::new(), vec![e]),
        };
        for r in &results {
            match &r.on_change {
                rotor_deliver::OnChangeOutcome::Failed(m) => eprintln!("warning: {m}"),
                _ if r.changed => {
                    eprintln!("{}: was behind the store; rendered again", r.target)
                }
                _ => {}
            }
        }
        for e in &errors {
            eprintln!("warning: {e}");
        }
    }
}
