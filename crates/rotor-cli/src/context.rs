//! What every command needs: the parsed config, the opened store, and an engine over them.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use std::sync::Arc;

use rotor_core::{Config, Store};
use rotor_engine::{Engine, EngineOptions, Rotators, SystemClock};

/// Reads and validates the config file.
pub fn load_config(path: &Path) -> anyhow::Result<Config> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read config {}: pass --config FILE or set ROTOR_CONFIG",
            path.display()
        )
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
}

/// Config, store and engine together.
pub struct Context {
    pub engine: Engine,
}

impl Context {
    pub async fn open(config_path: &Path) -> anyhow::Result<Self> {
        let config = Arc::new(load_config(config_path)?);
        let mut store = crate::stores::open(&config.store, &config.secrets).await?;
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
        if !config.render.is_empty() {
            engine = engine.with_delivery(Arc::new(rotor_deliver::Renderer::new(config, store)));
        }
        // A declared `last_rotated` is a person's word: audited once (never fatal here).
        if let Err(e) = engine.record_declared_ages().await {
            tracing::warn!(error = %e, "cannot record the declared last_rotated times in the audit log");
        }
        Ok(Self { engine })
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        self.engine.store()
    }

    pub fn config(&self) -> &Config {
        self.engine.config()
    }
}
