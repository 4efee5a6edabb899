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

mod report;

use std::path::PathBuf;
use std::sync::Arc;

pub use report::markdown;
use report::{result_line, write_report};

use jiff::Timestamp;
use rotor_core::config::KindSettings;
use rotor_core::config::service::NotifyEvent;
use rotor_core::store::Change;
use rotor_core::{AuditEvent, Automation, Kind, SecretName, SecretSpec, Trigger};
use rotor_engine::{Engine, Evicted, Outcome, RotateOptions};
use serde::Serialize;

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
    fn new(status: CheckStatus, detail: impl Into<String>) -> Self {
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

/// At most this many rotations of one emergency or drill run at once.
const MAX_CONCURRENT: usize = 32;
/// At most this many of them talk to one target (a PostgreSQL or Redis server, by URL) at
/// once: each holds an admin connection and opens a few short logins (test, proofs), so a
/// target sees a handful of extra connections, never a burst of hundreds.
const MAX_PER_TARGET: usize = 8;

/// Rotates `specs` (admins first) with bounded concurrency: one admin level at a time (a
/// dependant rotates only after its admin's rotation ended, so it runs with the new admin),
/// within a level up to [`MAX_CONCURRENT`] rotations, [`MAX_PER_TARGET`] per target. The
/// reports come back in `specs`' order.
///
/// A rotation takes its target's permit before one of the [`MAX_CONCURRENT`] slots: a
/// rotation waiting for a busy target never holds a slot, so the 8 rotations a PostgreSQL
/// server allows run alongside those of other targets and of the kinds with no target
/// (random, JWT), instead of the whole fleet queueing behind one server.
async fn rotate_all(
    engine: &Engine,
    mode: Mode,
    specs: Vec<&SecretSpec>,
    reason: &str,
    opts: &EmergencyOptions,
) -> Vec<SecretReport> {
    let all = &engine.config().secrets;
    let mut targets: std::collections::HashMap<&str, Arc<tokio::sync::Semaphore>> =
        std::collections::HashMap::new();
    let slots = tokio::sync::Semaphore::new(MAX_CONCURRENT);
    let mut out = Vec::with_capacity(specs.len());
    let mut rest = specs.as_slice();
    while let Some(first) = rest.first() {
        let level = depth(all, &first.name, 0);
        let n = rest
            .iter()
            .take_while(|s| depth(all, &s.name, 0) == level)
            .count();
        let (now, later) = rest.split_at(n);
        rest = later;
        let jobs: Vec<_> = now
            .iter()
            .map(|spec| {
                let gate = target_of(spec).map(|t| {
                    targets
                        .entry(t)
                        .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(MAX_PER_TARGET)))
                        .clone()
                });
                let slots = &slots;
                async move {
                    // Neither semaphore is ever closed, so `acquire` cannot fail; a failure
                    // would only lift the bound, never stop the emergency.
                    let _target = match &gate {
                        Some(g) => g.acquire().await.ok(),
                        None => None,
                    };
                    let _slot = slots.acquire().await.ok();
                    rotate_one(engine, mode, spec, reason, opts).await
                }
            })
            .collect();
        out.extend(futures_util::future::join_all(jobs).await);
    }
    out
}

/// The external target a secret's rotation talks to, if any.
fn target_of(spec: &SecretSpec) -> Option<&str> {
    match &spec.settings {
        KindSettings::Postgres(p) => Some(p.url.as_str()),
        KindSettings::Redis(r) => Some(r.url.as_str()),
        _ => None,
    }
}

