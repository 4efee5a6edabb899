//! `init`, `check`, `status`, `plan`: the inventory and its schedule.

use std::path::Path;

use rotor_core::SecretState;

use crate::Exit;
use crate::cli::{Format, PlanArgs, StatusArgs};
use crate::context::{self, Context};
use crate::output::{self, age, time};

pub async fn init(config_path: &Path) -> anyhow::Result<()> {
    let config = context::load_config(config_path)?;
    for line in crate::stores::init(&config.store, &context::actor()).await? {
        println!("{line}");
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
    let ctx = Context::open(config_path).await?;
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
    let ctx = Context::open(config_path).await?;
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
