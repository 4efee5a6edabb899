//! The engine's invariants with a real SQLite store and a scripted target (a `Rotator` whose
//! target is an in-memory set of accepted values, so failures can be injected per step).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rotor_core::rotator::{Generated, PlannedStep, StepContext};
use rotor_core::store::Versioned;
use rotor_core::{
    Kind, RotationStatus, Rotator, RotatorError, SecretSpec, SecretValue, Stage, Step,
};
use rotor_engine::{
    Engine, EngineError, EngineOptions, Outcome, RetryPolicy, RotateOptions, Rotators, SystemClock,
};
use rotor_store_sqlite::SqliteStore;

/// A target that accepts a set of values; `fail` scripts errors per step.
#[derive(Debug, Default)]
struct Target {
    accepted: Mutex<BTreeSet<Vec<u8>>>,
    /// (step, transient, how many times)
    fail: Mutex<Vec<(Step, bool, u32)>>,
    calls: Mutex<Vec<Step>>,
    counter: Mutex<u32>,
}

impl Target {
    fn script(&self, step: Step, transient: bool, times: u32) {
        self.fail
            .lock()
            .expect("lock")
            .push((step, transient, times));
    }
    fn check(&self, step: Step) -> Result<(), RotatorError> {
        self.calls.lock().expect("lock").push(step);
        let mut fail = self.fail.lock().expect("lock");
        if let Some(f) = fail.iter_mut().find(|f| f.0 == step && f.2 > 0) {
            f.2 -= 1;
            return Err(if f.1 {
                RotatorError::transient(format!("target unreachable during {step}"))
            } else {
                RotatorError::permanent(format!("target refused {step}"))
            });
        }
        Ok(())
    }
    fn accepts(&self, v: &SecretValue) -> bool {
        self.accepted.lock().expect("lock").contains(v.expose())
    }
}

#[derive(Debug)]
struct Scripted(Arc<Target>);

#[async_trait]
impl Rotator for Scripted {
    fn kind(&self) -> Kind {
        Kind::Command
    }
    fn plan(&self, _spec: &SecretSpec) -> Vec<PlannedStep> {
        Vec::new()
    }
    async fn create(&self, _ctx: &StepContext<'_>) -> Result<Generated, RotatorError> {
        self.0.check(Step::Create)?;
        let mut n = self.0.counter.lock().expect("lock");
        *n += 1;
        Ok(Generated {
            value: SecretValue::new(format!("value-{n}").into_bytes()),
            metadata: serde_json::json!({ "n": *n }),
        })
    }
    async fn set(&self, _ctx: &StepContext<'_>, pending: &Versioned) -> Result<(), RotatorError> {
        self.0.check(Step::Set)?;
        self.0
            .accepted
            .lock()
            .expect("lock")
            .insert(pending.value.expose().to_vec());
        Ok(())
    }
    async fn test(&self, _ctx: &StepContext<'_>, pending: &Versioned) -> Result<(), RotatorError> {
        self.0.check(Step::Test)?;
        if self.0.accepts(&pending.value) {
            Ok(())
        } else {
            Err(RotatorError::permanent(
                "the target does not accept the value",
            ))
        }
    }
    async fn retire(
        &self,
        _ctx: &StepContext<'_>,
        previous: &Versioned,
    ) -> Result<(), RotatorError> {
        self.0.check(Step::Retire)?;
        self.0
            .accepted
            .lock()
            .expect("lock")
            .remove(previous.value.expose());
        Ok(())
    }
    async fn rollback(
        &self,
        _ctx: &StepContext<'_>,
        pending: &Versioned,
    ) -> Result<(), RotatorError> {
        self.0
            .accepted
            .lock()
            .expect("lock")
            .remove(pending.value.expose());
        Ok(())
    }
}

const CONFIG: &str = r#"
[secrets.svc]
kind = "command"
command = ["/bin/true"]
rotate_every = "30d"
grace = "1h"

[secrets.fast]
kind = "command"
command = ["/bin/true"]
rotate_every = "30d"
grace = "0s"
"#;

struct Fixture {
    _dir: tempfile::TempDir,
    target: Arc<Target>,
    engine: Engine,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rotor.toml");
    let config = rotor_core::config::parse(CONFIG, &path, &|_| None).expect("config");
    let store = SqliteStore::create(
        &dir.path().join("rotor.db"),
        rotor_seal::MasterKey::generate().expect("key"),
        "test",
    )
    .expect("store");
    let target = Arc::new(Target::default());
    let mut opts = EngineOptions::new("tester");
    opts.retry = RetryPolicy {
        attempts: 3,
        base: std::time::Duration::from_millis(1),
        max: std::time::Duration::from_millis(4),
    };
    let engine = Engine::new(
        Arc::new(store),
        Arc::new(config),
        Rotators::new().with(Arc::new(Scripted(target.clone()))),
        Arc::new(SystemClock),
        opts,
    );
    Fixture {
        _dir: dir,
        target,
        engine,
    }
}

