//! The checklist report of an emergency or a drill: what it holds, its verdict, Markdown,
//! and the files (`{kind}-{time}-{rand}.md` and `.json`, 0600, written atomically).

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use rotor_core::{Kind, SecretName};
use rotor_engine::Evicted;
use serde::Serialize;

use crate::{DaemonError, Result};

/// The result of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckStatus {
    Pass,
    Fail,
    /// Does not apply (a kind without a target, no URL configured).
    NotApplicable,
    /// Not done (the rotation failed, or the secret needs confirmation).
    Skipped,
    /// Not provable yet: the previous value is in grace until the time the detail names;
    /// the retire then proves it (its `rotation.retire` audit record is the proof).
    Pending,
}

impl CheckStatus {
    fn mark(self) -> &'static str {
        match self {
            CheckStatus::Pass => "[x]",
            CheckStatus::NotApplicable => "[x] (n/a)",
            CheckStatus::Fail | CheckStatus::Skipped => "[ ]",
            CheckStatus::Pending => "[ ] (pending)",
        }
    }
    fn word(self) -> &'static str {
        match self {
            CheckStatus::Pass => "pass",
            CheckStatus::Fail => "FAIL",
            CheckStatus::NotApplicable => "n/a",
            CheckStatus::Skipped => "skipped",
            CheckStatus::Pending => "pending",
        }
    }
}

/// A check and what it found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub status: CheckStatus,
    pub detail: String,
}

impl Check {
    pub(super) fn new(status: CheckStatus, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
        }
    }
}

/// One secret's part of the checklist.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecretReport {
    pub secret: SecretName,
    pub kind: Kind,
    pub rotation: Option<String>,
    pub version: Option<String>,
    /// The rotation's outcome, or its error.
    pub outcome: String,
    pub new_works: Check,
    pub old_rejected: Check,
    /// Sessions of the old credentials an emergency ended, and how many survived (read back
    /// from the target); absent when nothing was evicted (a drill, `--no-evict`, no target).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions: Option<Evicted>,
    pub hook: Check,
}

/// A health URL and its answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthCheck {
    pub url: String,
    pub check: Check,
}

/// Where the report was written.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportFiles {
    pub markdown: PathBuf,
    pub json: PathBuf,
}

/// The post-rotation checklist report of an emergency or a drill.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// `emergency` or `drill`.
    pub kind: String,
    pub target: String,
    pub reason: String,
    pub actor: String,
    pub started: Timestamp,
    pub finished: Timestamp,
    /// No check failed and none was skipped.
    pub ok: bool,
    /// Every check passed or does not apply: nothing is pending (an old value in grace).
    pub complete: bool,
    pub secrets: Vec<SecretReport>,
    /// The checklist items, summarised: new value works, old value rejected, hooks
    /// succeeded, services healthy, error rate did not rise.
    pub checklist: Vec<ChecklistItem>,
    pub health: Vec<HealthCheck>,
    pub error_rate_before: Option<f64>,
    pub error_rate_after: Option<f64>,
    /// The seed's checklist items only a person can do.
    pub manual_steps: Vec<String>,
    pub files: Option<ReportFiles>,
}

/// One line of the checklist.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChecklistItem {
    pub item: String,
    pub check: Check,
}

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

/// The one atomic write (rotor-deliver's `write_atomic`: 0600, temporary file, fsync,
/// rename, directory fsync).
fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    match rotor_deliver::write_atomic(path, bytes) {
        Ok(_) => Ok(()),
        Err(rotor_deliver::DeliverError::Io { source, .. }) => Err(DaemonError::io(
            format!("cannot write {}", path.display()),
            source,
        )),
        Err(e) => Err(DaemonError::Invalid(format!(
            "cannot write {}: {e}",
            path.display()
        ))),
    }
}
