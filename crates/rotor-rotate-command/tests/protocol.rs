//! The command protocol with a real plugin process (`tests/plugins/scripted`, Python):
//! what each step is sent, what exit codes mean, that values never reach argv, the
//! environment or rotor's errors, and that a hung plugin is killed with its children.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rotor_core::rotator::StepContext;
use rotor_core::store::Versioned;
use rotor_core::{Rotator, SecretValue, Stage, VersionId, VersionMeta};
use rotor_rotate_command::CommandRotator;

struct Case {
    dir: tempfile::TempDir,
    config: rotor_core::Config,
}

fn plugin() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/plugins/scripted")
}

fn case(mode: &str, extra: &str, timeout: &str) -> Case {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        r#"
[secrets.vendor]
kind = "command"
command = [{plugin:?}, "--flag"]
timeout = "{timeout}"
rotate_every = "30d"
grace = "1h"
settings = {{ dir = {dir:?}, mode = "{mode}"{extra} }}
"#,
        plugin = plugin().display().to_string(),
        dir = dir.path().display().to_string(),
    );
    let config =
        rotor_core::config::parse(&text, Path::new("rotor.toml"), &|_| None).expect("config");
    Case { dir, config }
}

fn version(value: &str, stage: Stage, username: &str) -> Versioned {
    Versioned {
        meta: VersionMeta {
            id: VersionId::generate(),
            secret: rotor_core::SecretName::new("vendor").expect("name"),
            created_at: jiff::Timestamp::now(),
            created_by: "test".into(),
            metadata: serde_json::json!({ "username": username }),
            stages: vec![stage],
        },
        value: SecretValue::from_slice(value.as_bytes()),
    }
}

impl Case {
    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(file)).unwrap_or_default()
    }
    fn request(&self, step: &str) -> serde_json::Value {
        serde_json::from_str(&self.read(&format!("{step}.request"))).expect("request JSON")
    }
}

const CURRENT: &str = "curr-Value-0001";
const PENDING: &str = "pend-Value-0002";

