//! The emergency runbook (`rotor rotate --emergency KIND|NAME|all`) and drills (`rotor drill`),
//! each ending in the seed's post-rotation checklist, written as a report.
//!
//! Emergency, in order:
//! 1. notify first (event `emergency`), then audit `emergency.begin` with the reason;
//! 2. read the error rate (`[emergency] error_rate_url`) before anything changes;
//! 3. rotate each target with `emergency: true` (grace 0: the previous value is retired, and
//!    its sessions evicted, right after finish), **admin credentials before the secrets that
//!    use them**. Why admins first: a leaked admin credential can reset or read everything it
//!    administers, so rotating a dependant while the old admin still works shuts nobody out;
//!    the dependants' rotations then run with the new admin, which has just passed its own
//!    test (so they prove it works); and if the admin rotation fails, its current value is
//!    unchanged and the dependants still rotate with it;
//! 4. run each rotated secret's `on_emergency` hook (`sh -c`, with a timeout; its output is
//!    captured and dropped, since it could contain values; only the exit status is kept);
//! 5. check: new value works (the rotation's test step passed), old value rejected (retire
//!    proved it, for kinds with a target; N/A for the others), hooks succeeded, health URLs
//!    answer 200, error rate after ≤ before;
//! 6. write the report as Markdown and JSON in `[emergency] report_dir` (0600, atomically),
//!    and audit `emergency.report`.
//!
//! A drill rotates every automatic secret normally (normal grace) and runs the same checklist.
//! Reports never contain a value: names, version ids, exit statuses, HTTP statuses, numbers.

mod checks;
mod fleet;
mod report;

use checks::{error_rate, summarise, summarise_health};
use fleet::rotate_all;
pub use report::{
    Check, CheckStatus, ChecklistItem, HealthCheck, Report, ReportFiles, SecretReport, markdown,
};
use report::{result_line, write_report};

use jiff::Timestamp;
use rotor_core::config::KindSettings;
use rotor_core::config::service::NotifyEvent;
use rotor_core::store::Change;
use rotor_core::{AuditEvent, Automation, Kind, SecretName, SecretSpec};
use rotor_engine::Engine;

use crate::notify::{Notification, Notifier};
use crate::{DaemonError, Result};

/// Knobs of an emergency or a drill.
#[derive(Debug, Clone)]
pub struct EmergencyOptions {
    /// Also rotate secrets marked `requires_confirmation` (otherwise they are skipped and the
    /// report says so).
    pub confirm: bool,
    /// How long an `on_emergency` hook may run.
    pub hook_timeout: std::time::Duration,
    /// Per health / error-rate request.
    pub http_timeout: std::time::Duration,
    /// End live sessions of the old credentials (`--no-evict` turns it off).
    pub evict: bool,
}

impl Default for EmergencyOptions {
    fn default() -> Self {
        Self {
            confirm: false,
            hook_timeout: std::time::Duration::from_secs(60),
            http_timeout: std::time::Duration::from_secs(10),
            evict: true,
        }
    }
}

const MANUAL_STEPS: [&str; 3] = [
    "Update documentation if needed",
    "Create an incident ticket if triggered by a breach",
    "Notify affected parties if user data was involved",
];

/// The secrets `target` names: `all`, a kind (`jwt`, `postgres`, `redis`, `random`,
/// `command`, `manual`), or a secret name; admins ordered before the secrets that use them.
pub fn targets<'a>(engine: &'a Engine, target: &str) -> Result<Vec<&'a SecretSpec>> {
    let config = engine.config();
    let chosen: Vec<&SecretSpec> = if target == "all" {
        config.secrets.iter().collect()
    } else if let Some(kind) = Kind::parse(target) {
        config.secrets.iter().filter(|s| s.kind == kind).collect()
    } else {
        vec![engine.spec(target)?]
    };
    if chosen.is_empty() {
        return Err(DaemonError::Invalid(format!(
            "no secret matches {target:?}: name a secret, a kind (jwt, postgres, redis, random, command) or `all`"
        )));
    }
    Ok(admins_first(&config.secrets, chosen))
}

