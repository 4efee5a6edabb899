//! `serve`, `alerts`, `token new`, `drill`, emergency rotations, and `--server URL` mode.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use rotor_daemon::{EmergencyOptions, Report, ServeOptions};

use crate::Exit;
use crate::cli::{AlertsArgs, Command, DrillArgs, Format, RotateArgs, ServeArgs};
use crate::context::Context;
use crate::output;

pub async fn serve(config_path: &Path, args: &ServeArgs) -> anyhow::Result<()> {
    // The address goes to stderr whatever the log level: a person starting it wants to know
    // where to point the browser, a script can read the real port when it asked for 0.
    let ctx = Context::open_checked(config_path).await?;
    // Start-up: targets left behind by a crash are brought up to date before serving.
    ctx.catch_up().await;
    let opts = ServeOptions {
        listen: args.listen,
        scheduler: if args.no_scheduler {
            None
        } else {
            ServeOptions::default().scheduler
        },
        ..ServeOptions::default()
    };
    let running = rotor_daemon::Daemon::new(ctx.engine, Arc::new(rotor_engine::SystemClock))
        .start(opts)
        .await?;
    eprintln!("rotor serve: listening on {}", running.url());
    running.until_signal().await;
    Ok(())
}

pub fn alerts(config_path: &Path, args: &AlertsArgs, format: Format) -> anyhow::Result<()> {
    let config = crate::context::load_config(config_path)?;
    let mut rules = rotor_daemon::alert_rules(&config);
    if format == Format::Json {
        // The same rules as JSON (which Prometheus and promtool read as YAML too).
        let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&rules)
            .context("the generated alert rules are not valid YAML")?;
        rules = serde_json::to_string_pretty(&doc)? + "\n";
    }
    match &args.output {
        Some(path) => {
            std::fs::write(path, rules)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        None => print!("{rules}"),
    }
    Ok(())
}

pub fn token_new(name: &str, scopes: &[String], format: Format) -> anyhow::Result<()> {
    // Everything new_token refuses is about the arguments (name, scopes).
    let (token, toml) =
        rotor_daemon::new_token(name, scopes).map_err(|e| crate::Usage(e.to_string()))?;
    if format == Format::Json {
        let body = serde_json::json!({ "name": name, "token": token, "config": toml });
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    eprintln!("the token (shown once; rotor stores only its hash):");
    println!("{token}");
    eprintln!("\nadd to the config:\n{toml}");
    Ok(())
}

fn print_report(format: Format, report: &Report) -> anyhow::Result<()> {
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", rotor_daemon::emergency::markdown(report));
        if let Some(files) = &report.files {
            eprintln!(
                "report written to {} and {}",
                files.markdown.display(),
                files.json.display()
            );
        }
    }
    if !report.ok {
        return Err(Exit(1).into());
    }
    Ok(())
}

pub async fn drill(config_path: &Path, format: Format, args: &DrillArgs) -> anyhow::Result<()> {
    let ctx = Context::open(config_path).await?;
    let opts = EmergencyOptions {
        confirm: args.confirm,
        ..EmergencyOptions::default()
    };
    let report = rotor_daemon::drill(&ctx.engine, &args.reason, &opts).await?;
    print_report(format, &report)
}

/// `rotor rotate --emergency TARGET...`: the seed's emergency_rotate.sh, with a report.
pub async fn emergency(
    config_path: &Path,
    format: Format,
    args: &RotateArgs,
) -> anyhow::Result<()> {
    let ctx = Context::open(config_path).await?;
    let reason = args.reason.clone().ok_or_else(|| {
        crate::Usage(
            "an emergency rotation needs --reason (it goes into the audit log and the report)"
                .into(),
        )
    })?;
    let notify = crate::notify::CliNotifier::new(&ctx);
    let notifier = notify.inner();
    let opts = EmergencyOptions {
        confirm: args.confirm,
        evict: !args.no_evict,
        ..EmergencyOptions::default()
    };
    let targets: Vec<String> = if args.all {
        vec!["all".into()]
    } else {
        args.names.clone()
    };
    anyhow::ensure!(
        !targets.is_empty(),
        "name what to rotate: secrets, kinds (jwt, postgres, redis, ...) or all"
    );
    let mut ok = true;
    for target in targets {
        let report =
            rotor_daemon::emergency(&ctx.engine, notifier, &target, &reason, &opts).await?;
        ok &= report.ok;
        // A failed checklist is reported at the end, after every target ran.
        if let Err(e) = print_report(format, &report)
            && e.downcast_ref::<Exit>().is_none()
        {
            notify.finish().await;
            return Err(e);
        }
    }
    notify.finish().await;
    if !ok {
        return Err(Exit(1).into());
    }
    Ok(())
}

/// `--server URL`: status, rotate and get through a running daemon.
pub async fn remote(server: &str, format: Format, command: Command) -> anyhow::Result<()> {
    let token = std::env::var("ROTOR_TOKEN")
        .context("--server needs an API token in ROTOR_TOKEN (make one with `rotor token new`)")?;
    let client = rotor_daemon::Client::new(server, &token)?;
    match command {
        Command::Status(_) => {
            let rows = client.status().await?;
            let table = rows
                .iter()
                .map(|r| {
                    let s = |k: &str| r[k].as_str().unwrap_or("-").to_owned();
                    vec![
                        s("name"),
                        s("kind"),
                        s("tier"),
                        s("automation"),
                        s("last_rotated"),
                        s("next_due"),
                        s("label"),
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
                    "NEXT DUE",
                    "STATE",
                ],
                table,
                &rows,
            )?;
            // The daemon's notes, as `rotor status` prints them: reason and hint.
            if format == Format::Table {
                for r in &rows {
                    let notes: Vec<&str> = ["reason", "hint"]
                        .iter()
                        .filter_map(|k| r[*k].as_str())
                        .collect();
                    if !notes.is_empty() {
                        println!(
                            "{}: {}",
                            r["name"].as_str().unwrap_or("-"),
                            notes.join("; ")
                        );
                    }
                }
            }
            Ok(())
        }
        Command::Rotate(a) => {
            anyhow::ensure!(
                !a.names.is_empty() && !a.due && !a.all && !a.dry_run,
                "with --server, name the secrets to rotate"
            );
            for name in &a.names {
                let r = client
                    .rotate(name, a.emergency, a.reason.as_deref(), a.confirm)
                    .await?;
                if format == Format::Json {
                    println!("{}", serde_json::to_string_pretty(&r)?);
                } else {
                    println!("{name}: {r}");
                }
            }
            Ok(())
        }
        Command::Get(a) => {
            let v = client.get_value(&a.name, a.stage).await?;
            if a.reveal {
                let mut out = std::io::stdout().lock();
                out.write_all(v.value.expose())?;
                out.write_all(b"\n")?;
                Ok(())
            } else {
                let row = vec![v.version.clone(), a.stage.to_string()];
                output::print(
                    format,
                    &["VERSION", "STAGE"],
                    vec![row],
                    &serde_json::json!({ "version": v.version, "stage": a.stage }),
                )
            }
        }
        _ => anyhow::bail!("with --server only status, rotate and get are available"),
    }
}
