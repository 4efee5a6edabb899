//! `rotor probe NAME... | --all`: the preflight check of each secret's rotation.

use std::path::Path;

use rotor_engine::ProbeReport;

use crate::Exit;
use crate::cli::{Format, ProbeArgs};
use crate::context::Context;

/// The lines a person reads for one report: each passed check, then the blocker and its fix.
pub fn lines(r: &ProbeReport) -> Vec<String> {
    let mut out: Vec<String> = r.checks.iter().map(|c| format!("ok: {c}")).collect();
    if let Some(cause) = &r.blocked {
        out.push(match &r.fix {
            Some(fix) => format!("BLOCKED: {cause} ({fix})"),
            None => format!("BLOCKED: {cause}"),
        });
    }
    out
}

pub async fn probe(config_path: &Path, format: Format, args: &ProbeArgs) -> anyhow::Result<()> {
    let ctx = Context::open(config_path).await?;
    let names: Vec<String> = if args.all {
        ctx.engine
            .config()
            .secrets
            .iter()
            .map(|s| s.name.to_string())
            .collect()
    } else {
        // Unknown names fail before anything is probed.
        for n in &args.names {
            ctx.engine.spec(n)?;
        }
        args.names.clone()
    };
    let mut reports = Vec::new();
    for name in &names {
        let r = ctx.engine.probe(name).await?;
        if format == Format::Table {
            println!("{name}: {}", if r.is_blocked() { "blocked" } else { "ok" });
            for line in lines(&r) {
                println!("  {line}");
            }
        }
        reports.push(r);
    }
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    }
    if reports.iter().any(ProbeReport::is_blocked) {
        return Err(Exit(1).into());
    }
    Ok(())
}
