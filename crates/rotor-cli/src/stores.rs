//! Opening and creating the configured store: embedded SQLite, PostgreSQL, or AWS Secrets
//! Manager with a ledger.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use rotor_core::config::StoreConfig;
use rotor_core::{Store, StoreError};
use rotor_seal::{MasterKey, MasterKeySource};
use rotor_store_postgres::PgStore;
use rotor_store_sqlite::{IntegrityCheck, Settings as SqliteSettings, SqliteStore};
use secrecy::SecretString;

/// The master key from `ROTOR_MASTER_KEY` or the key file.
pub fn master_key(key_file: &Path) -> anyhow::Result<MasterKey> {
    rotor_seal::resolve(&[
        MasterKeySource::Env,
        MasterKeySource::File(key_file.to_path_buf()),
    ])
    .map_err(|e| StoreError::MissingMasterKey {
        detail: e.to_string(),
    })
    .map_err(Into::into)
}

/// A master key from this file only (not the environment): the new key of a rotation.
pub fn master_key_file_only(key_file: &Path) -> anyhow::Result<MasterKey> {
    MasterKeySource::File(key_file.to_path_buf())
        .load()
        .map_err(|e| StoreError::MissingMasterKey {
            detail: e.to_string(),
        })
        .map_err(Into::into)
}

/// Where `rotor master-key rotate` keeps the new key until the rewrap is committed:
/// `KEYFILE.new`. Its presence means a rotation is under way.
pub fn pending_key_path(key_file: &Path) -> std::path::PathBuf {
    let mut name = key_file.as_os_str().to_owned();
    name.push(".new");
    std::path::PathBuf::from(name)
}

/// The new key when a master-key rotation is under way (`rotor master-key rotate`).
fn rotating_key(key_file: &Path) -> anyhow::Result<Option<MasterKey>> {
    let path = pending_key_path(key_file);
    if path.exists() {
        tracing::warn!(key = %path.display(), "a master-key rotation is under way: opening with both keys (finish it with `rotor master-key rotate`)");
        return master_key_file_only(&path).map(Some);
    }
    Ok(None)
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

fn env_key_set() -> bool {
    std::env::var_os(rotor_seal::MASTER_KEY_ENV).is_some()
}

/// Refuses a SQLite store file that group or others may read or write, as the key file is
/// refused (issue 11.8): values are sealed, but secret names, metadata, rotation state and
/// the audit log are not, and a writable file can be tampered with. Exit code 5.
fn refuse_loose_store_file(path: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path)
        .with_context(|| format!("cannot read store file {}", path.display()))?
        .permissions()
        .mode()
        & 0o7777;
    if mode & !0o600 != 0 {
        eprintln!(
            "error: refusing store file {p}: its mode is {mode:04o}, which lets other users read it (values are sealed, but names, metadata and the audit log are not); run `chmod 600 {p}`",
            p = path.display()
        );
        return Err(crate::Exit(5).into());
    }
    Ok(())
}

/// Opens the configured store. The master key comes from `ROTOR_MASTER_KEY`, else the key
/// file, else the passphrase variable named in the config. `integrity` says when the
/// embedded store checks its whole file (the other stores have no file to check).
pub async fn open(
    config: &StoreConfig,
    secrets: &[rotor_core::SecretSpec],
    integrity: IntegrityCheck,
) -> anyhow::Result<Arc<dyn Store>> {
    let settings = SqliteSettings {
        integrity,
        ..SqliteSettings::default()
    };
    Ok(match config {
        StoreConfig::Sqlite {
            path,
            master_key_file,
            passphrase_env,
        } => {
            if !path.exists() {
                return Err(StoreError::NotInitialized {
                    path: path.display().to_string(),
                }
                .into());
            }
            refuse_loose_store_file(path)?;
            let store = match passphrase_env {
                Some(var) if !env_key_set() => {
                    SqliteStore::open_with_passphrase(path, &passphrase(var)?, settings)?
                }
                _ => match rotating_key(master_key_file)? {
                    Some(new) => SqliteStore::open_rotating(
                        path,
                        new,
                        master_key(master_key_file)?,
                        settings,
                    )?,
                    None => SqliteStore::open_with(path, master_key(master_key_file)?, settings)?,
                },
            };
            Arc::new(store)
        }
        StoreConfig::Postgres {
            url,
            master_key_file,
        } => match rotating_key(master_key_file)? {
            Some(new) => Arc::new(
                PgStore::connect_rotating(
                    url.expose(),
                    new,
                    master_key(master_key_file)?,
                    Default::default(),
                )
                .await?,
            ),
            None => Arc::new(PgStore::connect(url.expose(), master_key(master_key_file)?).await?),
        },
        StoreConfig::Aws { .. } => Arc::new(aws::open(config, secrets, integrity).await?),
    })
}

