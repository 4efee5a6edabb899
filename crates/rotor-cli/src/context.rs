//! What every command needs: the parsed config, the opened store, and an engine over them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use rotor_core::config::StoreConfig;
use rotor_core::{Config, Store};
use rotor_engine::{Engine, EngineOptions, Rotators, SystemClock};
use rotor_seal::{MasterKey, MasterKeySource};
use rotor_store_sqlite::SqliteStore;
use secrecy::SecretString;

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

/// The store file and how its master key is found.
pub struct StoreLocation<'a> {
    pub path: &'a Path,
    pub key_file: &'a Path,
    pub passphrase_env: Option<&'a str>,
}

pub fn location(config: &Config) -> StoreLocation<'_> {
    match &config.store {
        StoreConfig::Sqlite {
            path,
            master_key_file,
            passphrase_env,
        } => StoreLocation {
            path,
            key_file: master_key_file,
            passphrase_env: passphrase_env.as_deref(),
        },
    }
}

/// A passphrase from the named environment variable.
pub fn passphrase(var: &str) -> anyhow::Result<SecretString> {
    let p = std::env::var(var).with_context(|| {
        format!(
            "the config says the master key comes from a passphrase in ${var}, which is not set"
        )
    })?;
    Ok(SecretString::from(p))
}

/// Opens the configured store. The master key comes from `ROTOR_MASTER_KEY`, else the key
/// file, else the passphrase variable named in the config.
pub fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let loc = location(config);
    if !loc.path.exists() {
        return Err(rotor_core::StoreError::NotInitialized {
            path: loc.path.display().to_string(),
        }
        .into());
    }
    let store = if let (Some(var), false) = (
        loc.passphrase_env,
        std::env::var_os(rotor_seal::MASTER_KEY_ENV).is_some(),
    ) {
        SqliteStore::open_with_passphrase(loc.path, &passphrase(var)?, Default::default())?
    } else {
        SqliteStore::open(loc.path, master_key(loc.key_file)?)?
    };
    Ok(Arc::new(store))
}

/// The master key from `ROTOR_MASTER_KEY` or the key file.
pub fn master_key(key_file: &Path) -> anyhow::Result<MasterKey> {
    rotor_seal::resolve(&[
        MasterKeySource::Env,
        MasterKeySource::File(key_file.to_path_buf()),
    ])
    .map_err(|e| rotor_core::StoreError::MissingMasterKey {
        detail: e.to_string(),
    })
    .map_err(Into::into)
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
    pub fn open(config_path: &Path) -> anyhow::Result<Self> {
        let config = Arc::new(load_config(config_path)?);
        let store = open_store(&config)?;
        let engine = Engine::new(
            store,
            config,
            rotators(),
            Arc::new(SystemClock),
            EngineOptions::new(actor()),
        );
        Ok(Self { engine })
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        self.engine.store()
    }

    pub fn config(&self) -> &Config {
        self.engine.config()
    }
}
