//! Issue 9 item 4: a rotate at the end of a grace never races the daemon's own retire.
//!
//! One process, as in `rotor serve`: the scheduler (real time) retires each previous value
//! when its grace ends, while "the API" (the same `Engine`, as the API handler calls it)
//! rotates the same secret 0–10 ms after its `retire_after`. 60 secrets with grace 1 s make
//! 60 such edges in about two seconds. Wanted: no call fails, no failure is counted, and no
//! previous value outlives its grace (the retire lands right at the edge, not after a lease).

mod common;

use std::sync::Arc;
use std::time::Duration;

use rotor_core::SecretName;
use rotor_daemon::metrics::Metrics;
use rotor_daemon::scheduler::{Scheduler, SchedulerHandle, SchedulerOptions};
use rotor_daemon::{Notifier, TokioClock};
use rotor_engine::{Clock, Outcome, RotateOptions};
use tokio_util::sync::CancellationToken;

const EDGES: usize = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_at_the_end_of_grace_serialises_with_the_schedulers_retire() {
    let mut toml = String::from("[server]\nmax_concurrent_rotations = 8\n");
    for i in 0..EDGES {
        toml.push_str(&format!(
            "\n[secrets.e{i:02}]\nkind = \"command\"\ncommand = [\"/bin/true\"]\nrotate_every = \"30d\"\nautomation = \"automatic\"\ngrace = \"1s\"\n"
        ));
    }
    let fx = common::fixture(&toml);
    let clock = Arc::new(TokioClock::new(jiff::Timestamp::now()));
    let target = Arc::new(common::FakeTarget::default());
    let engine = Arc::new(fx.engine(
        clock.clone(),
        Some(target.clone() as Arc<dyn rotor_core::Rotator>),
    ));
    let opts = RotateOptions::default();
    // Two rotations each (a first one has no previous value and retires at once), so every
    // secret has a previous value in a 1 s grace.
    let mut retire_at = Vec::new();
    for i in 0..EDGES {
        let name = format!("e{i:02}");
        engine.rotate(&name, &opts).await.expect("first rotation");
        match engine.rotate(&name, &opts).await.expect("second rotation") {
            Outcome::InGrace { retire_after, .. } => retire_at.push((name, retire_after)),
            other => panic!("{name}: {other:?}"),
        }
    }

    let metrics = Arc::new(Metrics::new());
    let sched = Scheduler::new(
        engine.clone(),
        clock.clone(),
        Notifier::disabled(),
        metrics.clone(),
        SchedulerOptions {
            max_sleep: Duration::from_secs(5),
            resume_at_start: false,
            ..SchedulerOptions::default()
        },
        SchedulerHandle::default(),
    );
    let stop = CancellationToken::new();
    let task = tokio::spawn(sched.run(stop.clone()));

    // "The API": rotate each secret 0–10 ms after its retire_after, all concurrently.
    let mut calls = tokio::task::JoinSet::new();
    for (i, (name, at)) in retire_at.iter().cloned().enumerate() {
        let engine = engine.clone();
        let clock = clock.clone();
        calls.spawn(async move {
            let edge = at
                .checked_add(jiff::SignedDuration::from_millis((i % 11) as i64))
                .expect("time");
            let wait = edge.duration_since(clock.now());
            if wait.is_positive() {
                tokio::time::sleep(Duration::try_from(wait).expect("positive")).await;
            }
            let r = engine.rotate(&name, &RotateOptions::default()).await;
            (name, r)
        });
    }
    let mut wrong = Vec::new();
    while let Some(joined) = calls.join_next().await {
        let (name, r) = joined.expect("joined");
        if let Err(e) = r {
            wrong.push(format!("{name}: {e}"));
        }
    }
    stop.cancel();
    task.await.expect("scheduler");

    // From the audit: each grace ended with its retire, right at the edge.
    let audit = engine.store().audit_all().await.expect("audit");
    let mut late = Vec::new();
    for (name, at) in &retire_at {
        let secret = SecretName::new(name).expect("name");
        let retired = audit
            .iter()
            .filter(|r| {
                r.event.action == "rotation.retire"
                    && r.event.secret.as_ref() == Some(&secret)
                    && r.event.outcome == "ok"
                    && r.time >= *at
            })
            .map(|r| r.time)
            .min();
        match retired {
            Some(t) if t.duration_since(*at) < jiff::SignedDuration::from_millis(900) => {}
            other => late.push(format!("{name}: grace ended {at}, retired {other:?}")),
        }
        if metrics.failures(name) != 0 {
            wrong.push(format!(
                "{name}: {} failure(s) counted",
                metrics.failures(name)
            ));
        }
    }
    let taken: Vec<_> = audit
        .iter()
        .filter(|r| {
            r.event.action == "rotation.lease"
                && r.event
                    .reason
                    .as_deref()
                    .is_some_and(|x| x.contains("took over"))
        })
        .collect();
    eprintln!(
        "edge calls tried: {EDGES}, wrong: {}, late retires: {}",
        wrong.len(),
        late.len()
    );
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert!(late.is_empty(), "{late:#?}");
    assert!(
        taken.is_empty(),
        "no lease taken over in one process: {taken:#?}"
    );
    let _ = &fx;
}
