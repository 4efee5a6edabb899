//! Shared helpers: a real moto server, a SQLite ledger, and boto3 as the outside reader.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::retry::RetryConfig;
use aws_sdk_secretsmanager::config::timeout::TimeoutConfig;
use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use jiff::Timestamp;
use rotor_core::audit::AuditEvent;
use rotor_core::rotation::{Lease, Trigger};
use rotor_core::store::{Change, Fence, NewVersion, Op};
use rotor_core::{
    Rotation, RotationId, RotationStatus, SecretName, SecretValue, Step, Store, VersionId,
};
use rotor_seal::MasterKey;
use rotor_store_aws::{AwsSettings, AwsStore};
use rotor_store_sqlite::SqliteStore;
use rotor_test_support::Moto;
use rotor_test_support::store_contract::{ACTOR, StoreFactory, Subject, sqlite_files, sqlite_rows};

pub fn name(s: &str) -> SecretName {
    SecretName::new(s).expect("valid name")
}

pub fn start_moto() -> Moto {
    Moto::start().expect("moto must start (run scripts/install-deps)")
}

/// A client for `endpoint` with moto's dummy static credentials and fast retries.
pub fn client(endpoint: &str, region: &str) -> Client {
    client_with_timeout(endpoint, region, Duration::from_secs(10))
}

/// As [`client`], with `timeout` for each call (attempt included).
pub fn client_with_timeout(endpoint: &str, region: &str, timeout: Duration) -> Client {
    let conf = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(2)
                .with_initial_backoff(Duration::from_millis(20)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_timeout(timeout)
                .build(),
        )
        .build();
    Client::from_conf(conf)
}

pub struct Rig {
    pub _dir: tempfile::TempDir,
    pub ledger: Arc<SqliteStore>,
    pub store: AwsStore,
}

pub fn rig(endpoint: &str, region: &str, settings: AwsSettings) -> Rig {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = Arc::new(
        SqliteStore::create(
            &dir.path().join("ledger.db"),
            MasterKey::generate().expect("key"),
            "test",
        )
        .expect("ledger"),
    );
    let store = AwsStore::new(ledger.clone(), client(endpoint, region), settings);
    Rig {
        _dir: dir,
        ledger,
        store,
    }
}

/// Fresh AWS stores for the store contract: one moto server per test (started by
/// [`Aws::start`]), each store under its own prefix there with its own SQLite ledger, whose
/// rows are the store's raw rows (AWS holds the values in plaintext by design; the ledger
/// must not).
pub struct Aws {
    moto: Moto,
    made: std::sync::atomic::AtomicUsize,
}

