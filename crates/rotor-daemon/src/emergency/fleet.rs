//! Rotating the chosen secrets: admins level by level, with bounded concurrency per target
//! and overall, each rotation's checks filled in as it ends.

use std::sync::Arc;

use rotor_core::config::KindSettings;
use rotor_core::{Kind, SecretSpec, Trigger};
use rotor_engine::{Engine, Evicted, Outcome, RotateOptions};

use super::checks::{has_sessions, run_hook};
use super::{Check, CheckStatus, EmergencyOptions, Mode, SecretReport, depth};

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
pub(super) async fn rotate_all(
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