fn admin_of(spec: &SecretSpec) -> Option<&SecretName> {
    match &spec.settings {
        KindSettings::Postgres(p) => p.admin.as_ref(),
        KindSettings::Redis(r) => r.admin.as_ref(),
        _ => None,
    }
}

/// How many levels of secrets `name` administers (0: none).
fn depth(all: &[SecretSpec], name: &SecretName, seen: usize) -> usize {
    if seen > all.len() {
        return 0; // a cycle (the parser should refuse it): stop
    }
    all.iter()
        .filter(|s| admin_of(s) == Some(name))
        .map(|s| 1 + depth(all, &s.name, seen + 1))
        .max()
        .unwrap_or(0)
}

/// Stable sort by "admin depth": a secret that administers others (or administers an admin)
/// comes before them.
fn admins_first<'a>(all: &'a [SecretSpec], mut chosen: Vec<&'a SecretSpec>) -> Vec<&'a SecretSpec> {
    chosen.sort_by_key(|s| std::cmp::Reverse(depth(all, &s.name, 0)));
    chosen
}

/// `rotor rotate --emergency TARGET`: see the module docs for the order of things.
pub async fn emergency(
    engine: &Engine,
    notifier: &Notifier,
    target: &str,
    reason: &str,
    opts: &EmergencyOptions,
) -> Result<Report> {
    if reason.trim().is_empty() {
        return Err(DaemonError::Invalid(
            "an emergency rotation needs a reason (it goes into the audit log and the report)"
                .into(),
        ));
    }
    check_report_dir(engine)?;
    let specs = targets(engine, target)?;
    // Announce what will be rotated, and name what will not (and why).
    let mut rotating = Vec::new();
    let mut skipping = Vec::new();
    for s in &specs {
        match skip_reason(s, opts) {
            None => rotating.push(s.name.as_str()),
            Some(why) => skipping.push(format!("{} ({why})", s.name)),
        }
    }
    let mut message = format!(
        "{target}: {reason} (rotating {}",
        if rotating.is_empty() {
            "nothing".to_owned()
        } else {
            rotating.join(", ")
        }
    );
    if !skipping.is_empty() {
        message.push_str(&format!("; not rotating {}", skipping.join(", ")));
    }
    message.push(')');
    notifier
        .send_first(
            &Notification::new(
                NotifyEvent::Emergency,
                (specs.len() == 1).then(|| &specs[0].name),
                None,
                message,
                Timestamp::now(),
            ),
            crate::api::EMERGENCY_NOTIFY_WAIT,
        )
        .await;
    run(engine, Mode::Emergency, target, reason, specs, opts).await
}

/// Refuses an unsafe `[emergency] report_dir` before anything is notified or rotated: a
/// report that cannot be written safely must not be found missing after the emergency.
fn check_report_dir(engine: &Engine) -> Result<()> {
    rotor_deliver::private_dir::check(&engine.config().emergency.report_dir)
        .map_err(|why| DaemonError::Invalid(format!("[emergency] report_dir: {why}")))
}

/// Why the runbook will not rotate `spec`, if it will not.
fn skip_reason(spec: &SecretSpec, opts: &EmergencyOptions) -> Option<String> {
    if spec.kind == Kind::Manual {
        Some(format!("manual: needs `rotor put {}`", spec.name))
    } else if spec.policy.requires_confirmation && !opts.confirm {
        Some("requires confirmation: run again with --confirm".into())
    } else {
        None
    }
}

/// `rotor drill`: rotates every automatic secret normally and writes the checklist report.
pub async fn drill(engine: &Engine, reason: &str, opts: &EmergencyOptions) -> Result<Report> {
    check_report_dir(engine)?;
    let specs: Vec<&SecretSpec> = engine
        .config()
        .secrets
        .iter()
        .filter(|s| s.policy.automation == Automation::Automatic && s.kind != Kind::Manual)
        .collect();
    let specs = admins_first(&engine.config().secrets, specs);
    let reason = if reason.trim().is_empty() {
        "scheduled rotation drill"
    } else {
        reason
    };
    run(engine, Mode::Drill, "automatic", reason, specs, opts).await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Emergency,
    Drill,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Emergency => "emergency",
            Mode::Drill => "drill",
        }
    }
}