impl Aws {
    pub fn start() -> Aws {
        Aws {
            moto: start_moto(),
            made: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

impl StoreFactory for Aws {
    fn kind(&self) -> &str {
        "aws"
    }

    async fn fresh(&self) -> Subject {
        let n = self.made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ledger.db");
        let ledger =
            SqliteStore::create(&path, MasterKey::generate().expect("key"), ACTOR).expect("ledger");
        let store = AwsStore::new(
            Arc::new(ledger),
            client(&self.moto.endpoint_url(), self.moto.region()),
            settings(&format!("contract-{n}/")),
        );
        let files = path.clone();
        Subject::new(Arc::new(store), dir)
            .with_rows(move || sqlite_rows(&path))
            .with_files(move || sqlite_files(&files))
    }
}

pub fn settings(prefix: &str) -> AwsSettings {
    AwsSettings {
        prefix: prefix.to_owned(),
        ..AwsSettings::default()
    }
}

pub fn new_version(secret: &SecretName, id: &VersionId, value: &[u8]) -> NewVersion {
    NewVersion {
        secret: secret.clone(),
        id: id.clone(),
        created_by: "test".into(),
        created_at: Timestamp::now(),
        metadata: serde_json::json!({}),
        value: SecretValue::from_slice(value),
    }
}

/// `rotor put`: insert and promote in one change.
pub async fn put(store: &dyn Store, secret: &SecretName, value: &[u8]) -> VersionId {
    let id = VersionId::generate();
    store
        .apply(
            Change::new()
                .op(Op::InsertVersion {
                    version: new_version(secret, &id, value),
                    stage: None,
                })
                .op(Op::Promote {
                    secret: secret.clone(),
                    version: id.clone(),
                })
                .audit(
                    AuditEvent::new("test", "secret.put")
                        .secret(secret)
                        .version(&id),
                ),
        )
        .await
        .expect("put");
    id
}

/// A rotation as the engine drives it: begin (lease token 1), then fenced step commits.
pub struct Rot {
    pub rot: Rotation,
}

impl Rot {
    pub async fn begin(store: &dyn Store, secret: &SecretName) -> Rot {
        Self::begin_result(store, secret).await.expect("begin")
    }

    pub async fn begin_result(
        store: &dyn Store,
        secret: &SecretName,
    ) -> Result<Rot, rotor_core::StoreError> {
        // As the engine does: the rotation records the current it starts from.
        let previous_version = store
            .read_stage(secret, rotor_core::Stage::Current)
            .await?
            .map(|v| v.meta.id);
        let now = Timestamp::now();
        let rot = Rotation {
            id: RotationId::generate(),
            secret: secret.clone(),
            trigger: Trigger::Manual,
            actor: "test".into(),
            reason: None,
            emergency: false,
            evict: true,
            status: RotationStatus::Running,
            step: Step::Create,
            step_done: false,
            attempts: 0,
            error: None,
            pending_version: None,
            previous_version,
            started_at: now,
            updated_at: now,
            activate_after: None,
            rollback_owed: false,
            retire_after: None,
            lease: Some(Lease {
                owner: "test:1:x".into(),
                token: 1,
                expires_at: now + jiff::SignedDuration::from_secs(600),
            }),
        };
        store
            .apply(
                Change::new()
                    .op(Op::BeginRotation(Box::new(rot.clone())))
                    .audit(AuditEvent::new("test", "rotation.begin").secret(secret)),
            )
            .await?;
        Ok(Rot { rot })
    }

    fn change(&self, ops: Vec<Op>, action: &str) -> Change {
        let mut c = Change::fenced(Fence {
            rotation: self.rot.id.clone(),
            token: 1,
        });
        c.ops = ops;
        c.ops.push(Op::SaveRotation(Box::new(self.rot.clone())));
        c.audit(
            AuditEvent::new("test", action)
                .secret(&self.rot.secret)
                .rotation(&self.rot.id),
        )
    }

    /// The create step's commit: the new value as pending.
    pub fn create_change(&mut self, id: &VersionId, value: &[u8]) -> Change {
        self.rot.pending_version = Some(id.clone());
        self.rot.step = Step::Set;
        let secret = self.rot.secret.clone();
        self.change(
            vec![Op::InsertVersion {
                version: new_version(&secret, id, value),
                stage: Some(rotor_core::Stage::Pending),
            }],
            "rotation.create",
        )
    }

    /// A step commit that changes no stage (set, test, resume).
    pub fn save_change(&mut self) -> Change {
        self.change(Vec::new(), "rotation.resume")
    }

    /// The finish step's commit.
    pub fn finish_change(&mut self, id: &VersionId) -> Change {
        self.rot.status = RotationStatus::Grace;
        self.rot.step = Step::Finish;
        self.rot.step_done = true;
        self.change(
            vec![Op::Promote {
                secret: self.rot.secret.clone(),
                version: id.clone(),
            }],
            "rotation.finish",
        )
    }

    /// The retire step's commit.
    pub fn retire_change(&mut self, previous: &VersionId) -> Change {
        self.rot.status = RotationStatus::Completed;
        self.rot.step = Step::Retire;
        self.change(
            vec![Op::ClearStage {
                secret: self.rot.secret.clone(),
                stage: rotor_core::Stage::Previous,
                version: previous.clone(),
            }],
            "rotation.retire",
        )
    }
}

/// What boto3 (a client nobody here wrote) sees of an AWS secret.
#[derive(Debug)]
pub struct View {
    /// version id → its staging labels (sorted), deprecated versions included.
    pub versions: BTreeMap<String, Vec<String>>,
    /// label → (version id, SecretString) from `get_secret_value(VersionStage=label)`.
    pub stages: BTreeMap<String, (String, String)>,
    /// `describe_secret` Name.
    pub name: String,
}

impl View {
    pub fn holders(&self, label: &str) -> Vec<&str> {
        self.versions
            .iter()
            .filter(|(_, ls)| ls.iter().any(|l| l == label))
            .map(|(id, _)| id.as_str())
            .collect()
    }

    /// `label` is on exactly `want` (or on nothing), and reading by that stage returns it
    /// with `value`.
    #[track_caller]
    pub fn expect(&self, label: &str, want: Option<(&VersionId, &str)>) {
        match want {
            None => {
                assert!(
                    self.holders(label).is_empty(),
                    "{label} should be on no version: {self:#?}"
                );
                assert!(
                    !self.stages.contains_key(label),
                    "{label} readable: {self:#?}"
                );
            }
            Some((id, value)) => {
                assert_eq!(self.holders(label), vec![id.as_str()], "{label}: {self:#?}");
                let (got_id, got_value) = self.stages.get(label).expect("stage readable");
                assert_eq!(
                    got_id,
                    id.as_str(),
                    "{label} read returns the wrong version"
                );
                assert_eq!(got_value, value, "{label} read returns the wrong value");
            }
        }
    }
}

const BOTO3_VIEW: &str = r#"
import json, sys, boto3
c = boto3.client("secretsmanager")
sid = sys.argv[1]
try:
    d = c.describe_secret(SecretId=sid)
except c.exceptions.ResourceNotFoundException:
    print(json.dumps(None)); sys.exit(0)
versions = {}
for v in c.list_secret_version_ids(SecretId=sid, IncludeDeprecated=True)["Versions"]:
    versions[v["VersionId"]] = sorted(v.get("VersionStages", []))
stages = {}
for st in ["AWSCURRENT", "AWSPENDING", "AWSPREVIOUS"]:
    try:
        r = c.get_secret_value(SecretId=sid, VersionStage=st)
        stages[st] = [r["VersionId"], r.get("SecretString")]
    except c.exceptions.ResourceNotFoundException:
        pass
print(json.dumps({"name": d["Name"], "versions": versions, "stages": stages}))
"#;

/// Runs a Python snippet with boto3 against moto; returns stdout.
pub fn boto3(moto: &Moto, script: &str, args: &[&str]) -> String {
    let py = rotor_test_support::python().expect("the test venv's python (scripts/install-deps)");
    let out = std::process::Command::new(py)
        .arg("-c")
        .arg(script)
        .args(args)
        .envs(moto.aws_env())
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "boto3 script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// boto3's view of `secret_id`, `None` when the secret does not exist.
pub fn view(moto: &Moto, secret_id: &str) -> Option<View> {
    let out = boto3(moto, BOTO3_VIEW, &[secret_id]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    if v.is_null() {
        return None;
    }
    let versions = v["versions"]
        .as_object()
        .expect("versions")
        .iter()
        .map(|(k, ls)| {
            let ls = ls
                .as_array()
                .expect("labels")
                .iter()
                .map(|l| l.as_str().expect("label").to_owned())
                .collect();
            (k.clone(), ls)
        })
        .collect();
    let stages = v["stages"]
        .as_object()
        .expect("stages")
        .iter()
        .map(|(k, pair)| {
            (
                k.clone(),
                (
                    pair[0].as_str().expect("id").to_owned(),
                    pair[1].as_str().unwrap_or("").to_owned(),
                ),
            )
        })
        .collect();
    Some(View {
        versions,
        stages,
        name: v["name"].as_str().expect("name").to_owned(),
    })
}
