//! `init`, `check`, `status`, `plan`: the inventory and its schedule.

use std::path::Path;

use rotor_core::schedule::Standing;

use crate::Exit;
use crate::cli::{Format, PlanArgs, StatusArgs};
use crate::context::{self, Context};
use crate::output::{self, age, time};

pub async fn init(config_path: &Path) -> anyhow::Result<()> {
    let config = context::load_config(config_path)?;
    for line in crate::stores::init(&config.store, &context::actor()).await? {
        println!("{line}");
    }
    // The first anchor, so that even an emptied log is noticed from the start.
    if crate::anchor::key_for(&config.store).is_some() {
        let ctx = Context::open(config_path).await?;
        crate::anchor::anchor_now(ctx.store(), ctx.config()).await?;
    }
    Ok(())
}

pub fn check(config_path: &Path, format: Format) -> anyhow::Result<()> {
    match context::load_config(config_path) {
        Ok(config) => {
            if format == Format::Json {
                println!(
                    "{}",
                    serde_json::json!({ "valid": true, "secrets": config.secrets.len(), "warnings": config.warnings })
                );
            } else {
                for w in &config.warnings {
                    eprintln!("warning: {w}");
                }
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
    let overdue = rows.iter().filter(|r| r.standing.overdue).count();
    let table = rows
        .iter()
        .map(|r| {
            vec![
                r.name.to_string(),
                r.kind.to_string(),
                r.tier.map_or_else(|| "-".into(), |t| t.to_string()),
                r.automation.as_str().to_owned(),
                last_rotated(&r.standing),
                age(r.age_secs),
                time(Some(r.standing.next_due)),
                r.standing.label.clone(),
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
    if format == Format::Table {
        print_notes(rows.iter().map(|r| (r.name.as_str(), &r.standing)));
    }
    if args.fail_on_overdue && overdue > 0 {
        eprintln!("{overdue} secret(s) overdue");
        return Err(Exit(3).into());
    }
    Ok(())
}

/// `LAST ROTATED`: the time, marked when a person declared it in the config.
fn last_rotated(s: &Standing) -> String {
    match s.last_rotated {
        Some(_) if s.last_rotated_declared => format!("{} (declared)", time(s.last_rotated)),
        t => time(t),
    }
}

/// Below a table: why a secret failed and what to run, one line per secret that has either.
fn print_notes<'a>(rows: impl Iterator<Item = (&'a str, &'a Standing)>) {
    let mut first = true;
    for (name, s) in rows {
        let parts: Vec<&str> = [s.reason.as_deref(), s.hint.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        if parts.is_empty() {
            continue;
        }
        if first {
            println!();
            first = false;
        }
        println!("{name}: {}", parts.join("; "));
    }
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
                e.action.as_str().to_owned(),
                e.name.to_string(),
                e.kind.to_string(),
                e.automation.as_str().to_owned(),
                e.label.clone(),
                e.who.clone(),
            ]
        })
        .collect();
    output::print(
        format,
        &[
            "DUE",
            "ACTION",
            "SECRET",
            "KIND",
            "AUTOMATION",
            "STATE",
            "WHO",
        ],
        rows,
        &entries,
    )
}