async fn rotate_one(
    engine: &Engine,
    mode: Mode,
    spec: &SecretSpec,
    reason: &str,
    opts: &EmergencyOptions,
) -> SecretReport {
    let mut r = SecretReport {
        secret: spec.name.clone(),
        kind: spec.kind,
        rotation: None,
        version: None,
        outcome: String::new(),
        new_works: Check::new(CheckStatus::Skipped, "not rotated"),
        old_rejected: Check::new(CheckStatus::Skipped, "not rotated"),
        sessions: None,
        hook: Check::new(CheckStatus::NotApplicable, "no on_emergency hook"),
    };
    if spec.kind == Kind::Manual {
        r.outcome = "not rotated: manual kind, rotor cannot make its value".into();
        r.old_rejected = Check::new(
            CheckStatus::Skipped,
            "not rotated: the old value stays valid until an operator replaces it",
        );
        r.new_works = Check::new(
            CheckStatus::Fail,
            format!(
                "needs an operator: get a new value from the issuer, then `rotor put {}`",
                spec.name
            ),
        );
        return r;
    }
    if spec.policy.requires_confirmation && !opts.confirm {
        r.outcome = "not rotated: requires confirmation".into();
        r.old_rejected = Check::new(
            CheckStatus::Skipped,
            "not rotated (requires confirmation): the old value stays valid",
        );
        r.new_works = Check::new(
            CheckStatus::Fail,
            format!(
                "not rotated: {} requires confirmation; run again with --confirm",
                spec.name
            ),
        );
        return r;
    }
    let ropts = RotateOptions {
        trigger: match mode {
            Mode::Emergency => Trigger::Emergency,
            Mode::Drill => Trigger::Drill,
        },
        reason: Some(reason.to_owned()),
        emergency: mode == Mode::Emergency,
        evict: opts.evict,
        confirm: opts.confirm,
    };
    let outcome = match engine.rotate(spec.name.as_str(), &ropts).await {
        Ok(o) => o,
        Err(e) => {
            r.outcome = format!("failed: {e}");
            r.new_works = Check::new(CheckStatus::Fail, e.to_string());
            r.old_rejected = Check::new(
                CheckStatus::Skipped,
                "not rotated (the rotation failed): the old value stays current",
            );
            r.hook = Check::new(CheckStatus::Skipped, "not run: the rotation failed");
            return r;
        }
    };
    let has_target = matches!(spec.kind, Kind::Postgres | Kind::Redis | Kind::Command);
    match &outcome {
        Outcome::Completed {
            rotation,
            version,
            retired,
            evicted,
        } => {
            r.rotation = Some(rotation.to_string());
            r.version = version.as_ref().map(ToString::to_string);
            r.outcome = "completed".into();
            if has_sessions(spec.kind) {
                r.sessions = evicted.clone();
            }
            r.new_works = Check::new(
                CheckStatus::Pass,
                "the test step passed; the new version is current",
            );
            r.old_rejected = match (retired, has_target) {
                (Some(v), true) => match evicted.as_ref().filter(|_| has_sessions(spec.kind)) {
                    None => Check::new(
                        CheckStatus::Pass,
                        format!("retire proved version {v} is rejected by the target"),
                    ),
                    Some(Evicted { error: Some(e), .. }) => Check::new(
                        CheckStatus::Fail,
                        format!(
                            "retire proved version {v} is rejected, but ending its sessions failed: {e}"
                        ),
                    ),
                    Some(ev) if ev.surviving > 0 => Check::new(
                        CheckStatus::Fail,
                        format!(
                            "retire proved version {v} is rejected, but {} of {} session(s) of the old credentials are still connected",
                            ev.surviving,
                            ev.ended + ev.surviving
                        ),
                    ),
                    Some(ev) => Check::new(
                        CheckStatus::Pass,
                        format!(
                            "retire proved version {v} is rejected; {} session(s) of the old credentials ended, 0 still connected",
                            ev.ended
                        ),
                    ),
                },
                (Some(v), false) => Check::new(
                    CheckStatus::NotApplicable,
                    format!(
                        "kind {} has no target to prove against; version {v} holds no stage any more",
                        spec.kind
                    ),
                ),
                (None, _) => Check::new(CheckStatus::NotApplicable, "there was no previous value"),
            };
        }
        Outcome::InGrace {
            rotation,
            version,
            retire_after,
        } => {
            r.rotation = Some(rotation.to_string());
            r.version = version.as_ref().map(ToString::to_string);
            r.outcome = format!("in grace until {retire_after}");
            r.new_works = Check::new(
                CheckStatus::Pass,
                "the test step passed; the new version is current",
            );
            r.old_rejected = Check::new(
                CheckStatus::Pending,
                format!(
                    "the previous value stays valid in grace until {retire_after}; `rotor retire --due` (or `rotor serve`) retires it then, and its rotation.retire audit record is the proof"
                ),
            );
        }
        Outcome::Waiting {
            rotation,
            version,
            until,
        } => {
            r.rotation = Some(rotation.to_string());
            r.version = version.as_ref().map(ToString::to_string);
            r.outcome = format!("published, activates at {until}");
            r.new_works = Check::new(
                CheckStatus::Pass,
                format!("the test step passed; it becomes current at {until}"),
            );
            r.old_rejected = Check::new(
                CheckStatus::Pending,
                format!(
                    "the new key activates at {until} (prepublish); `rotor resume` finishes it, then the previous value is in grace"
                ),
            );
        }
    }
    if mode == Mode::Emergency
        && let Some(hook) = &spec.on_emergency
    {
        r.hook = run_hook(hook, &spec.name, opts.hook_timeout).await;
    }
    r
}

