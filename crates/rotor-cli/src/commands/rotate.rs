//! `rotate`, `resume`, `abort`, `retire`, `setup`.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;

use rotor_core::{Kind, SecretName, Trigger};
use rotor_engine::{EngineError, Outcome, Progress, RotateOptions};

use crate::Exit;
use crate::cli::{AbortArgs, Format, RotateArgs};
use crate::context::Context;
use crate::output::time;

/// Progress on stderr: one line updated in place on a terminal, a line per step otherwise.
fn progress() -> rotor_engine::ProgressFn {
    let tty = std::io::stderr().is_terminal();
    Arc::new(move |p: &Progress| {
        let mut err = std::io::stderr().lock();
        let line = match p {
            Progress::Started { secret, step } => format!("{secret}: {step} ..."),
            Progress::Done { secret, step } => format!("{secret}: {step} ok"),
            Progress::Retrying {
                secret,
                step,
                attempt,
                error,
            } => {
                format!("{secret}: {step} retrying (attempt {attempt}): {error}")
            }
            Progress::Failed {
                secret,
                step,
                error,
            } => format!("{secret}: {step} FAILED: {error}"),
        };
        let _ = if tty {
            let done = !matches!(p, Progress::Started { .. } | Progress::Retrying { .. });
            write!(
                err,
                "\r\x1b[2K{line}{}",
                if done && matches!(p, Progress::Failed { .. }) {
                    "\n"
                } else {
                    ""
                }
            )
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
    })
}

fn describe(o: &Outcome) -> String {
    match o {
        Outcome::Completed {
            version, retired, ..
        } => format!(
            "rotated: new current {}{}",
            version.as_ref().map_or("-", |v| v.short()),
            retired
                .as_ref()
                .map(|r| format!(", previous {} retired", r.short()))
                .unwrap_or_default()
        ),
        Outcome::InGrace {
            version,
            retire_after,
            ..
        } => format!(
            "rotated: new current {}; the previous value stays valid until {} (then `rotor retire --due`)",
            version.as_ref().map_or("-", |v| v.short()),
            time(Some(*retire_after))
        ),
        Outcome::Waiting { version, until, .. } => format!(
            "published {} as pending; it activates after {} (then `rotor resume`)",
            version.as_ref().map_or("-", |v| v.short()),
            time(Some(*until))
        ),
    }
}

pub async fn rotate(config_path: &Path, format: Format, args: &RotateArgs) -> anyhow::Result<()> {
    if args.emergency && !args.dry_run {
        return super::daemon::emergency(config_path, format, args).await;
    }
    let ctx = Context::open(config_path).await?;
    let names: Vec<SecretName> = if args.due {
        ctx.engine.due().await?
    } else if args.all {
        ctx.config()
            .secrets
            .iter()
            .filter(|s| s.kind != Kind::Manual)
            .map(|s| s.name.clone())
            .collect()
    } else if args.names.is_empty() {
        anyhow::bail!("name the secrets to rotate, or pass --due or --all");
    } else {
        args.names
            .iter()
            .map(|n| ctx.engine.spec(n).map(|s| s.name.clone()))
            .collect::<Result<_, _>>()?
    };
    let opts = RotateOptions {
        trigger: if args.due {
            Trigger::Schedule
        } else {
            Trigger::Manual
        },
        reason: args.reason.clone(),
        emergency: args.emergency,
        evict: !args.no_evict,
        confirm: args.confirm,
    };
    if args.dry_run {
        let mut plans = Vec::new();
        for name in &names {
            let steps = ctx.engine.dry_run(name.as_str(), &opts)?;
            if format == Format::Table {
                println!("{name} (dry run: nothing is touched)");
                for s in &steps {
                    println!("  {:<8} {}", s.step.as_str(), s.touches);
                }
            }
            plans.push(serde_json::json!({ "secret": name, "steps": steps }));
        }
        if format == Format::Json {
            println!("{}", serde_json::to_string_pretty(&plans)?);
        }
        return Ok(());
    }
    if names.is_empty() {
        println!("nothing to rotate");
        return Ok(());
    }
    let engine = ctx.engine.with_progress(progress());
    let mut failed = 0;
    let mut busy = false;
    let mut results = Vec::new();
    for name in &names {
        match engine.rotate(name.as_str(), &opts).await {
            Ok(o) => {
                eprint!(
                    "{}",
                    if std::io::stderr().is_terminal() {
                        "\r\x1b[2K"
                    } else {
                        ""
                    }
                );
                if format == Format::Table {
                    println!("{name}: {}", describe(&o));
                }
                results.push(serde_json::json!({ "secret": name, "result": o }));
            }
            Err(e) => {
                if names.len() == 1 {
                    // One secret: its error is the command's, said once by main.
                    return Err(e.into());
                }
                failed += 1;
                busy |= crate::exit::code_of(&e) == 4;
                eprintln!("error: {e}");
                results.push(serde_json::json!({ "secret": name, "error": e.to_string() }));
            }
        }
    }
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    }
    if failed > 0 {
        eprintln!("{failed} of {} rotation(s) failed", names.len());
        return Err(Exit(if busy { 4 } else { 1 }).into());
    }
    Ok(())
}

fn report(
    format: Format,
    results: Vec<(SecretName, Result<Outcome, EngineError>)>,
    none: &str,
) -> anyhow::Result<()> {
    if results.is_empty() {
        if format == Format::Table {
            println!("{none}");
        } else {
            println!("[]");
        }
        return Ok(());
    }
    let mut failed = false;
    let mut json = Vec::new();
    for (name, r) in results {
        match r {
            Ok(o) => {
                if format == Format::Table {
                    println!("{name}: {}", describe(&o));
                }
                json.push(serde_json::json!({ "secret": name, "result": o }));
            }
            Err(e) => {
                failed = true;
                eprintln!("error: {e}");
                json.push(serde_json::json!({ "secret": name, "error": e.to_string() }));
            }
        }
    }
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&json)?);
    }
    if failed {
        return Err(Exit(1).into());
    }
    Ok(())
}

pub async fn resume(config_path: &Path, format: Format, name: Option<&str>) -> anyhow::Result<()> {
    let ctx = Context::open(config_path).await?;
    let engine = ctx.engine.with_progress(progress());
    let results = engine.resume(name).await?;
    report(format, results, "no interrupted rotations")
}

pub async fn retire_due(config_path: &Path, format: Format) -> anyhow::Result<()> {
    let ctx = Context::open(config_path).await?;
    let engine = ctx.engine.with_progress(progress());
    let results = engine.retire_due().await?;
    report(format, results, "nothing to retire")
}

pub async fn abort(config_path: &Path, args: &AbortArgs) -> anyhow::Result<()> {
    let ctx = Context::open(config_path).await?;
    let id = ctx.engine.abort(&args.name, args.reason.as_deref()).await?;
    println!(
        "{}: rotation {} aborted; the current value is unchanged",
        args.name,
        id.short()
    );
    Ok(())
}

pub async fn setup(config_path: &Path, name: &str) -> anyhow::Result<()> {
    let ctx = Context::open(config_path).await?;
    for line in ctx.engine.setup(name).await? {
        println!("{name}: {line}");
    }
    Ok(())
}