async fn current(engine: &Engine, name: &str) -> Option<Versioned> {
    let secret = rotor_core::SecretName::new(name).expect("name");
    engine
        .store()
        .read_stage(&secret, Stage::Current)
        .await
        .expect("read")
}

async fn actions(engine: &Engine) -> Vec<(String, String)> {
    engine
        .store()
        .audit_all()
        .await
        .expect("audit")
        .into_iter()
        .map(|r| (r.event.action, r.event.outcome))
        .collect()
}

#[tokio::test]
async fn a_rotation_runs_every_step_in_order() {
    let f = fixture();
    let out = f
        .engine
        .rotate("svc", &RotateOptions::default())
        .await
        .expect("rotate");
    // The first rotation has no previous: it completes at once.
    assert!(matches!(out, Outcome::Completed { .. }), "{out:?}");
    let first = current(&f.engine, "svc").await.expect("current");
    assert!(f.target.accepts(&first.value));
    let out = f
        .engine
        .rotate("svc", &RotateOptions::default())
        .await
        .expect("rotate");
    assert!(matches!(out, Outcome::InGrace { .. }), "{out:?}");
    // During grace the target accepts both values.
    let second = current(&f.engine, "svc").await.expect("current");
    assert!(f.target.accepts(&first.value) && f.target.accepts(&second.value));
    assert_eq!(
        *f.target.calls.lock().expect("lock"),
        vec![
            Step::Create,
            Step::Set,
            Step::Test,
            Step::Create,
            Step::Set,
            Step::Test
        ]
    );
    rotor_core::audit::verify_chain(&f.engine.store().audit_all().await.expect("audit"))
        .expect("chain");
}

#[tokio::test]
async fn transient_errors_are_retried_with_backoff() {
    let f = fixture();
    f.target.script(Step::Set, true, 2);
    f.engine
        .rotate("svc", &RotateOptions::default())
        .await
        .expect("succeeds on the third try");
    let sets = f
        .target
        .calls
        .lock()
        .expect("lock")
        .iter()
        .filter(|s| **s == Step::Set)
        .count();
    assert_eq!(sets, 3);
}