/// Kinds whose target holds sessions an emergency ends.
fn has_sessions(kind: Kind) -> bool {
    matches!(kind, Kind::Postgres | Kind::Redis)
}

/// Runs `sh -c hook` through the one child-process runner (`rotor-process`): a cleared
/// environment (PATH, HOME, locale, TZ, TMPDIR and the two `ROTOR_*` names below; never
/// `ROTOR_MASTER_KEY` or a passphrase), its own process group killed on timeout, and output
/// captured with a bound and dropped (it could contain values).
async fn run_hook(hook: &str, secret: &SecretName, timeout: std::time::Duration) -> Check {
    let spec = rotor_process::Spec::new("sh", timeout)
        .args(["-c", hook])
        .env("ROTOR_SECRET", secret.as_str())
        .env("ROTOR_EMERGENCY", "1");
    match rotor_process::run(spec).await {
        Ok(done) if done.status.success() => Check::new(CheckStatus::Pass, "exit 0"),
        Ok(done) => Check::new(
            CheckStatus::Fail,
            match done.code() {
                Some(c) => format!("exit {c}"),
                None => "killed by a signal".into(),
            },
        ),
        Err(rotor_process::ProcessError::TimedOut { .. }) => {
            tracing::error!(secret = %secret, "on_emergency hook timed out");
            Check::new(
                CheckStatus::Fail,
                format!("timed out after {}s (killed)", timeout.as_secs()),
            )
        }
        Err(e) => Check::new(CheckStatus::Fail, format!("the hook failed: {e}")),
    }
}

async fn error_rate(http: &reqwest::Client, url: &str) -> std::result::Result<f64, String> {
    let resp = http
        .get(url)
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    if !resp.status().is_success() {
        return Err(format!("the error-rate URL answered {}", resp.status()));
    }
    let text = resp.text().await.map_err(|e| e.without_url().to_string())?;
    text.trim()
        .parse::<f64>()
        .map_err(|_| "the error-rate URL did not answer a number".to_owned())
}

/// One checklist line from every secret's check: what failed (or is pending), each named
/// by its secret.
fn summarise<'a>(
    item: &str,
    checks: impl Iterator<Item = (&'a SecretName, &'a Check)>,
) -> ChecklistItem {
    let checks: Vec<(&SecretName, &Check)> = checks.collect();
    let named = |want: &dyn Fn(CheckStatus) -> bool| -> Vec<String> {
        checks
            .iter()
            .filter(|(_, c)| want(c.status))
            .map(|(n, c)| format!("{n}: {}", c.detail))
            .collect()
    };
    let failed = named(&|s| matches!(s, CheckStatus::Fail | CheckStatus::Skipped));
    let pending = named(&|s| s == CheckStatus::Pending);
    let passed = checks
        .iter()
        .filter(|(_, c)| c.status == CheckStatus::Pass)
        .count();
    let check = if !failed.is_empty() {
        Check::new(CheckStatus::Fail, failed.join("; "))
    } else if !pending.is_empty() {
        Check::new(CheckStatus::Pending, pending.join("; "))
    } else if passed == 0 {
        Check::new(
            CheckStatus::NotApplicable,
            "does not apply to these secrets",
        )
    } else {
        Check::new(CheckStatus::Pass, format!("{passed} secret(s)"))
    };
    ChecklistItem {
        item: item.into(),
        check,
    }
}

fn summarise_health(health: &[HealthCheck]) -> ChecklistItem {
    let check = if health.is_empty() {
        Check::new(CheckStatus::NotApplicable, "no health_urls configured")
    } else {
        let bad: Vec<String> = health
            .iter()
            .filter(|h| h.check.status != CheckStatus::Pass)
            .map(|h| format!("{}: {}", h.url, h.check.detail))
            .collect();
        if bad.is_empty() {
            Check::new(
                CheckStatus::Pass,
                format!("{} URL(s) answered 200", health.len()),
            )
        } else {
            Check::new(CheckStatus::Fail, bad.join("; "))
        }
    };
    ChecklistItem {
        item: "All services healthy".into(),
        check,
    }
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
