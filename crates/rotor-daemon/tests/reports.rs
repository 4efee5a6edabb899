//! Issue 9.8: drill and emergency reports say only what is true. A drill whose old values
//! are in grace reports "in grace until T" (not "all checks passed" with the check ticked
//! n/a); an emergency report names each secret with what was done (no empty lines from
//! skipped secrets), and its webhook announces only the secrets it rotates.

mod common;

use std::sync::Arc;
use std::time::Duration;

use rotor_daemon::emergency::CheckStatus;
use rotor_daemon::notify::NotifyRetry;
use rotor_daemon::{EmergencyOptions, Notifier, drill, emergency};
use rotor_engine::SystemClock;

fn fast() -> NotifyRetry {
    NotifyRetry {
        attempts: 2,
        base: Duration::from_millis(10),
        max: Duration::from_millis(50),
        timeout: Duration::from_secs(5),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_in_grace_reports_in_grace_until_not_passed() {
    let fx = common::fixture(
        r#"
[emergency]
report_dir = "reports"

[secrets.session]
kind = "random"
tier = "high"
grace = "1h"

[secrets.cookie]
kind = "random"
tier = "high"
grace = "1h"
"#,
    );
    let engine = fx.engine(Arc::new(SystemClock), None);
    // A first rotation each, so the drill's rotation has a previous value to keep in grace.
    for name in ["session", "cookie"] {
        engine.rotate(name, &Default::default()).await.unwrap();
    }
    engine.retire_due().await.unwrap();
    let report = drill(&engine, "quarterly drill", &EmergencyOptions::default())
        .await
        .unwrap();
    for s in &report.secrets {
        assert_eq!(
            s.old_rejected.status,
            CheckStatus::Pending,
            "{}: {:?}",
            s.secret,
            s.old_rejected
        );
        assert!(
            s.old_rejected.detail.contains("in grace until"),
            "{:?}",
            s.old_rejected
        );
    }
    let md = std::fs::read_to_string(&report.files.as_ref().unwrap().markdown).unwrap();
    assert!(!md.contains("all checks passed"), "{md}");
    assert!(!md.contains("(n/a) Old value rejected"), "{md}");
    assert!(md.contains("in grace until"), "{md}");
    assert!(md.contains("rotor retire --due"), "{md}");
    // Nothing failed: the drill is not a failure, it is not finished either.
    assert!(report.ok, "{md}");
    assert!(!report.complete, "{md}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emergency_report_names_each_secret_and_announces_only_what_it_rotates() {
    let rec = common::recorder(vec![], vec!["0"]).await;
    let fx = common::fixture(&format!(
        r#"
[[notify]]
url = "{u}/hook"
format = "json"

[emergency]
report_dir = "reports"

[secrets.session]
kind = "random"
tier = "high"
grace = "1h"

[secrets.pepper]
kind = "random"
tier = "low"
requires_confirmation = true

[secrets.vendor-key]
kind = "manual"
tier = "low"
"#,
        u = rec.url
    ));
    let engine = fx.engine(Arc::new(SystemClock), None);
    engine.rotate("session", &Default::default()).await.unwrap();
    let notifier =
        Notifier::new(fx.config.notify.clone(), Some(fx.store.clone()), "rotor").with_retry(fast());
    let report = emergency(
        &engine,
        &notifier,
        "all",
        "laptop stolen",
        &EmergencyOptions::default(),
    )
    .await
    .unwrap();
    assert!(!report.ok, "vendor-key and pepper were not rotated");
    let md = std::fs::read_to_string(&report.files.as_ref().unwrap().markdown).unwrap();
    // Checklist lines (the seed's manual steps have no detail).
    for line in md
        .lines()
        .filter(|l| l.starts_with("- [") && !l.ends_with("(manual)"))
    {
        let detail = line.split_once(": ").map(|(_, d)| d.trim()).unwrap_or("");
        assert!(
            !detail.is_empty() && !detail.starts_with(';') && !detail.contains("; ;"),
            "an empty checklist line: {line:?}\n{md}"
        );
    }
    let old = md
        .lines()
        .find(|l| l.contains("Old value rejected"))
        .unwrap();
    assert!(
        old.contains("vendor-key") && old.contains("pepper"),
        "the skipped secrets are named: {old}"
    );
    for s in &report.secrets {
        assert!(
            !s.old_rejected.detail.is_empty() && !s.new_works.detail.is_empty(),
            "{s:?}"
        );
    }
    // The webhook announces what is rotated, and names what is not.
    let bodies = rec.bodies.lock().unwrap().clone();
    let first: serde_json::Value = serde_json::from_str(&bodies[0]).unwrap();
    let msg = first["message"].as_str().unwrap();
    let (rotating, rest) = msg.split_once("rotating ").unwrap();
    let rotating = rest.split(';').next().unwrap_or(rotating);
    assert!(rotating.contains("session"), "{msg}");
    assert!(
        !rotating.contains("vendor-key") && !rotating.contains("pepper"),
        "announced as rotated but skipped: {msg}"
    );
    assert!(
        msg.contains("vendor-key") && msg.contains("pepper"),
        "skipped ones named: {msg}"
    );
    rec.shutdown.cancel();
}
