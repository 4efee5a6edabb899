//! `init`, `check`, `status`, `plan`: the inventory and its schedule.

use std::path::Path;

use anyhow::Context as _;
use rotor_core::SecretState;
use rotor_store_sqlite::SqliteStore;

use crate::Exit;
use crate::cli::{Format, PlanArgs, StatusArgs};
use crate::context::{self, Context};
use crate::output::{self, age, time};

pub fn init(config_path: &Path) -> anyhow::Result<()> {
    let config = context::load_config(config_path)?;
    let loc = context::location(&config);
    if loc.path.exists() {
        return Err(rotor_core::StoreError::AlreadyExists {
            path: loc.path.display().to_string(),
        }
        .into());
    }
    let actor = context::actor();
    if let Some(var) = loc.passphrase_env {
        let params = rotor_seal::KdfParams::generate()?;
        SqliteStore::create_with_passphrase(
            loc.path,
            &context::passphrase(var)?,
            &params,
            &actor,
            Default::default(),
        )?;
        println!("created store {}", loc.path.display());
        println!(
            "the master key is derived from the passphrase in ${var} (Argon2id); keep that passphrase safe: without it the store cannot be opened"
        );
        return Ok(());
    }
    let from_env = std::env::var_os(rotor_seal::MASTER_KEY_ENV).is_some();
    let (key, wrote_key) = if from_env {
        (context::master_key(loc.key_file)?, false)
    } else if loc.key_file.exists() {
        // An existing key file is reused, never overwritten.
        (context::master_key(loc.key_file)?, false)
    } else {
        let key = rotor_seal::MasterKey::generate()?;
        rotor_seal::write_key_file(loc.key_file, &key).with_context(|| {
            format!(
                "cannot write the master key file {}",
                loc.key_file.display()
            )
        })?;
        (key, true)
    };
    SqliteStore::create(loc.path, key, &actor)?;
    println!("created store {} (mode 0600)", loc.path.display());
    if wrote_key {
        println!("created master key {} (mode 0600)", loc.key_file.display());
        println!(
            "keep the master key safe and apart from the store (a password manager or your secret manager):\n  without it the store cannot be opened; with it and the store, every secret can be read"
        );
    } else if from_env {
        println!("the master key comes from ${}", rotor_seal::MASTER_KEY_ENV);
    } else {
        println!("using the existing master key {}", loc.key_file.display());
    }
    Ok(())
}

pub fn check(config_path: &Path, format: Format) -> anyhow::Result<()> {
    match context::load_config(config_path) {
        Ok(config) => {
            if format == Format::Json {
                println!(
                    "{}",
                    serde_json::json!({ "valid": true, "secrets": config.secrets.len() })
                );
            } else {
                println!(
                    "{}: ok, {} secrets",
                    config.source.display(),
                    config.secrets.len()
                );
            }
            Ok(())
        }
        Err(e) => match e.downcast::<rotor_core::ConfigError>() {
            Ok(ce) => {
                if format == Format::Json {
                    println!(
                        "{}",
                        serde_json::json!({ "valid": false, "errors": ce.diagnostics })
                    );
                } else {
                    eprintln!("{ce}");
                }
                Err(Exit(2).into())
            }
            Err(other) => Err(other),
        },
    }
}

pub async fn status(config_path: &Path, format: Format, args: &StatusArgs) -> anyhow::Result<()> {
    let ctx = Context::open(config_path)?;
    let rows = ctx.engine.status().await?;
    let overdue = rows
        .iter()
        .filter(|r| r.state == SecretState::Overdue)
        .count();
    let table = rows
        .iter()
        .map(|r| {
            vec![
                r.name.to_string(),
                r.kind.to_string(),
                r.tier.map_or_else(|| "-".into(), |t| t.to_string()),
                r.automation.as_str().to_owned(),
                time(r.last_rotated),
                age(r.age_secs),
                time(r.next_due),
                r.state.to_string(),
            ]
        })
        .collect();
    output::print(
        format,
        &[
            "SECRET",
            "KIND",
            "TIER",
            "AUTOMATION",
            "LAST ROTATED",
            "AGE",
            "NEXT DUE",
            "STATE",
        ],
        table,
        &rows,
    )?;
    if args.fail_on_overdue && overdue > 0 {
        eprintln!("{overdue} secret(s) overdue");
        return Err(Exit(3).into());
    }
    Ok(())
}

pub async fn plan(config_path: &Path, format: Format, args: &PlanArgs) -> anyhow::Result<()> {
    let ctx = Context::open(config_path)?;
    let entries = ctx
        .engine
        .plan(rotor_core::Duration::from_days(u64::from(args.days)))
        .await?;
    let rows = entries
        .iter()
        .map(|e| {
            vec![
                time(Some(e.due)),
                e.name.to_string(),
                e.kind.to_string(),
                e.automation.as_str().to_owned(),
                e.state.to_string(),
                if e.automation == rotor_core::Automation::Automatic {
                    "rotor rotates it".into()
                } else {
                    "a person rotates it (rotor put / rotor rotate)".into()
                },
            ]
        })
        .collect();
    output::print(
        format,
        &["DUE", "SECRET", "KIND", "AUTOMATION", "STATE", "WHO"],
        rows,
        &entries,
    )
}