#[tokio::test]
async fn a_failed_step_rolls_back_and_keeps_current() {
    let f = fixture();
    f.engine
        .rotate("fast", &RotateOptions::default())
        .await
        .expect("first");
    let before = current(&f.engine, "fast").await.expect("current");
    // Permanent failure at test: no retry, rollback, failed.
    f.target.script(Step::Test, false, 1);
    let err = f
        .engine
        .rotate("fast", &RotateOptions::default())
        .await
        .expect_err("fails");
    match &err {
        EngineError::Step {
            step, rolled_back, ..
        } => {
            assert_eq!(*step, Step::Test);
            assert!(*rolled_back);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string().contains("current value is unchanged"),
        "{err}"
    );
    let after = current(&f.engine, "fast").await.expect("current");
    assert_eq!(after.meta.id, before.meta.id, "current unchanged");
    assert!(f.target.accepts(&before.value), "current still works");
    assert_eq!(
        f.target.accepted.lock().expect("lock").len(),
        1,
        "pending rolled back on the target"
    );
    let secret = rotor_core::SecretName::new("fast").expect("name");
    assert!(
        f.engine
            .store()
            .read_stage(&secret, Stage::Pending)
            .await
            .expect("read")
            .is_none()
    );
    let rot = &f
        .engine
        .store()
        .rotations(Some(&secret), 1)
        .await
        .expect("rotations")[0];
    assert_eq!(rot.status, RotationStatus::Failed);
    assert!(
        rot.error
            .as_deref()
            .is_some_and(|e| e.contains("target refused test"))
    );
    assert!(
        actions(&f.engine)
            .await
            .iter()
            .any(|(a, o)| a == "rotation.failed" && o.contains("target refused test"))
    );
    // Status says failed until a rotation succeeds.
    let rows = f.engine.status().await.expect("status");
    assert_eq!(
        rows.iter()
            .find(|r| r.name.as_str() == "fast")
            .map(|r| r.standing.state),
        Some(rotor_core::SecretState::Failed)
    );
    f.engine
        .rotate("fast", &RotateOptions::default())
        .await
        .expect("a later rotation works");
}

#[tokio::test]
async fn transient_errors_give_up_after_the_bound() {
    let f = fixture();
    f.target.script(Step::Set, true, 100);
    let err = f
        .engine
        .rotate("svc", &RotateOptions::default())
        .await
        .expect_err("gives up");
    assert!(
        matches!(
            err,
            EngineError::Step {
                step: Step::Set,
                ..
            }
        ),
        "{err:?}"
    );
    let sets = f
        .target
        .calls
        .lock()
        .expect("lock")
        .iter()
        .filter(|s| **s == Step::Set)
        .count();
    assert_eq!(sets, 3, "bounded: attempts = 3");
}

#[tokio::test]
async fn retire_keeps_previous_when_current_fails_its_test() {
    let f = fixture();
    f.engine
        .rotate("fast", &RotateOptions::default())
        .await
        .expect("first");
    let first = current(&f.engine, "fast").await.expect("current");
    // Fail the retire step itself permanently.
    f.target.script(Step::Retire, false, 1);
    let err = f
        .engine
        .rotate("fast", &RotateOptions::default())
        .await
        .expect_err("retire fails");
    assert!(
        matches!(
            err,
            EngineError::Step {
                step: Step::Retire,
                rolled_back: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        f.target.accepts(&first.value),
        "previous still accepted: nothing half-done"
    );
    let secret = rotor_core::SecretName::new("fast").expect("name");
    let rot = &f
        .engine
        .store()
        .rotations(Some(&secret), 1)
        .await
        .expect("rotations")[0];
    assert_eq!(
        rot.status,
        RotationStatus::Grace,
        "stays in grace for a later retire"
    );
    // retire --due tries again and completes.
    let results = f.engine.retire_due().await.expect("retire due");
    assert!(results.iter().all(|(_, r)| r.is_ok()), "{results:?}");
    assert!(!f.target.accepts(&first.value));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_rotation_per_secret_at_a_time() {
    let f = fixture();
    // The first rotation completes at once (no previous); the next ones race. With a grace of
    // 1h, a rotation that starts after the winner finished is refused too (grace not over), so
    // exactly one of the racers may win, whatever the interleaving.
    f.engine
        .rotate("svc", &RotateOptions::default())
        .await
        .expect("first");
    let engine = Arc::new(f.engine);
    let opts = RotateOptions::default();
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let engine = engine.clone();
            let opts = opts.clone();
            tokio::spawn(async move { engine.rotate("svc", &opts).await })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        match t.await.expect("join") {
            Ok(_) => wins += 1,
            Err(EngineError::Store(rotor_core::StoreError::Busy { .. }))
            | Err(EngineError::GraceNotOver { .. }) => {}
            Err(other) => panic!("unexpected: {other:?}"),
        }
    }
    assert_eq!(wins, 1);
    let secret = rotor_core::SecretName::new("svc").expect("name");
    let versions = engine.store().versions(&secret).await.expect("versions");
    assert_eq!(versions.iter().filter(|v| v.has(Stage::Current)).count(), 1);
    assert_eq!(versions.iter().filter(|v| v.has(Stage::Pending)).count(), 0);
}

#[tokio::test]
async fn confirmation_and_unknown_names() {
    let f = fixture();
    let err = f
        .engine
        .rotate("svx", &RotateOptions::default())
        .await
        .expect_err("unknown");
    assert!(err.to_string().contains("did you mean \"svc\""), "{err}");
}

/// `status()` keeps the store's summaries while the audit head stays put: a change made by
/// another process (here a second handle on the same file, as a CLI `rotor rotate` beside
/// `rotor serve`) still shows at the next call, and so does one of its own.
#[tokio::test]
async fn status_sees_changes_made_by_another_handle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Arc::new(
        rotor_core::config::parse(CONFIG, &dir.path().join("rotor.toml"), &|_| None)
            .expect("config"),
    );
    let db = dir.path().join("rotor.db");
    let key = rotor_seal::MasterKey::generate().expect("key");
    let encoded = key.encode();
    let copy = || {
        rotor_seal::MasterKey::from_encoded(secrecy::ExposeSecret::expose_secret(&encoded))
            .expect("same key")
    };
    drop(SqliteStore::create(&db, key, "test").expect("store"));
    let target = Arc::new(Target::default());
    let engine = |store: SqliteStore| {
        Engine::new(
            Arc::new(store),
            config.clone(),
            Rotators::new().with(Arc::new(Scripted(target.clone()))),
            Arc::new(SystemClock),
            EngineOptions::new("tester"),
        )
    };
    let serve = engine(SqliteStore::open(&db, copy()).expect("open"));
    let cli = engine(SqliteStore::open(&db, copy()).expect("open"));
    let current_of = |rows: &[rotor_engine::StatusRow]| {
        rows.iter()
            .find(|r| r.name.as_str() == "fast")
            .and_then(|r| r.current.clone())
    };

    assert_eq!(current_of(&serve.status().await.expect("status")), None);
    assert_eq!(
        current_of(&serve.status().await.expect("status again")),
        None
    );
    cli.rotate("fast", &RotateOptions::default())
        .await
        .expect("rotate by the other handle");
    let theirs = current(&cli, "fast").await.expect("current").meta.id;
    assert_eq!(
        current_of(&serve.status().await.expect("status")),
        Some(theirs.clone())
    );
    serve
        .rotate("fast", &RotateOptions::default())
        .await
        .expect("rotate by this handle");
    let ours = current(&serve, "fast").await.expect("current").meta.id;
    assert_ne!(ours, theirs);
    assert_eq!(
        current_of(&serve.status().await.expect("status")),
        Some(ours)
    );
}
