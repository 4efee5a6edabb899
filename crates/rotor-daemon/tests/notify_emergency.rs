//! Webhooks against a real loopback server, and the emergency runbook / drill reports.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use rotor_core::config::service::NotifyEvent;
use rotor_core::{SecretName, Stage};
use rotor_daemon::emergency::CheckStatus;
use rotor_daemon::notify::NotifyRetry;
use rotor_daemon::{EmergencyOptions, Notification, Notifier, drill, emergency};
use rotor_engine::SystemClock;

fn fast() -> NotifyRetry {
    NotifyRetry {
        attempts: 3,
        base: Duration::from_millis(10),
        max: Duration::from_millis(50),
        timeout: Duration::from_secs(5),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_retry_on_500_and_audit_final_failures() {
    let rec = common::recorder(vec![500, 500], vec!["0"]).await;
    let fx = common::fixture(&format!(
        "[[notify]]\nurl = \"{u}/hook\"\nformat = \"json\"\n[[notify]]\nurl = \"{u}/hook\"\nformat = \"slack\"\nevents = [\"failed\"]\n[secrets.a]\nkind = \"random\"\ntier = \"high\"\n",
        u = rec.url
    ));
    let n =
        Notifier::new(fx.config.notify.clone(), Some(fx.store.clone()), "rotor").with_retry(fast());
    let name = SecretName::new("a").unwrap();
    let sent = n
        .send(&Notification::new(
            NotifyEvent::Rotated,
            Some(&name),
            None,
            "a was rotated",
            Timestamp::now(),
        ))
        .await;
    assert_eq!(sent, 1, "only the json hook takes `rotated`");
    {
        let bodies = rec.bodies.lock().unwrap();
        assert_eq!(bodies.len(), 3, "two 500s then success: {bodies:?}");
        let j: serde_json::Value = serde_json::from_str(&bodies[2]).unwrap();
        assert_eq!(j["event"], "rotated");
        assert_eq!(j["secret"], "a");
        assert!(j["time"].is_string() && j["message"].is_string());
    }
    let sent = n
        .send(&Notification::new(
            NotifyEvent::Failed,
            Some(&name),
            None,
            "a failed",
            Timestamp::now(),
        ))
        .await;
    assert_eq!(sent, 2);
    assert!(
        rec.bodies
            .lock()
            .unwrap()
            .iter()
            .any(|b| b.contains("\"text\""))
    );

    // A hook that never answers 2xx: bounded tries, then logged and audited.
    let bad = common::fixture(&format!(
        "[[notify]]\nurl = \"{}/missing\"\n[secrets.a]\nkind = \"random\"\ntier = \"high\"\n",
        rec.url
    ));
    let n = Notifier::new(bad.config.notify.clone(), Some(bad.store.clone()), "rotor")
        .with_retry(fast());
    let sent = n
        .send(&Notification::new(
            NotifyEvent::Overdue,
            Some(&name),
            None,
            "a is overdue",
            Timestamp::now(),
        ))
        .await;
    assert_eq!(sent, 0);
    let audit = bad.store.audit_tail(5).await.unwrap();
    let failed = audit
        .iter()
        .find(|r| r.event.action == "notify.failed")
        .expect("audited");
    assert!(
        failed
            .event
            .outcome
            .starts_with("error: the webhook answered 404"),
        "{failed:?}"
    );
    assert!(
        !failed.event.reason.as_deref().unwrap().contains("/missing"),
        "no URL path in the audit"
    );
    rec.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_rotation_notifies_without_the_value() {
    let rec = common::recorder(vec![500], vec!["0"]).await;
    let (t, toml) = common::tokens(&[("ops", &["admin"])]);
    let fx = common::fixture(&format!(
        "{toml}[[notify]]\nurl = \"{u}/hook\"\nformat = \"json\"\n[secrets.a]\nkind = \"random\"\ntier = \"high\"\n",
        u = rec.url
    ));
    let engine = fx.engine(Arc::new(SystemClock), None);
    let daemon = rotor_daemon::Daemon::new(engine, Arc::new(SystemClock));
    let notifier = daemon.notifier().with_retry(fast());
    let running = daemon
        .with_notifier(notifier)
        .start(rotor_daemon::ServeOptions {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            scheduler: None,
            ..Default::default()
        })
        .await
        .unwrap();
    let client = rotor_daemon::Client::new(&running.url(), &t[0]).unwrap();
    client
        .rotate("a", true, Some("leaked in a log"), false)
        .await
        .unwrap();
    let value = client.get_value("a", Stage::Current).await.unwrap();
    let value = value.value.expose_str().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let bodies = rec.bodies.lock().unwrap().clone();
        if bodies.iter().any(|b| b.contains("\"rotated\"")) {
            assert!(
                bodies[0].contains("\"emergency\""),
                "emergency goes out first: {bodies:?}"
            );
            assert!(
                bodies.iter().all(|b| !b.contains(&value)),
                "no value in {bodies:?}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no rotated notification: {bodies:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.stop().await;
    rec.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emergency_writes_both_reports_with_the_checklist() {
    let rec = common::recorder(vec![], vec!["0.5", "0.2"]).await;
    let fx = common::fixture(&format!(
        r#"
[[notify]]
url = "{u}/hook"
format = "slack"

[emergency]
health_urls = ["{u}/health"]
error_rate_url = "{u}/errors"
report_dir = "reports"

[secrets.session]
kind = "random"
tier = "high"
grace = "1h"
# Passes only with rotor's environment cleared (cargo sets CARGO_MANIFEST_DIR for this
# process; a hook must never see rotor's environment, where the master key may live).
on_emergency = "test -z \"$CARGO_MANIFEST_DIR\" && test \"$ROTOR_SECRET\" = session && echo flushed"

[secrets.pepper]
kind = "random"
tier = "low"
requires_confirmation = true

[secrets.cookie]
kind = "random"
tier = "high"
grace = "1h"
on_emergency = "echo oops >&2; exit 3"
"#,
        u = rec.url
    ));
    let engine = fx.engine(Arc::new(SystemClock), None);
    // Values before: the report must hold none of them, nor the new ones.
    engine.rotate("session", &Default::default()).await.unwrap();
    let notifier =
        Notifier::new(fx.config.notify.clone(), Some(fx.store.clone()), "rotor").with_retry(fast());
    let report = emergency(
        &engine,
        &notifier,
        "random",
        "token found in CI logs",
        &EmergencyOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.kind, "emergency");
    assert!(!report.ok, "a hook failed and pepper needs confirmation");
    let by = |n: &str| {
        report
            .secrets
            .iter()
            .find(|s| s.secret.as_str() == n)
            .unwrap()
    };
    assert_eq!(by("session").new_works.status, CheckStatus::Pass);
    assert_eq!(by("session").hook.status, CheckStatus::Pass);
    assert_eq!(
        by("session").old_rejected.status,
        CheckStatus::NotApplicable
    );
    assert_eq!(by("cookie").hook.status, CheckStatus::Fail);
    assert_eq!(by("cookie").hook.detail, "exit 3");
    assert_eq!(by("pepper").new_works.status, CheckStatus::Fail);
    assert_eq!(report.error_rate_before, Some(0.5));
    assert_eq!(report.error_rate_after, Some(0.2));
    let files = report.files.clone().unwrap();
    for f in [&files.markdown, &files.json] {
        let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", f.display());
    }
    let md = std::fs::read_to_string(&files.markdown).unwrap();
    for item in [
        "New value works",
        "Old value rejected",
        "Hooks succeeded",
        "All services healthy",
        "Error rate did not rise",
        "Create an incident ticket",
        "ACTION NEEDED",
    ] {
        assert!(md.contains(item), "{item} missing:\n{md}");
    }
    assert!(md.contains("- [x] All services healthy"));
    assert!(md.contains("- [x] Error rate did not rise: before 0.5, after 0.2"));
    assert!(md.contains("- [ ] Hooks succeeded"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&files.json).unwrap()).unwrap();
    assert_eq!(json["checklist"].as_array().unwrap().len(), 5);
    assert!(
        !md.contains("flushed") && !md.contains("oops"),
        "hook output never kept"
    );
    for name in ["session", "cookie"] {
        let v = fx
            .store
            .read_stage(&SecretName::new(name).unwrap(), Stage::Current)
            .await
            .unwrap()
            .unwrap();
        let v = v.value.expose_str().unwrap().to_owned();
        assert!(!md.contains(&v) && !json.to_string().contains(&v));
        // Emergency: grace 0, no previous left.
        assert!(
            fx.store
                .read_stage(&SecretName::new(name).unwrap(), Stage::Previous)
                .await
                .unwrap()
                .is_none()
        );
    }
    // Notified first, audited with the reason.
    let bodies = rec.bodies.lock().unwrap().clone();
    assert!(
        bodies[0].contains("Emergency secret rotation")
            && bodies[0].contains("token found in CI logs")
    );
    let audit = fx.store.audit_tail(50).await.unwrap();
    assert!(audit.iter().any(|r| r.event.action == "emergency.begin"));
    assert!(audit.iter().any(|r| r.event.action == "emergency.report"));

    // A drill: every automatic secret, normal grace, same checklist.
    let report = drill(&engine, "", &EmergencyOptions::default())
        .await
        .unwrap();
    assert_eq!(report.kind, "drill");
    assert!(report.files.as_ref().unwrap().markdown.exists());
    assert_eq!(report.checklist.len(), 5);
    rec.shutdown.cancel();
}

#[test]
fn emergency_orders_admins_first() {
    let fx = common::fixture(
        r#"
[secrets.app-db]
kind = "postgres"
tier = "medium"
url = "postgres://127.0.0.1:5432/app"
role = "app"
admin = "pg-admin"

[secrets.pg-admin]
kind = "postgres"
tier = "medium"
url = "postgres://127.0.0.1:5432/postgres"
role = "postgres"

[secrets.jwt]
kind = "jwt"
algorithm = "HS256"
tier = "high"
"#,
    );
    let engine = fx.engine(Arc::new(SystemClock), None);
    let order: Vec<String> = rotor_daemon::emergency::targets(&engine, "all")
        .unwrap()
        .iter()
        .map(|s| s.name.to_string())
        .collect();
    assert_eq!(order, vec!["pg-admin", "app-db", "jwt"]);
    let pg: Vec<String> = rotor_daemon::emergency::targets(&engine, "postgres")
        .unwrap()
        .iter()
        .map(|s| s.name.to_string())
        .collect();
    assert_eq!(pg, vec!["pg-admin", "app-db"]);
    assert!(rotor_daemon::emergency::targets(&engine, "nope").is_err());
}