async fn run(
    engine: &Engine,
    mode: Mode,
    target: &str,
    reason: &str,
    specs: Vec<&SecretSpec>,
    opts: &EmergencyOptions,
) -> Result<Report> {
    let config = engine.config();
    let started = Timestamp::now();
    audit(engine, &format!("{}.begin", mode.as_str()), reason, None).await;
    let http = reqwest::Client::builder()
        .timeout(opts.http_timeout)
        .build()
        .map_err(|e| DaemonError::Http(e.without_url().to_string()))?;
    let rate_before = match &config.emergency.error_rate_url {
        Some(url) => Some(error_rate(&http, url).await),
        None => None,
    };

    let secrets = rotate_all(engine, mode, specs, reason, opts).await;

    let mut health = Vec::new();
    for url in &config.emergency.health_urls {
        let check = match http.get(url).send().await {
            Ok(r) if r.status() == reqwest::StatusCode::OK => Check::new(CheckStatus::Pass, "200"),
            Ok(r) => Check::new(CheckStatus::Fail, format!("answered {}", r.status())),
            Err(e) => Check::new(CheckStatus::Fail, e.without_url().to_string()),
        };
        health.push(HealthCheck {
            url: crate::notify::host_and_path(url),
            check,
        });
    }
    let rate_after = match &config.emergency.error_rate_url {
        Some(url) => Some(error_rate(&http, url).await),
        None => None,
    };
    let rate_check = match (&rate_before, &rate_after) {
        (None, _) | (_, None) => {
            Check::new(CheckStatus::NotApplicable, "no error_rate_url configured")
        }
        (Some(Ok(b)), Some(Ok(a))) if a <= b => {
            Check::new(CheckStatus::Pass, format!("before {b}, after {a}"))
        }
        (Some(Ok(b)), Some(Ok(a))) => Check::new(
            CheckStatus::Fail,
            format!("the error rate rose: before {b}, after {a}"),
        ),
        (Some(Err(e)), _) | (_, Some(Err(e))) => Check::new(
            CheckStatus::Fail,
            format!("cannot read the error rate: {e}"),
        ),
    };

    let checklist = vec![
        summarise(
            "New value works",
            secrets.iter().map(|s| (&s.secret, &s.new_works)),
        ),
        summarise(
            "Old value rejected",
            secrets.iter().map(|s| (&s.secret, &s.old_rejected)),
        ),
        summarise(
            "Hooks succeeded",
            secrets.iter().map(|s| (&s.secret, &s.hook)),
        ),
        summarise_health(&health),
        ChecklistItem {
            item: "Error rate did not rise".into(),
            check: rate_check,
        },
    ];
    let ok = checklist.iter().all(|c| {
        matches!(
            c.check.status,
            CheckStatus::Pass | CheckStatus::NotApplicable | CheckStatus::Pending
        )
    });
    let complete = ok
        && checklist
            .iter()
            .all(|c| c.check.status != CheckStatus::Pending);
    let mut report = Report {
        kind: mode.as_str().into(),
        target: target.into(),
        reason: reason.into(),
        actor: engine.actor().into(),
        started,
        finished: Timestamp::now(),
        ok,
        complete,
        secrets,
        checklist,
        health,
        error_rate_before: rate_before.and_then(|r| r.ok()),
        error_rate_after: rate_after.and_then(|r| r.ok()),
        manual_steps: MANUAL_STEPS.iter().map(|s| (*s).to_owned()).collect(),
        files: None,
    };
    let files = write_report(&config.emergency.report_dir, &report)?;
    audit(
        engine,
        &format!("{}.report", mode.as_str()),
        &format!(
            "{reason}; report {} ({})",
            files.markdown.display(),
            result_line(&report)
        ),
        (!report.ok).then_some("some checks failed"),
    )
    .await;
    report.files = Some(files);
    Ok(report)
}

async fn audit(engine: &Engine, action: &str, reason: &str, failed: Option<&str>) {
    let mut ev = AuditEvent::new(engine.actor().to_owned(), action).reason(Some(reason));
    if let Some(f) = failed {
        ev = ev.failed(f);
    }
    if let Err(e) = engine.store().apply(Change::new().audit(ev)).await {
        tracing::error!(error = %e, action, "cannot audit");
    }
}
