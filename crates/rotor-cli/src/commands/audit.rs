//! `audit verify`, `audit tail`.

use std::path::Path;

use crate::Exit;
use crate::cli::{AuditCommand, Format};
use crate::context::Context;
use crate::output::{self, time};
use rotor_core::audit::{Head, Verified, check_head};

/// The chain and the MACs (checked by the store, which holds the key), then the anchor file,
/// then `expected`. `Ok((records, notes))` or the failing `(seq, why)`.
fn verify(
    ctx: &Context,
    verified: &Verified,
    expected: Option<&Head>,
) -> Result<(u64, Vec<String>), (u64, String)> {
    let records = verified.records.as_slice();
    let keyed = verified
        .outcome
        .as_ref()
        .map_err(|e| (e.seq, e.to_string()))?;
    let n = keyed.records;
    let mut notes = Vec::new();
    if let Some(from) = keyed.keyed_from.filter(|&f| f > 1) {
        notes.push(format!(
            "records #1 to #{} carry no MAC under this store's key (written before MACs, or under an earlier master key): they are checked by hash and bound by the chain to #{from}, whose MAC verifies",
            from - 1
        ));
    }
    let mut heads = Vec::new();
    match crate::anchor::key_for(&ctx.config().store) {
        Some(key) => {
            let path = crate::anchor::path_for(&ctx.config().source);
            match crate::anchor::read(&path, &key) {
                Ok(Some(h)) => heads.push(("the anchor file", h)),
                Ok(None) => notes.push(format!(
                    "no anchor at {} yet (written by the next change, or `rotor audit anchor`): cut-off records are not detected without one",
                    path.display()
                )),
                Err(e) => return Err((0, e)),
            }
        }
        None => notes.push(
            "this store keeps no anchor (passphrase or AWS store): pass --expect-head to detect cut-off records".into(),
        ),
    }
    if let Some(h) = expected {
        heads.push(("--expect-head", h.clone()));
    }
    for (what, head) in heads {
        match check_head(records, &head) {
            Ok(0) => {}
            // Records past the head: each is authenticated above (by its MAC, or by the chain
            // to a later record whose MAC verified), so the key holder wrote them. For the
            // anchor file that is a rotor stopped (killed) between committing and anchoring,
            // or another host sharing the store; the next change anchors them. A head seen
            // earlier (metrics, a past verify) is simply behind by the records since. Only a
            // head the log no longer reaches (cut off, rebuilt) is a break.
            Ok(after) if what == "the anchor file" => notes.push(format!(
                "{after} record(s) after the head the anchor file records (#{}), their MACs verified: written by a rotor that stopped before it anchored them, or by another host sharing the store (the next change anchors them, or `rotor audit anchor`)",
                head.seq
            )),
            Ok(_) => {}
            Err(e) => return Err((head.seq, format!("{e} (checked against {what})"))),
        }
    }
    Ok((n, notes))
}

pub async fn run(config_path: &Path, format: Format, cmd: AuditCommand) -> anyhow::Result<()> {
    let ctx = Context::open(config_path).await?;
    match cmd {
        AuditCommand::Verify { expect_head } => {
            let expected = expect_head
                .as_deref()
                .map(Head::parse)
                .transpose()
                .map_err(|e| anyhow::anyhow!("--expect-head: {e}"))?;
            let verified = ctx.store().audit_verify().await?;
            let report = verify(&ctx, &verified, expected.as_ref());
            match report {
                Ok((n, notes)) => {
                    let head = Head::of(&verified.records);
                    let keyed_from = verified.outcome.as_ref().ok().and_then(|k| k.keyed_from);
                    if format == Format::Json {
                        println!(
                            "{}",
                            serde_json::json!({ "intact": true, "records": n, "keyed_from": keyed_from, "head": head.as_ref().map(ToString::to_string), "notes": notes })
                        );
                    } else {
                        for note in &notes {
                            eprintln!("note: {note}");
                        }
                        match head {
                            Some(h) => {
                                println!(
                                    "audit log intact: {n} records, chain and MACs verified, head {h}"
                                )
                            }
                            None => {
                                println!("audit log intact: {n} records, chain and MACs verified")
                            }
                        }
                    }
                    Ok(())
                }
                Err((seq, why)) => {
                    if format == Format::Json {
                        println!(
                            "{}",
                            serde_json::json!({ "intact": false, "seq": seq, "why": why })
                        );
                    } else {
                        eprintln!("audit log BROKEN: {why}");
                    }
                    Err(Exit(1).into())
                }
            }
        }
        AuditCommand::Anchor => {
            let head = crate::anchor::anchor_now(ctx.store(), ctx.config()).await?;
            println!(
                "anchored head {head} in {}",
                crate::anchor::path_for(&ctx.config().source).display()
            );
            Ok(())
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