#[tokio::test]
async fn every_step_gets_one_request_with_only_the_values_it_needs() {
    let c = case("ok", "", "20s");
    let spec = c.config.secret("vendor").expect("spec");
    let current = version(CURRENT, Stage::Current, "u0");
    let pending = version(PENDING, Stage::Pending, "u1");
    let ctx = StepContext {
        spec,
        current: Some(&current),
        admin: None,
        emergency: false,
    };
    let r = CommandRotator::new();

    let made = r.create(&ctx).await.expect("create");
    // No value from the plugin: rotor drew 32 alphanumerics; metadata is the plugin's.
    let drawn = made.value.expose_str().expect("utf8");
    assert_eq!(drawn.len(), 32);
    assert!(drawn.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(made.metadata["username"], "u1");
    let create = c.request("create");
    assert_eq!(create["protocol"], 1);
    assert_eq!(create["step"], "create");
    assert_eq!(create["secret"], "vendor");
    assert_eq!(create["settings"]["mode"], "ok");
    assert_eq!(create["current"]["metadata"]["username"], "u0");
    assert!(
        create["current"].get("value").is_none(),
        "create needs no value"
    );

    r.set(&ctx, &pending).await.expect("set");
    r.test(&ctx, &pending).await.expect("test");
    r.finish(&ctx, &pending).await.expect("finish");
    r.rollback(&ctx, &pending).await.expect("rollback");
    let set = c.request("set");
    assert_eq!(set["pending"]["value"], PENDING);
    assert_eq!(set["pending"]["version"], pending.meta.id.to_string());
    assert_eq!(set["current"]["value"], CURRENT);
    let test = c.request("test");
    assert_eq!(test["pending"]["value"], PENDING);
    assert!(test["current"].get("value").is_none());
    assert_eq!(c.request("finish")["pending"]["value"], PENDING);
    assert_eq!(c.request("rollback")["pending"]["value"], PENDING);

    let new_current = version(PENDING, Stage::Current, "u1");
    let previous = version(CURRENT, Stage::Previous, "u0");
    let after = StepContext {
        current: Some(&new_current),
        emergency: true,
        ..ctx
    };
    r.retire(&after, &previous).await.expect("retire");
    assert_eq!(r.evict(&after, &previous).await.expect("evict").ended, 3);
    let retire = c.request("retire");
    assert_eq!(retire["previous"]["value"], CURRENT);
    assert_eq!(retire["current"]["value"], PENDING);
    assert_eq!(c.request("evict")["emergency"], true);
    let checks = r.probe(&after).await.expect("probe");
    assert_eq!(checks, ["target reachable", "current <redacted> accepted"]);

    // Values travel on stdin only: never in argv or the environment of any step.
    for step in [
        "create", "set", "test", "finish", "retire", "rollback", "evict", "probe",
    ] {
        let argv = c.read(&format!("{step}.argv"));
        let env = c.read(&format!("{step}.env"));
        assert!(argv.contains("--flag"), "{argv}");
        assert!(
            env.contains(&format!("\"ROTOR_STEP\": \"{step}\"")),
            "{env}"
        );
        for v in [CURRENT, PENDING, drawn] {
            assert!(
                !argv.contains(v) && !env.contains(v),
                "{step}: a value in argv/env"
            );
        }
    }
}

#[tokio::test]
async fn a_value_from_the_plugin_is_used() {
    let c = case("ok", r#", plugin_value = "vendor-made-key""#, "20s");
    let spec = c.config.secret("vendor").expect("spec");
    let ctx = StepContext {
        spec,
        current: None,
        admin: None,
        emergency: false,
    };
    let made = CommandRotator::new().create(&ctx).await.expect("create");
    assert_eq!(made.value.expose(), b"vendor-made-key");
    assert!(c.request("create").get("current").is_none());
}

async fn set_error(mode: &str, timeout: &str) -> rotor_core::RotatorError {
    let c = case(mode, "", timeout);
    let spec = c.config.secret("vendor").expect("spec");
    let current = version(CURRENT, Stage::Current, "u0");
    let pending = version(PENDING, Stage::Pending, "u1");
    let ctx = StepContext {
        spec,
        current: Some(&current),
        admin: None,
        emergency: false,
    };
    CommandRotator::new()
        .set(&ctx, &pending)
        .await
        .expect_err("the step fails")
}

#[tokio::test]
async fn exit_75_is_transient_and_its_error_is_redacted() {
    let e = set_error("transient", "20s").await;
    assert!(e.transient, "{e}");
    let shown = e.to_string();
    assert!(shown.contains("exit 75"), "{shown}");
    assert!(
        shown.contains("target busy while setting <redacted>"),
        "{shown}"
    );
    assert_eq!(e.fix.as_deref(), Some("wait"));
    assert!(!shown.contains(PENDING), "{shown}");
}

#[tokio::test]
async fn another_exit_code_is_permanent() {
    let e = set_error("permanent", "20s").await;
    assert!(!e.transient, "{e}");
    assert!(e.to_string().contains("exit 3"), "{e}");
    assert!(e.to_string().contains("refused <redacted>"), "{e}");
}

#[tokio::test]
async fn non_json_stdout_is_a_permanent_error_that_does_not_quote_it() {
    let e = set_error("garbage", "20s").await;
    assert!(!e.transient, "{e}");
    assert!(e.to_string().contains("not a JSON response"), "{e}");
    assert!(!e.to_string().contains(PENDING), "{e}");
}

#[tokio::test]
async fn a_hung_plugin_is_killed_at_its_timeout_with_its_children() {
    let started = Instant::now();
    let e = set_error("hang", "1s").await;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert!(e.transient, "a timeout is retried: {e}");
    assert!(e.to_string().contains("did not answer within 1s"), "{e}");
    // The plugin's `sleep 300` child died with it (SIGKILL is delivered at once; init may
    // take a moment to reap it).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = plugin_children();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "children of the plugin survived: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Live `sleep 300` processes started by the scripted plugin (its environment says so).
fn plugin_children() -> Vec<u32> {
    let out = std::process::Command::new("pgrep")
        .args(["-f", "^sleep 300$"])
        .output()
        .expect("pgrep");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .filter(|pid: &u32| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            !stat.contains(") Z ")
                && std::fs::read_to_string(format!("/proc/{pid}/environ"))
                    .is_ok_and(|e| e.contains("ROTOR_SECRET=vendor"))
        })
        .collect()
}
