//! `put`, `get`, `history`: one secret's values and versions.

use std::io::Read;
use std::path::Path;

use rotor_core::SecretValue;
use rotor_core::config::KindSettings;

use crate::cli::{Format, GetArgs, PutArgs};
use crate::context::Context;
use crate::output::{self, time};

/// Values never come as arguments (they would show in `ps` and shell history): stdin only.
fn read_stdin_value() -> anyhow::Result<SecretValue> {
    let mut buf = Vec::new();
    std::io::stdin().lock().read_to_end(&mut buf)?;
    // One trailing newline is the shell's, not the value's.
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    }
    Ok(SecretValue::new(buf))
}

pub async fn put(config_path: &Path, format: Format, args: &PutArgs) -> anyhow::Result<()> {
    let ctx = Context::open(config_path).await?;
    let spec = ctx.engine.spec(&args.name)?;
    let value = if args.generate {
        match &spec.settings {
            KindSettings::Random(r) => rotor_rotate::random::generate(r)?,
            _ => anyhow::bail!(
                "--generate only works for random secrets; {} is of kind {} (pipe the value on stdin)",
                spec.name,
                spec.kind
            ),
        }
    } else {
        read_stdin_value()?
    };
    let metadata = rotor_rotate::value_check::check(spec, &value)?;
    let id = ctx
        .engine
        .put(&args.name, value, metadata, args.reason.as_deref())
        .await?;
    if format == Format::Json {
        let body = serde_json::json!({ "secret": args.name, "version": id, "stage": "current" });
        println!("{}", serde_json::to_string_pretty(&body)?);
    } else {
        println!("{}: stored version {} as current", args.name, id.short());
    }
    for owed in ctx.engine.owed_of(&spec.name).await? {
        if let Some(v) = &owed.pending_version {
            eprintln!(
                "note: {}: the target may still accept pending version {} of failed rotation {} (its rollback is owed; `rotor resume {}` retries it, `rotor serve` does so by itself)",
                args.name,
                v.short(),
                owed.id.short(),
                args.name
            );
        }
    }
    let notify = crate::notify::CliNotifier::new(&ctx);
    notify.put(&spec.name, &id);
    notify.finish().await;
    Ok(())
}

pub async fn get(config_path: &Path, format: Format, args: &GetArgs) -> anyhow::Result<()> {
    let ctx = Context::open(config_path).await?;
    let spec = ctx.engine.spec(&args.name)?;
    let Some(v) = ctx.store().read_stage(&spec.name, args.stage).await? else {
        anyhow::bail!("{}: no version holds stage {}", args.name, args.stage);
    };
    if args.reveal {
        use std::io::Write;
        // On the audit record before the value is printed.
        ctx.engine
            .record_read(
                &spec.name,
                &v.meta.id,
                args.stage,
                rotor_engine::ReadChannel::Cli,
            )
            .await?;
        let mut out = std::io::stdout().lock();
        out.write_all(v.value.expose())?;
        out.write_all(b"\n")?;
        return Ok(());
    }
    let row = vec![
        v.meta.id.to_string(),
        args.stage.to_string(),
        time(Some(v.meta.created_at)),
        v.meta.created_by.clone(),
        v.meta.metadata.to_string(),
    ];
    output::print(
        format,
        &["VERSION", "STAGE", "CREATED", "BY", "METADATA"],
        vec![row],
        &v.meta,
    )
}

pub async fn history(config_path: &Path, format: Format, name: &str) -> anyhow::Result<()> {
    let ctx = Context::open(config_path).await?;
    let spec = ctx.engine.spec(name)?;
    let versions = ctx.store().versions(&spec.name).await?;
    let rotations = ctx.store().rotations(Some(&spec.name), 100).await?;
    if format == Format::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "versions": versions, "rotations": rotations })
            )?
        );
        return Ok(());
    }
    println!("versions of {name} (newest first)");
    let rows = versions
        .iter()
        .map(|v| {
            vec![
                v.id.to_string(),
                v.stages
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                time(Some(v.created_at)),
                v.created_by.clone(),
                v.metadata.to_string(),
            ]
        })
        .collect();
    output::print(
        format,
        &["VERSION", "STAGES", "CREATED", "BY", "METADATA"],
        rows,
        &versions,
    )?;
    println!("\nrotations of {name} (newest first)");
    let rows = rotations
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                r.trigger.as_str().to_owned(),
                r.status.to_string(),
                r.step.to_string(),
                time(Some(r.started_at)),
                r.actor.clone(),
                r.reason.clone().unwrap_or_default(),
                r.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    output::print(
        format,
        &[
            "ROTATION", "TRIGGER", "STATUS", "STEP", "STARTED", "BY", "REASON", "ERROR",
        ],
        rows,
        &rotations,
    )
}

pub async fn render(config_path: &Path, format: Format) -> anyhow::Result<()> {
    let ctx = Context::open(config_path).await?;
    if ctx.config().render.is_empty() {
        if format == Format::Json {
            println!("[]");
        } else {
            println!("no [[render]] targets in the config");
        }
        return Ok(());
    }
    let renderer = rotor_deliver::Renderer::new(
        std::sync::Arc::new(ctx.config().clone()),
        ctx.store().clone(),
    );
    let (results, errors) = match renderer.render_all().await {
        Ok(r) => (r, Vec::new()),
        Err(rotor_deliver::DeliverError::Incomplete { errors, results }) => (results, errors),
        Err(e) => return Err(e.into()),
    };
    let rows = results
        .iter()
        .map(|r| {
            vec![
                r.target.clone(),
                if r.changed { "written" } else { "unchanged" }.to_owned(),
                match &r.on_change {
                    rotor_deliver::OnChangeOutcome::NotConfigured => "-".to_owned(),
                    rotor_deliver::OnChangeOutcome::NotRun => "not run (unchanged)".to_owned(),
                    rotor_deliver::OnChangeOutcome::Succeeded => "ok".to_owned(),
                    rotor_deliver::OnChangeOutcome::Failed(m) => format!("FAILED: {m}"),
                },
            ]
        })
        .collect();
    let json: Vec<_> = results
        .iter()
        .map(|r| serde_json::json!({ "path": r.path, "target": r.target, "changed": r.changed, "ok": r.is_ok() }))
        .collect();
    output::print(format, &["TARGET", "FILE", "ON_CHANGE"], rows, &json)?;
    for e in &errors {
        eprintln!("error: {e}");
    }
    if !errors.is_empty() || results.iter().any(|r| !r.is_ok()) {
        return Err(crate::Exit(1).into());
    }
    Ok(())
}
