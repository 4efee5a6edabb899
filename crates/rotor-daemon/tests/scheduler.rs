//! The scheduler on paused tokio time: nothing here sleeps for real.
//! Over 600 lines on purpose: one paused-time case per scheduling rule, on one fixture.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use jiff::Timestamp;
use rotor_core::config::service::NotifyEvent;
use rotor_core::schedule::{jitter_offset, lead_time, place_due};
use rotor_core::store::{Change, Op};
use rotor_core::{
    Rotation, RotationId, RotationStatus, SecretName, SecretValue, Stage, Step, Trigger,
};
use rotor_daemon::metrics::Metrics;
use rotor_daemon::scheduler::{Scheduler, SchedulerHandle, SchedulerOptions};
use rotor_daemon::{Notification, Notifier, TokioClock};
use rotor_engine::{Clock, Engine};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

struct Run {
    fx: common::Fixture,
    engine: Arc<Engine>,
    clock: Arc<TokioClock>,
    handle: SchedulerHandle,
    metrics: Arc<Metrics>,
    notes: UnboundedReceiver<Notification>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

fn base() -> Timestamp {
    // Monday 2025-06-02 00:00 UTC.
    "2025-06-02T00:00:00Z"
        .parse()
        .expect("parse the base timestamp")
}

/// Builds the engine; `seed` runs before the scheduler starts (e.g. puts at `base`).
async fn run_with(
    toml: &str,
    target: Option<Arc<common::FakeTarget>>,
    seed: impl AsyncFnOnce(&Engine),
) -> Run {
    let fx = common::fixture(toml);
    let clock = Arc::new(TokioClock::new(base()));
    let engine = Arc::new(fx.engine(
        clock.clone(),
        target.map(|t| t as Arc<dyn rotor_core::Rotator>),
    ));
    seed(&engine).await;
    let (tx, notes) = tokio::sync::mpsc::unbounded_channel();
    let handle = SchedulerHandle::default();
    let metrics = Arc::new(Metrics::new());
    let sched = Scheduler::new(
        engine.clone(),
        clock.clone(),
        Notifier::disabled().with_sink(tx),
        metrics.clone(),
        SchedulerOptions {
            max_sleep: Duration::from_secs(600),
            ..SchedulerOptions::default()
        },
        handle.clone(),
    );
    let stop = CancellationToken::new();
    let task = tokio::spawn(sched.run(stop.clone()));
    Run {
        fx,
        engine,
        clock,
        handle,
        metrics,
        notes,
        stop,
        task,
    }
}

impl Run {
    async fn current(&self, name: &str) -> Option<rotor_core::VersionMeta> {
        self.engine
            .store()
            .versions(&SecretName::new(name).expect("secret name"))
            .await
            .expect("store versions of the secret")
            .into_iter()
            .find(|v| v.has(Stage::Current))
    }
    async fn has_previous(&self, name: &str) -> bool {
        self.engine
            .store()
            .versions(&SecretName::new(name).expect("secret name"))
            .await
            .expect("store versions of the secret")
            .iter()
            .any(|v| v.has(Stage::Previous))
    }
    fn drain_notes(&mut self) -> Vec<Notification> {
        let mut v = Vec::new();
        while let Ok(n) = self.notes.try_recv() {
            v.push(n);
        }
        v
    }
    async fn stop(self) {
        self.stop.cancel();
        self.task.await.expect("join the scheduler task");
    }
}

async fn put(engine: &Engine, name: &str) {
    engine
        .put(
            name,
            SecretValue::from_slice(b"seed-value-0123456789abcdef"),
            serde_json::json!({}),
            Some("seed"),
        )
        .await
        .expect("engine put of the seed value");
}

async fn advance_to(clock: &TokioClock, t: Timestamp) {
    let now = clock.now();
    assert!(t >= now, "{t} is before {now}");
    tokio::time::sleep(
        Duration::try_from(t.duration_since(now)).expect("time to advance fits a Duration"),
    )
    .await;
}

fn at(t: Timestamp, secs: i64) -> Timestamp {
    t.checked_add(jiff::SignedDuration::from_secs(secs))
        .expect("timestamp plus seconds stays in range")
}

#[tokio::test(start_paused = true)]
async fn rotates_an_automatic_due_secret_with_jitter_then_retires_after_grace() {
    let toml = r#"
[secrets.auto]
kind = "random"
rotate_every = "1d"
grace = "1h"
automation = "automatic"
jitter = "2h"
"#;
    let r = run_with(toml, None, async |e: &Engine| put(e, "auto").await).await;
    let seeded = r.current("auto").await.unwrap();
    // Due a lead time (a tenth of the period) before the deadline, plus the name's jitter.
    let lead = lead_time(rotor_core::Duration::from_days(1)).as_secs() as i64;
    let due = place_due(
        at(base(), 86_400 - lead),
        "auto",
        rotor_core::Duration::from_hours(2),
        None,
    );
    let offset = jitter_offset("auto", rotor_core::Duration::from_hours(2)).as_secs() as i64;
    assert_eq!(due, at(base(), 86_400 - lead + offset));
    assert_eq!(
        r.engine.status().await.unwrap()[0].standing.next_due,
        due,
        "the scheduler runs at the time `rotor status` shows"
    );
    // The seed's grace ends after an hour: retired by the scheduler.
    advance_to(&r.clock, at(base(), 3_700)).await;
    assert!(!r.has_previous("auto").await);
    // Not before its (jittered) due time.
    advance_to(&r.clock, at(due, -60)).await;
    assert_eq!(r.current("auto").await.unwrap().id, seeded.id);
    // Rotated at it.
    advance_to(&r.clock, at(due, 60)).await;
    let rotated = r.current("auto").await.unwrap();
    assert_ne!(rotated.id, seeded.id);
    assert!(
        rotated.created_at >= due && rotated.created_at <= at(due, 1),
        "{}",
        rotated.created_at
    );
    assert_eq!(rotated.created_by, "rotor-test");
    assert!(r.has_previous("auto").await, "previous kept through grace");
    // Previous retired when grace ends.
    advance_to(&r.clock, at(due, 3_600 + 60)).await;
    assert!(
        !r.has_previous("auto").await,
        "previous retired after grace"
    );
    let mut r = r;
    let notes = r.drain_notes();
    assert!(notes.iter().any(|n| n.event == NotifyEvent::Rotated));
    r.stop().await;
}

#[tokio::test(start_paused = true)]
async fn manual_secrets_are_not_rotated_but_notified_overdue_once_per_period() {
    let toml = r#"
[secrets.by-hand]
kind = "random"
rotate_every = "1d"
grace = "1h"
automation = "manual"
"#;
    let mut r = run_with(toml, None, async |e: &Engine| put(e, "by-hand").await).await;
    let seeded = r.current("by-hand").await.unwrap();
    advance_to(&r.clock, at(base(), 86_400 + 120)).await;
    advance_to(&r.clock, at(base(), 4 * 86_400)).await;
    assert_eq!(
        r.current("by-hand").await.unwrap().id,
        seeded.id,
        "never rotated by the scheduler"
    );
    let notes = r.drain_notes();
    let overdue: Vec<_> = notes
        .iter()
        .filter(|n| n.event == NotifyEvent::Overdue)
        .collect();
    assert_eq!(overdue.len(), 1, "{notes:?}");
    assert_eq!(overdue[0].secret.as_ref().unwrap().as_str(), "by-hand");
    // Someone rotates it: a new period, a new notice when it is overdue again.
    put(&r.engine, "by-hand").await;
    advance_to(&r.clock, at(base(), 5 * 86_400 + 120)).await;
    let notes = r.drain_notes();
    assert_eq!(
        notes
            .iter()
            .filter(|n| n.event == NotifyEvent::Overdue)
            .count(),
        1,
        "{notes:?}"
    );
    r.stop().await;
}

#[tokio::test(start_paused = true)]
async fn respects_the_window() {
    let toml = r#"
[secrets.windowed]
kind = "random"
rotate_every = "1d"
grace = "1h"
automation = "automatic"
window = "Wed 02:00-04:00 Europe/Berlin"
jitter = "1h"
"#;
    let r = run_with(toml, None, async |e: &Engine| put(e, "windowed").await).await;
    let seeded = r.current("windowed").await.unwrap();
    let window = r.engine.spec("windowed").unwrap().window.clone().unwrap();
    let lead = lead_time(rotor_core::Duration::from_days(1)).as_secs() as i64;
    let due = place_due(
        at(base(), 86_400 - lead),
        "windowed",
        rotor_core::Duration::from_hours(1),
        Some(&window),
    );
    // Wednesday 02:00 CEST is 00:00Z; plus the name's offset within the hour.
    let open: Timestamp = "2025-06-04T00:00:00Z".parse().unwrap();
    assert!(due >= open && due < at(open, 3_600), "{due}");
    // Tuesday (nominally due, but outside the window): untouched.
    advance_to(&r.clock, at(due, -60)).await;
    assert_eq!(r.current("windowed").await.unwrap().id, seeded.id);
    advance_to(&r.clock, at(due, 60)).await;
    let rotated = r.current("windowed").await.unwrap();
    assert_ne!(rotated.id, seeded.id);
    assert!(rotated.created_at >= due && rotated.created_at < at(open, 7_200));
    r.stop().await;
}

#[tokio::test(start_paused = true)]
async fn limits_concurrent_rotations() {
    let mut toml = String::from("[server]\nmax_concurrent_rotations = 2\n");
    for i in 0..5 {
        toml.push_str(&format!(
            "[secrets.svc-{i}]\nkind = \"command\"\ncommand = [\"/bin/true\"]\nrotate_every = \"30d\"\nautomation = \"automatic\"\n"
        ));
    }
    let target = Arc::new(common::FakeTarget::default());
    *target.set_takes.lock().unwrap() = Duration::from_secs(600);
    let r = run_with(&toml, Some(target.clone()), async |_: &Engine| {}).await;
    // Never rotated: all five are due at start; two at a time, ten minutes each.
    advance_to(&r.clock, at(base(), 600 - 10)).await;
    assert_eq!(count_current(&r, 5).await, 0);
    assert_eq!(target.running.load(Ordering::SeqCst), 2);
    advance_to(&r.clock, at(base(), 600 + 10)).await;
    assert_eq!(
        count_current(&r, 5).await,
        2,
        "the first two after ten minutes"
    );
    advance_to(&r.clock, at(base(), 1_200 + 10)).await;
    assert_eq!(count_current(&r, 5).await, 4, "two more after twenty");
    advance_to(&r.clock, at(base(), 3_600)).await;
    assert_eq!(count_current(&r, 5).await, 5);
    assert_eq!(target.max_running.load(Ordering::SeqCst), 2);
    r.stop().await;
}

async fn count_current(r: &Run, n: usize) -> usize {
    let mut c = 0;
    for i in 0..n {
        if r.current(&format!("svc-{i}")).await.is_some() {
            c += 1;
        }
    }
    c
}

#[tokio::test(start_paused = true)]
async fn failures_back_off_then_hold_until_someone_acts() {
    let toml = r#"
[server]
retry_attempts = 3
retry_backoff = "1m"

[secrets.flaky]
kind = "command"
command = ["/bin/true"]
rotate_every = "30d"
automation = "automatic"
"#;
    let target = Arc::new(common::FakeTarget::default());
    target.fail_left.store(u32::MAX, Ordering::SeqCst);
    let mut r = run_with(toml, Some(target.clone()), async |_: &Engine| {}).await;
    let start = tokio::time::Instant::now();
    advance_to(&r.clock, at(base(), 3 * 86_400)).await;
    let times: Vec<u64> = target
        .create_times
        .lock()
        .unwrap()
        .iter()
        .map(|t| t.duration_since(start).as_secs())
        .collect();
    // Attempt 1 at once, then after 1m, then 2m more; then held: three in all, never more.
    assert_eq!(times, vec![0, 60, 180], "attempt times");
    let s = r.handle.schedule_of("flaky").unwrap();
    assert!(s.held_failed);
    assert_eq!(r.handle.failed(), vec!["flaky".to_owned()]);
    let notes = r.drain_notes();
    let failed: Vec<_> = notes
        .iter()
        .filter(|n| n.event == NotifyEvent::Failed)
        .collect();
    assert_eq!(failed.len(), 1, "one alert: {notes:?}");
    assert!(failed[0].message.contains("refused"));
    // Someone acts: a manual rotation that works releases the hold.
    target.fail_left.store(0, Ordering::SeqCst);
    r.engine
        .rotate("flaky", &rotor_engine::RotateOptions::default())
        .await
        .unwrap();
    r.handle.wake();
    advance_to(&r.clock, at(base(), 3 * 86_400 + 60)).await;
    assert!(!r.handle.schedule_of("flaky").unwrap().held_failed);
    assert!(r.handle.failed().is_empty());
    r.stop().await;
}

/// Issue 9 item 3: a job that failed lets go of its lease at once, and what comes next
/// follows `retry_backoff` (doubling), not the 5-minute lease. The target is unreachable: the
/// rotation ends failed with its rollback owed; the rollback is retried at 1m, then 2m, 4m
/// later; only the one rotation that ended failed is counted.
#[tokio::test(start_paused = true)]
async fn a_failed_job_releases_its_lease_and_retries_follow_the_backoff() {
    let toml = r#"
[server]
retry_attempts = 3
retry_backoff = "1m"

[secrets.down]
kind = "command"
command = ["/bin/true"]
rotate_every = "30d"
automation = "automatic"
"#;
    let target = Arc::new(common::FakeTarget::default());
    target.unreachable.store(true, Ordering::SeqCst);
    let r = run_with(toml, Some(target.clone()), async |_: &Engine| {}).await;
    let start = tokio::time::Instant::now();
    advance_to(&r.clock, at(base(), 1)).await;
    let name = SecretName::new("down").unwrap();
    let rots = r.engine.store().rotations(Some(&name), 10).await.unwrap();
    assert_eq!(rots.len(), 1);
    assert_eq!(rots[0].status, RotationStatus::Failed, "{:?}", rots[0]);
    assert!(rots[0].rollback_owed);
    let lease = rots[0].lease.clone().expect("lease");
    assert!(
        lease.expires_at <= r.clock.now(),
        "the failed job let go of its lease: {lease:?} at {}",
        r.clock.now()
    );
    advance_to(&r.clock, at(base(), 8 * 60)).await;
    let times: Vec<u64> = target
        .rollback_times
        .lock()
        .unwrap()
        .iter()
        .map(|t| t.duration_since(start).as_secs())
        .collect();
    assert_eq!(times, vec![0, 60, 180, 420], "rollback attempt times");
    assert_eq!(
        target.creates.load(Ordering::SeqCst),
        1,
        "no new rotation while the rollback is owed"
    );
    // The target is back: the next try (at 900 s) settles the rollback, then the rotation
    // is retried and succeeds.
    target.unreachable.store(false, Ordering::SeqCst);
    advance_to(&r.clock, at(base(), 16 * 60)).await;
    assert!(r.engine.store().owed_rollbacks().await.unwrap().is_empty());
    assert!(
        r.current("down").await.is_some(),
        "rotated once the target came back"
    );
    assert_eq!(r.metrics.failures("down"), 1, "one rotation ended failed");
    r.stop().await;
}

/// Issue 15 item 3: contention is not failure. Another live process (on another host, so
/// presumed alive) holds a rotation's lease: the daemon's start-up resume and its retries
/// meet "busy" until the lease expires, then it takes over and finishes. Nothing counts in
/// `secret_rotation_failures_total`, and no `failed` notification goes out.
#[tokio::test(start_paused = true)]
async fn contention_is_not_counted_as_failure() {
    let toml = r#"
[server]
retry_backoff = "10s"

[secrets.shared]
kind = "command"
command = ["/bin/true"]
rotate_every = "30d"
automation = "automatic"
"#;
    let target = Arc::new(common::FakeTarget::default());
    let seed = async |e: &Engine| {
        let now = base();
        let rot = Rotation {
            id: RotationId::generate(),
            secret: SecretName::new("shared").unwrap(),
            trigger: Trigger::Schedule,
            actor: "rotor".into(),
            reason: None,
            emergency: false,
            evict: true,
            status: RotationStatus::Running,
            step: Step::Create,
            step_done: false,
            attempts: 0,
            error: None,
            pending_version: None,
            previous_version: None,
            started_at: now,
            updated_at: now,
            activate_after: None,
            rollback_owed: false,
            retire_after: None,
            lease: Some(rotor_core::rotation::Lease {
                owner: "another-host:4242:7".into(),
                token: 1,
                expires_at: at(now, 120),
            }),
        };
        e.store()
            .apply(Change::new().op(Op::BeginRotation(Box::new(rot))))
            .await
            .unwrap();
    };
    let mut r = run_with(toml, Some(target.clone()), seed).await;
    advance_to(&r.clock, at(base(), 60)).await;
    assert!(
        r.current("shared").await.is_none(),
        "the live holder's lease is respected"
    );
    advance_to(&r.clock, at(base(), 200)).await;
    assert!(
        r.current("shared").await.is_some(),
        "taken over after the lease expired"
    );
    assert_eq!(
        r.metrics.failures("shared"),
        0,
        "busy is contention, not a failure"
    );
    let notes = r.drain_notes();
    assert!(
        !notes.iter().any(|n| n.event == NotifyEvent::Failed),
        "{notes:?}"
    );
    assert!(
        !r.handle
            .schedule_of("shared")
            .is_some_and(|s| s.held_failed)
    );
    r.stop().await;
}

#[tokio::test(start_paused = true)]
async fn resumes_an_interrupted_rotation_at_start_up() {
    let toml = r#"
[secrets.crashed]
kind = "command"
command = ["/bin/true"]
rotate_every = "30d"
automation = "automatic"
"#;
    let target = Arc::new(common::FakeTarget::default());
    // A rotation begun by a process that died (a pid that cannot exist on this host).
    let seed = async |e: &Engine| {
        let owner = rotor_engine::Owner::this_process();
        let host = owner.as_str().split(':').next().unwrap().to_owned();
        let now = base();
        let rot = Rotation {
            id: RotationId::generate(),
            secret: SecretName::new("crashed").unwrap(),
            trigger: Trigger::Schedule,
            actor: "rotor".into(),
            reason: None,
            emergency: false,
            evict: true,
            status: RotationStatus::Running,
            step: Step::Create,
            step_done: false,
            attempts: 0,
            error: None,
            pending_version: None,
            previous_version: None,
            started_at: now,
            updated_at: now,
            activate_after: None,
            rollback_owed: false,
            retire_after: None,
            lease: Some(rotor_core::rotation::Lease {
                owner: format!("{host}:4294967:1"),
                token: 1,
                expires_at: at(now, 300),
            }),
        };
        e.store()
            .apply(Change::new().op(Op::BeginRotation(Box::new(rot))))
            .await
            .unwrap();
    };
    let r = run_with(toml, Some(target.clone()), seed).await;
    advance_to(&r.clock, at(base(), 5)).await;
    let current = r
        .current("crashed")
        .await
        .expect("resumed to a current value");
    assert_eq!(current.created_at, base());
    assert_eq!(
        target.creates.load(Ordering::SeqCst),
        1,
        "resumed, not rotated again"
    );
    let rots = r
        .engine
        .store()
        .rotations(Some(&SecretName::new("crashed").unwrap()), 10)
        .await
        .unwrap();
    assert_eq!(rots.len(), 1);
    assert_eq!(rots[0].status, RotationStatus::Completed);
    let _ = &r.fx;
    r.stop().await;
}

/// Issue 10 item 2: a never-rotated secret waits for its window (it was rotated at serve
/// start on a Tuesday), and a never-rotated manual secret is reported overdue once.
#[tokio::test(start_paused = true)]
async fn first_rotations_wait_for_the_window_and_unknown_ages_are_overdue() {
    let toml = r#"
[secrets.windowed]
kind = "random"
tier = "high"
automation = "automatic"
window = "Sat-Sat 03:00-03:01 Pacific/Kiritimati"

[secrets.vendor-key]
kind = "manual"
tier = "medium"
"#;
    let mut r = run_with(toml, None, async |_: &Engine| {}).await;
    // Saturday 03:00 at UTC+14 is Friday 13:00 UTC.
    let opens: Timestamp = "2025-06-06T13:00:00Z".parse().unwrap();
    let rows = r.engine.status().await.unwrap();
    assert_eq!(rows[0].standing.next_due, opens);
    advance_to(&r.clock, at(opens, -60)).await;
    assert!(
        r.current("windowed").await.is_none(),
        "not before its window"
    );
    advance_to(&r.clock, at(opens, 120)).await;
    let rotated = r.current("windowed").await.expect("rotated in its window");
    assert!(
        rotated.created_at >= opens && rotated.created_at < at(opens, 60),
        "{}",
        rotated.created_at
    );
    let notes = r.drain_notes();
    let overdue: Vec<_> = notes
        .iter()
        .filter(|n| n.event == NotifyEvent::Overdue)
        .collect();
    assert_eq!(overdue.len(), 1, "{notes:?}");
    assert!(
        overdue[0]
            .message
            .contains("no record of it ever being rotated"),
        "{}",
        overdue[0].message
    );
    assert!(overdue[0].message.contains("rotor put vendor-key"));
    r.stop().await;
}

#[tokio::test(start_paused = true)]
async fn probes_on_start_then_hourly_within_a_day_of_due_and_notifies_blocked_once() {
    let toml = r#"
[secrets.ext]
kind = "command"
command = ["/bin/true"]
rotate_every = "10d"
grace = "0s"
automation = "automatic"
"#;
    let target = Arc::new(common::FakeTarget::default());
    target.probe_fails.store(true, Ordering::SeqCst);
    let mut r = run_with(toml, Some(target.clone()), async |e: &Engine| {
        put(e, "ext").await
    })
    .await;
    // On start: probed once, blocked, one notification; the state says so everywhere.
    advance_to(&r.clock, at(base(), 600)).await;
    assert_eq!(
        target.probe_times.lock().unwrap().len(),
        1,
        "probed on start"
    );
    let row = r.engine.status().await.unwrap().remove(0);
    assert_eq!(row.standing.state, rotor_core::SecretState::Blocked);
    assert!(row.standing.blocked);
    assert_eq!(row.standing.hint.as_deref(), Some("rotor probe ext"));
    let notes = r.drain_notes();
    let blocked: Vec<_> = notes
        .iter()
        .filter(|n| n.event == NotifyEvent::Blocked)
        .collect();
    assert_eq!(blocked.len(), 1, "{notes:?}");
    assert!(
        blocked[0]
            .message
            .contains("the fake target is unreachable (start the fake target)"),
        "{}",
        blocked[0].message
    );
    let metrics = Metrics::new().render(&r.engine.status().await.unwrap());
    assert!(
        metrics
            .contains("secret_rotation_blocked{secret=\"ext\",tier=\"none\",kind=\"command\"} 1"),
        "{metrics}"
    );
    // Far from due (due at day 9): no more probes.
    advance_to(&r.clock, at(base(), 7 * 86_400)).await;
    assert_eq!(
        target.probe_times.lock().unwrap().len(),
        1,
        "none far from due"
    );
    // Within a day of due: hourly, and still only one notification for the same blocker.
    let due = r.engine.status().await.unwrap()[0].standing.next_due;
    advance_to(&r.clock, at(due, -(3 * 3600) - 30)).await;
    let n = target.probe_times.lock().unwrap().len();
    assert!(
        (21..=23).contains(&n),
        "hourly within the day before due: {n}"
    );
    assert!(
        r.drain_notes()
            .iter()
            .all(|n| n.event != NotifyEvent::Blocked),
        "no repeat while it stays blocked"
    );
    // Fixed: the next probe clears it.
    target.probe_fails.store(false, Ordering::SeqCst);
    advance_to(&r.clock, at(due, -(3600) - 30)).await;
    let row = r.engine.status().await.unwrap().remove(0);
    assert!(!row.standing.blocked, "cleared by a passing probe");
    assert_ne!(row.standing.state, rotor_core::SecretState::Blocked);
    r.stop().await;
}
