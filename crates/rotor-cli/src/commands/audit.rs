//! `audit verify`, `audit tail`.

use std::path::Path;

use crate::Exit;
use crate::cli::{AuditCommand, Format};
use crate::context::Context;
use crate::output::{self, time};

pub async fn run(config_path: &Path, format: Format, cmd: AuditCommand) -> anyhow::Result<()> {
    let ctx = Context::open(config_path).await?;
    match cmd {
        AuditCommand::Verify => {
            let records = ctx.store().audit_all().await?;
            match rotor_core::audit::verify_chain(&records) {
                Ok(n) => {
                    if format == Format::Json {
                        println!("{}", serde_json::json!({ "intact": true, "records": n }));
                    } else {
                        println!("audit log intact: {n} records, chain verified");
                    }
                    Ok(())
                }
                Err(e) => {
                    if format == Format::Json {
                        println!(
                            "{}",
                            serde_json::json!({ "intact": false, "seq": e.seq, "position": e.position, "why": e.why })
                        );
                    } else {
                        eprintln!("audit log BROKEN: {e}");
                    }
                    Err(Exit(1).into())
                }
            }
        }
        AuditCommand::Tail { n } => {
            let records = ctx.store().audit_tail(n).await?;
            let rows = records
                .iter()
                .map(|r| {
                    vec![
                        r.seq.to_string(),
                        time(Some(r.time)),
                        r.event.actor.clone(),
                        r.event.action.clone(),
                        r.event
                            .secret
                            .as_ref()
                            .map(ToString::to_string)
                            .unwrap_or_default(),
                        r.event
                            .versions
                            .iter()
                            .map(|v| v.short().to_owned())
                            .collect::<Vec<_>>()
                            .join(","),
                        r.event.outcome.clone(),
                        r.event.reason.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            output::print(
                format,
                &[
                    "SEQ", "TIME", "ACTOR", "ACTION", "SECRET", "VERSIONS", "OUTCOME", "REASON",
                ],
                rows,
                &records,
            )
        }
    }
}
