//! The checklist report of an emergency or a drill: its verdict, Markdown, and the files
//! (`{kind}-{time}-{rand}.md` and `.json`, 0600, written atomically).

use std::io::Write as _;
use std::path::Path;

use super::{CheckStatus, Report, ReportFiles};
use crate::{DaemonError, Result};

/// The one-line verdict: all passed, passed so far (old values in grace), or action needed.
pub(super) fn result_line(r: &Report) -> String {
    if !r.ok {
        "**ACTION NEEDED**".into()
    } else if !r.complete {
        let until = r
            .secrets
            .iter()
            .filter(|s| s.old_rejected.status == CheckStatus::Pending)
            .count();
        format!(
            "checks passed so far; the old values of {until} secret(s) stay valid in grace (see Old value rejected): `rotor retire --due` retires them when it ends, with the proof on the audit record"
        )
    } else {
        "all checks passed".into()
    }
}

/// The report as Markdown.
pub fn markdown(r: &Report) -> String {
    let title = match r.kind.as_str() {
        "drill" => "Rotation drill report".to_owned(),
        _ => format!("Emergency rotation report: {}", r.target),
    };
    let mut m = format!("# {title}\n\n");
    m.push_str(&format!(
        "- Reason: {}\n- Actor: {}\n- Started: {}\n- Finished: {}\n- Result: {}\n\n",
        r.reason,
        r.actor,
        r.started,
        r.finished,
        result_line(r)
    ));
    m.push_str("## Post-rotation checklist\n\n");
    for c in &r.checklist {
        m.push_str(&format!(
            "- {} {}: {}\n",
            c.check.status.mark(),
            c.item,
            c.check.detail
        ));
    }
    for s in &r.manual_steps {
        m.push_str(&format!("- [ ] {s} (manual)\n"));
    }
    m.push_str("\n## Secrets\n\n| secret | kind | outcome | new works | old rejected | hook |\n|---|---|---|---|---|---|\n");
    for s in &r.secrets {
        m.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            s.secret,
            s.kind,
            s.outcome.replace('|', "/"),
            s.new_works.status.word(),
            s.old_rejected.status.word(),
            s.hook.status.word()
        ));
    }
    if !r.health.is_empty() {
        m.push_str("\n## Health checks\n\n");
        for h in &r.health {
            m.push_str(&format!(
                "- {} {}: {}\n",
                h.check.status.mark(),
                h.url,
                h.check.detail
            ));
        }
    }
    if let (Some(b), Some(a)) = (r.error_rate_before, r.error_rate_after) {
        m.push_str(&format!("\n## Error rate\n\nbefore: {b}, after: {a}\n"));
    }
    m
}

/// Writes `{kind}-{time}-{rand}.md` and `.json` in `dir` (created 0700), each 0600 and
/// atomically (a temp file in the same directory, then renamed).
pub(super) fn write_report(dir: &Path, r: &Report) -> Result<ReportFiles> {
    {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| DaemonError::io(format!("cannot create {}", dir.display()), e))?;
    }
    let mut rand = [0u8; 4];
    getrandom::fill(&mut rand)
        .map_err(|e| DaemonError::Invalid(format!("the OS random generator failed: {e}")))?;
    let stem = format!(
        "{}-{}-{}",
        r.kind,
        r.started.strftime("%Y%m%dT%H%M%SZ"),
        hex::encode(rand)
    );
    let files = ReportFiles {
        markdown: dir.join(format!("{stem}.md")),
        json: dir.join(format!("{stem}.json")),
    };
    let mut with_files = r.clone();
    with_files.files = Some(files.clone());
    let json = serde_json::to_vec_pretty(&with_files)
        .map_err(|e| DaemonError::Invalid(format!("cannot serialise the report: {e}")))?;
    atomic_write(&files.json, &json)?;
    atomic_write(&files.markdown, markdown(&with_files).as_bytes())?;
    Ok(files)
}

fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let err = |e| DaemonError::io(format!("cannot write {}", path.display()), e);
    // tempfile creates the file 0600.
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    tmp.write_all(bytes).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}
