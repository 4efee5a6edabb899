//! The checklist's checks: `on_emergency` hooks, the error-rate probe, and the summary line
//! of each checklist item.

use rotor_core::{Kind, SecretName};

use super::{Check, CheckStatus, ChecklistItem, HealthCheck};

/// Kinds whose target holds sessions an emergency ends.
pub(super) fn has_sessions(kind: Kind) -> bool {
    matches!(kind, Kind::Postgres | Kind::Redis)
}

/// Runs `sh -c hook` through the one hook runner (`rotor_process::Spec::hook`, as
/// rotor-deliver's `on_change`): a cleared environment (PATH, HOME, locale, TZ, TMPDIR and
/// the two `ROTOR_*` names below; never `ROTOR_MASTER_KEY` or a passphrase), its own
/// process group killed on timeout, and output read and dropped (it could contain values).
pub(super) async fn run_hook(
    hook: &str,
    secret: &SecretName,
    timeout: std::time::Duration,
) -> Check {
    match rotor_process::run(hook_spec(hook, secret, timeout)).await {
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

/// What [`run_hook`] runs: the hook with the secret's name and the emergency flag.
fn hook_spec(hook: &str, secret: &SecretName, timeout: std::time::Duration) -> rotor_process::Spec {
    rotor_process::Spec::hook(hook, timeout)
        .env("ROTOR_SECRET", secret.as_str())
        .env("ROTOR_EMERGENCY", "1")
}

pub(super) async fn error_rate(
    http: &reqwest::Client,
    url: &str,
) -> std::result::Result<f64, String> {
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
pub(super) fn summarise<'a>(
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

pub(super) fn summarise_health(health: &[HealthCheck]) -> ChecklistItem {
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

#[cfg(test)]
mod tests;