/// Creates the configured store and, unless one exists or `ROTOR_MASTER_KEY` is set, a
/// master key file. Never overwrites. Returns what it did, a line each.
pub async fn init(config: &StoreConfig, actor: &str) -> anyhow::Result<Vec<String>> {
    let mut lines = Vec::new();
    match config {
        StoreConfig::Sqlite {
            path,
            master_key_file,
            passphrase_env,
        } => {
            if path.exists() {
                return Err(StoreError::AlreadyExists {
                    path: path.display().to_string(),
                }
                .into());
            }
            if let Some(var) = passphrase_env {
                let params = rotor_seal::KdfParams::generate()?;
                SqliteStore::create_with_passphrase(
                    path,
                    &passphrase(var)?,
                    &params,
                    actor,
                    Default::default(),
                )?;
                lines.push(format!("created store {}", path.display()));
                lines.push(format!(
                    "the master key is derived from the passphrase in ${var} (Argon2id); keep that passphrase safe: without it the store cannot be opened"
                ));
                return Ok(lines);
            }
            let key = key_for_init(master_key_file, &mut lines)?;
            SqliteStore::create(path, key, actor)?;
            lines.insert(0, format!("created store {} (mode 0600)", path.display()));
        }
        StoreConfig::Postgres {
            url,
            master_key_file,
        } => {
            let key = key_for_init(master_key_file, &mut lines)?;
            let store = PgStore::init(url.expose(), key, actor).await?;
            lines.insert(0, format!("created the rotor schema in {}", store.target()));
        }
        StoreConfig::Aws { ledger, prefix, .. } => {
            let mut inner = Box::pin(init(ledger, actor)).await?;
            lines.append(&mut inner);
            lines.push(format!(
                "values will live in AWS Secrets Manager under {}<name>; the ledger above keeps rotation state and the audit log",
                if prefix.is_empty() { "" } else { prefix }
            ));
        }
    }
    Ok(lines)
}

/// The key a new store is created with: `ROTOR_MASTER_KEY`, an existing key file (reused,
/// never overwritten), or a new key file written 0600.
fn key_for_init(key_file: &Path, lines: &mut Vec<String>) -> anyhow::Result<MasterKey> {
    if env_key_set() {
        lines.push(format!(
            "the master key comes from ${}",
            rotor_seal::MASTER_KEY_ENV
        ));
        return master_key(key_file);
    }
    if key_file.exists() {
        lines.push(format!(
            "using the existing master key {}",
            key_file.display()
        ));
        return master_key(key_file);
    }
    let key = MasterKey::generate()?;
    rotor_seal::write_key_file(key_file, &key)
        .with_context(|| format!("cannot write the master key file {}", key_file.display()))?;
    lines.push(format!(
        "created master key {} (mode 0600)",
        key_file.display()
    ));
    lines.push(
        "keep the master key safe and apart from the store (a password manager or your secret manager):\n  without it the store cannot be opened; with it and the store, every secret can be read"
            .into(),
    );
    Ok(key)
}

pub mod aws {
    use std::collections::BTreeMap;

    use rotor_core::config::KindSettings;
    use rotor_store_aws::{AwsSecretMeta, AwsSettings, AwsStore, AwsValueFormat};

    use super::*;

    /// An AWS store over its ledger. PostgreSQL credentials are written in AWS's documented
    /// JSON (engine, host, port, dbname, username, password) so AWS's own tooling reads them.
    /// Each secret carries its inventory description, KMS key and tags (owner, tier, kind,
    /// `rotor:rotated-by`).
    pub async fn open(
        config: &StoreConfig,
        secrets: &[rotor_core::SecretSpec],
        integrity: IntegrityCheck,
    ) -> anyhow::Result<AwsStore> {
        let StoreConfig::Aws {
            region,
            endpoint_url,
            prefix,
            kms_key_id,
            kms_key_ids,
            ledger,
        } = config
        else {
            anyhow::bail!("not an aws store");
        };
        let ledger = Box::pin(super::open(ledger, secrets, integrity)).await?;
        let mut formats = BTreeMap::new();
        for spec in secrets {
            if let KindSettings::Postgres(p) = &spec.settings {
                // The same reading of the URL as the rotator's (TLS parameters included).
                let (cfg, _) = rotor_tls::postgres::parse_url(&p.url)
                    .with_context(|| format!("secret {}: cannot parse url", spec.name))?;
                let host = match cfg.get_hosts().first() {
                    Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
                    _ => "localhost".to_owned(),
                };
                let port = cfg.get_ports().first().copied().unwrap_or(5432);
                let dbname = cfg.get_dbname().unwrap_or("postgres").to_owned();
                formats.insert(
                    spec.name.to_string(),
                    AwsValueFormat::PostgresJson { host, port, dbname },
                );
            }
        }
        if let Some(unknown) = kms_key_ids
            .keys()
            .find(|n| !secrets.iter().any(|s| s.name.as_str() == n.as_str()))
        {
            anyhow::bail!(
                "[store.kms_key_ids] names `{unknown}`, which is not a secret of this inventory; remove the line or fix the name"
            );
        }
        let metas = secrets
            .iter()
            .map(|spec| {
                let kms = kms_key_ids.get(spec.name.as_str()).cloned();
                (spec.name.to_string(), AwsSecretMeta::from_spec(spec, kms))
            })
            .collect();
        let settings = AwsSettings {
            region: region.clone(),
            endpoint_url: endpoint_url.clone(),
            prefix: prefix.clone(),
            formats,
            kms_key_id: kms_key_id.clone(),
            secrets: metas,
            ..AwsSettings::default()
        };
        Ok(AwsStore::connect(ledger, settings).await?)
    }
}
