//! AwsStore against a real moto server, checked from outside with boto3.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::*;
use rotor_core::store::{Change, Op};
use rotor_core::{Stage, Store, VersionId};
use rotor_store_aws::{AwsSettings, AwsStore, AwsValueFormat, ReadPolicy};
use rotor_test_support::TcpProxy;

/// Three rotations in a row, each step as the engine commits it; after every step boto3
/// must see AWSPENDING/AWSCURRENT/AWSPREVIOUS exactly where AWS's rotation docs put them,
/// on version ids equal to rotor's (the ClientRequestTokens).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_rotations_stage_lifecycle_seen_by_boto3() {
    let moto = start_moto();
    let rig = rig(&moto.endpoint_url(), moto.region(), settings("divan/prod/"));
    let store = &rig.store;
    let s = name("jwt-signing");
    let sid = "divan/prod/jwt-signing";

    let v0 = put(store, &s, b"value-0").await;
    let view0 = view(&moto, sid).expect("secret created");
    view0.expect("AWSCURRENT", Some((&v0, "value-0")));
    view0.expect("AWSPENDING", None);
    view0.expect("AWSPREVIOUS", None);

    let mut old = v0;
    for i in 1..=3 {
        let value = format!("value-{i}");
        let mut rot = Rot::begin(store, &s).await;
        let new = VersionId::generate();

        store
            .apply(rot.create_change(&new, value.as_bytes()))
            .await
            .expect("create");
        let v = view(&moto, sid).expect("secret");
        v.expect("AWSPENDING", Some((&new, &value)));
        v.expect("AWSCURRENT", Some((&old, &format!("value-{}", i - 1))));
        v.expect("AWSPREVIOUS", None);

        store.apply(rot.save_change()).await.expect("set/test step");

        store.apply(rot.finish_change(&new)).await.expect("finish");
        let v = view(&moto, sid).expect("secret");
        v.expect("AWSCURRENT", Some((&new, &value)));
        v.expect("AWSPREVIOUS", Some((&old, &format!("value-{}", i - 1))));
        v.expect("AWSPENDING", None);

        // rotor reads through the store name the stage and agree with AWS.
        let cur = store
            .read_stage(&s, Stage::Current)
            .await
            .expect("read")
            .expect("current");
        assert_eq!(cur.meta.id, new);
        assert_eq!(cur.value.expose(), value.as_bytes());

        store.apply(rot.retire_change(&old)).await.expect("retire");
        let v = view(&moto, sid).expect("secret");
        v.expect("AWSCURRENT", Some((&new, &value)));
        v.expect("AWSPREVIOUS", None);
        v.expect("AWSPENDING", None);
        assert!(
            v.versions[old.as_str()].is_empty(),
            "retired version keeps no label"
        );
        assert_eq!(v.versions.len(), i + 1, "one AWS version per rotor version");
        old = new;
    }

    // Every rotor version id is an AWS version id.
    let v = view(&moto, sid).expect("secret");
    for meta in store.versions(&s).await.expect("versions") {
        assert!(
            v.versions.contains_key(meta.id.as_str()),
            "{} missing in AWS",
            meta.id
        );
    }
    assert!(store.sync(&s).await.expect("sync").was_in_sync());
    // The audit log lives in the ledger.
    assert!(store.audit_all().await.expect("audit").len() > 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_names_the_aws_secret() {
    let moto = start_moto();
    let rig = rig(&moto.endpoint_url(), moto.region(), settings("divan/prod/"));
    let s = name("jwt-signing");
    assert_eq!(rig.store.aws_secret_id(&s), "divan/prod/jwt-signing");
    let v1 = put(&rig.store, &s, b"k1").await;
    let v = view(&moto, "divan/prod/jwt-signing").expect("prefixed secret exists");
    assert_eq!(v.name, "divan/prod/jwt-signing");
    v.expect("AWSCURRENT", Some((&v1, "k1")));
    assert!(view(&moto, "jwt-signing").is_none(), "no unprefixed secret");
}

/// AWS's documented database-credentials JSON, read by boto3 with `json.loads`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_kind_is_aws_database_json() {
    let moto = start_moto();
    let mut st = settings("divan/prod/");
    st.formats = BTreeMap::from([(
        "app-db".to_owned(),
        AwsValueFormat::PostgresJson {
            host: "db.divan.internal".into(),
            port: 5432,
            dbname: "divan".into(),
        },
    )]);
    let rig = rig(&moto.endpoint_url(), moto.region(), st);
    let s = name("app-db");
    put(
        &rig.store,
        &s,
        br#"{"username":"divan_app","password":"pw-0"}"#,
    )
    .await;
    let mut rot = Rot::begin(&rig.store, &s).await;
    let new = VersionId::generate();
    rig.store
        .apply(rot.create_change(&new, br#"{"username":"divan_app","password":"pw-1"}"#))
        .await
        .expect("create");

    let script = r#"
import json, sys, boto3
c = boto3.client("secretsmanager")
out = {}
for st in ["AWSCURRENT", "AWSPENDING"]:
    out[st] = json.loads(c.get_secret_value(SecretId=sys.argv[1], VersionStage=st)["SecretString"])
print(json.dumps(out))
"#;
    let out: serde_json::Value =
        serde_json::from_str(boto3(&moto, script, &["divan/prod/app-db"]).trim()).expect("json");
    for (label, pw) in [("AWSCURRENT", "pw-0"), ("AWSPENDING", "pw-1")] {
        let d = &out[label];
        assert_eq!(d["engine"], "postgres", "{d}");
        assert_eq!(d["host"], "db.divan.internal");
        assert_eq!(d["port"], 5432);
        assert_eq!(d["dbname"], "divan");
        assert_eq!(d["username"], "divan_app");
        assert_eq!(d["password"], pw);
    }
    // rotor reads back its own form of the value, verified against AWS's JSON.
    let strict = AwsStore::new(
        rig.ledger.clone(),
        client(&moto.endpoint_url(), moto.region()),
        AwsSettings {
            reads: ReadPolicy::RequireAws,
            ..rig.store.settings().clone()
        },
    );
    let p = strict
        .read_stage(&s, Stage::Pending)
        .await
        .expect("read")
        .expect("pending");
    assert_eq!(
        p.value.expose(),
        br#"{"username":"divan_app","password":"pw-1"}"#
    );
}

/// The endpoint goes down after the ledger took the pending value, and again during
/// finish: the pending value is never lost, AWS never shows a half-moved state, and the
/// next apply (what `rotor resume` does first) or `sync` brings AWS up to date.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_down_mid_rotation_then_resume_completes() {
    let moto = start_moto();
    let proxy = TcpProxy::start(moto.addr()).expect("proxy");
    let endpoint = format!("http://{}", proxy.addr());
    let rig = rig(&endpoint, moto.region(), settings("divan/prod/"));
    let store = &rig.store;
    let s = name("session-key");
    let sid = "divan/prod/session-key";
    let v0 = put(store, &s, b"old-value").await;
    let mut rot = Rot::begin(store, &s).await;
    let v1 = VersionId::generate();

    // Down while the create step commits.
    proxy.set_refusing(true);
    let err = store
        .apply(rot.create_change(&v1, b"new-secret-value"))
        .await
        .expect_err("AWS is down");
    let msg = err.to_string();
    assert!(msg.contains("session-key") && msg.contains("AWS"), "{msg}");
    assert!(msg.contains(sid), "names the AWS secret: {msg}");
    assert!(
        !msg.contains("new-secret-value"),
        "no value in errors: {msg}"
    );
    // The ledger kept the pending value.
    let pending = rig
        .ledger
        .read_stage(&s, Stage::Pending)
        .await
        .expect("ledger")
        .expect("pending");
    assert_eq!(pending.meta.id, v1);
    assert_eq!(pending.value.expose(), b"new-secret-value");
    // Reads stay available (Verify falls back to the ledger's copy)...
    let via_store = store
        .read_version(&s, &v1)
        .await
        .expect("read")
        .expect("pending");
    assert_eq!(via_store.value.expose(), b"new-secret-value");
    // ...unless the caller demands AWS.
    let strict = AwsStore::new(
        rig.ledger.clone(),
        client(&endpoint, moto.region()),
        AwsSettings {
            reads: ReadPolicy::RequireAws,
            ..settings("divan/prod/")
        },
    );
    assert!(strict.read_stage(&s, Stage::Current).await.is_err());
    // AWS itself is untouched and consistent: old current, no pending.
    let v = view(&moto, sid).expect("secret");
    v.expect("AWSCURRENT", Some((&v0, "old-value")));
    v.expect("AWSPENDING", None);

    // Back up: the next apply on the secret (resume's first commit) repairs AWS first.
    proxy.set_refusing(false);
    store.apply(rot.save_change()).await.expect("resume");
    let v = view(&moto, sid).expect("secret");
    v.expect("AWSPENDING", Some((&v1, "new-secret-value")));
    v.expect("AWSCURRENT", Some((&v0, "old-value")));
    assert_eq!(
        store
            .read_stage(&s, Stage::Current)
            .await
            .expect("read")
            .expect("cur")
            .meta
            .id,
        v0
    );
    let strict_pending = strict.read_version(&s, &v1).await.expect("AWS has it now");
    assert!(strict_pending.is_some());

    // Down during finish: the ledger promotes, AWS keeps the old labels until repaired.
    proxy.set_refusing(true);
    store
        .apply(rot.finish_change(&v1))
        .await
        .expect_err("AWS is down");
    assert_eq!(
        rig.ledger
            .read_stage(&s, Stage::Current)
            .await
            .expect("ledger")
            .expect("cur")
            .meta
            .id,
        v1
    );
    let v = view(&moto, sid).expect("secret");
    v.expect("AWSCURRENT", Some((&v0, "old-value")));
    v.expect("AWSPENDING", Some((&v1, "new-secret-value")));
    proxy.set_refusing(false);
    let report = store.sync(&s).await.expect("sync");
    assert_eq!(
        report.calls.len(),
        2,
        "move AWSCURRENT, drop AWSPENDING: {report:?}"
    );
    let v = view(&moto, sid).expect("secret");
    v.expect("AWSCURRENT", Some((&v1, "new-secret-value")));
    v.expect("AWSPREVIOUS", Some((&v0, "old-value")));
    v.expect("AWSPENDING", None);

    // The rotation completes.
    store.apply(rot.retire_change(&v0)).await.expect("retire");
    let v = view(&moto, sid).expect("secret");
    v.expect("AWSCURRENT", Some((&v1, "new-secret-value")));
    v.expect("AWSPREVIOUS", None);
    assert_eq!(v.versions.len(), 2);
}

/// A rotation does not begin while AWS is unreachable (no orphaned rotation).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn begin_refused_while_aws_is_down() {
    let moto = start_moto();
    let proxy = TcpProxy::start(moto.addr()).expect("proxy");
    let rig = rig(
        &format!("http://{}", proxy.addr()),
        moto.region(),
        settings("p/"),
    );
    let s = name("api-token");
    put(&rig.store, &s, b"v").await;
    proxy.set_refusing(true);
    let rot = Rot::begin_result(&rig.store, &s).await;
    assert!(rot.is_err());
    assert!(
        rig.ledger
            .open_rotations()
            .await
            .expect("ledger")
            .is_empty()
    );
}

/// Retrying the same InsertVersion (same id, same value) leaves one AWS version; the same
/// id with another value is refused (AWS refuses a reused ClientRequestToken; moto would
/// silently overwrite).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_insert_retry() {
    let moto = start_moto();
    let rig = rig(&moto.endpoint_url(), moto.region(), settings("divan/prod/"));
    let store = &rig.store;
    let s = name("pepper");
    let v0 = put(store, &s, b"p0").await;
    let v1 = VersionId::generate();
    let insert = |value: &'static [u8]| {
        Change::new().op(Op::InsertVersion {
            version: new_version(&s, &v1, value),
            stage: Some(Stage::Pending),
        })
    };
    store.apply(insert(b"p1")).await.expect("first");
    store.apply(insert(b"p1")).await.expect("retry is a no-op");
    let err = store
        .apply(insert(b"other"))
        .await
        .expect_err("different value");
    assert!(!err.to_string().contains("other"), "{err}");
    assert!(store.sync(&s).await.expect("sync").was_in_sync());
    assert!(store.sync(&s).await.expect("sync").was_in_sync());

    let v = view(&moto, "divan/prod/pepper").expect("secret");
    assert_eq!(v.versions.len(), 2, "{v:#?}");
    v.expect("AWSPENDING", Some((&v1, "p1")));
    v.expect("AWSCURRENT", Some((&v0, "p0")));
}

/// A secret's very first rotation: AWS would label a first version AWSCURRENT, so the
/// pending value stays in the ledger until finish, which creates the AWS secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_rotation_creates_the_secret_at_finish() {
    let moto = start_moto();
    let rig = rig(&moto.endpoint_url(), moto.region(), settings("divan/prod/"));
    let store = &rig.store;
    let s = name("fresh");
    let mut rot = Rot::begin(store, &s).await;
    let v1 = VersionId::generate();
    store
        .apply(rot.create_change(&v1, b"first"))
        .await
        .expect("create");
    assert!(
        view(&moto, "divan/prod/fresh").is_none(),
        "deferred until current"
    );
    // Readable meanwhile from the ledger's copy.
    let p = store
        .read_stage(&s, Stage::Pending)
        .await
        .expect("read")
        .expect("pending");
    assert_eq!(p.value.expose(), b"first");
    store.apply(rot.finish_change(&v1)).await.expect("finish");
    let v = view(&moto, "divan/prod/fresh").expect("created");
    v.expect("AWSCURRENT", Some((&v1, "first")));
    v.expect("AWSPENDING", None);
    v.expect("AWSPREVIOUS", None);
    assert_eq!(v.versions.len(), 1);
}

/// Labels moved by someone else in AWS are put back where the ledger says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_repairs_drift() {
    let moto = start_moto();
    let rig = rig(&moto.endpoint_url(), moto.region(), settings("x/"));
    let store = &rig.store;
    let s = name("drift");
    let v0 = put(store, &s, b"a").await;
    let v1 = put(store, &s, b"b").await;
    let script = r#"
import sys, boto3
c = boto3.client("secretsmanager")
c.update_secret_version_stage(SecretId=sys.argv[1], VersionStage="AWSCURRENT", MoveToVersionId=sys.argv[2], RemoveFromVersionId=sys.argv[3])
"#;
    boto3(&moto, script, &["x/drift", v0.as_str(), v1.as_str()]);
    view(&moto, "x/drift")
        .expect("s")
        .expect("AWSCURRENT", Some((&v0, "a")));
    // Verify-mode reads notice and still return the ledger's current.
    let cur = store
        .read_stage(&s, Stage::Current)
        .await
        .expect("read")
        .expect("cur");
    assert_eq!(cur.meta.id, v1);
    let all = store.sync_all().await.expect("sync all");
    assert!(!all[&s].was_in_sync());
    let v = view(&moto, "x/drift").expect("s");
    v.expect("AWSCURRENT", Some((&v1, "b")));
    v.expect("AWSPREVIOUS", Some((&v0, "a")));
}

/// `connect` takes credentials and region from the standard chain (here: environment
/// variables), checked in a child process so the test never mutates its own environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_uses_standard_credential_chain() {
    if let Ok(endpoint) = std::env::var("ROTOR_AWS_TEST_CHILD") {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = Arc::new(
            rotor_store_sqlite::SqliteStore::create(
                &dir.path().join("l.db"),
                rotor_seal::MasterKey::generate().expect("key"),
                "t",
            )
            .expect("ledger"),
        );
        let store = AwsStore::connect(
            ledger,
            AwsSettings {
                endpoint_url: Some(endpoint),
                prefix: "chain/".into(),
                ..AwsSettings::default()
            },
        )
        .await
        .expect("connect");
        put(&store, &name("via-env"), b"env-creds").await;
        return;
    }
    let moto = start_moto();
    let exe = std::env::current_exe().expect("test binary");
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "connect_uses_standard_credential_chain",
            "--nocapture",
        ])
        .envs(moto.aws_env())
        .env_remove("AWS_ENDPOINT_URL")
        .env("ROTOR_AWS_TEST_CHILD", moto.endpoint_url())
        .output()
        .expect("child");
    assert!(
        out.status.success(),
        "child failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v = view(&moto, "chain/via-env").expect("written with env credentials");
    assert_eq!(v.holders("AWSCURRENT").len(), 1);
}

/// A hanging endpoint (bytes held, connections open) fails the apply within the client's
/// timeout instead of blocking the rotation; the pending value is in the ledger and the
/// next apply mirrors it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_endpoint_times_out_then_recovers() {
    let moto = start_moto();
    let proxy = TcpProxy::start(moto.addr()).expect("proxy");
    let endpoint = format!("http://{}", proxy.addr());
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = Arc::new(
        rotor_store_sqlite::SqliteStore::create(
            &dir.path().join("l.db"),
            rotor_seal::MasterKey::generate().expect("key"),
            "t",
        )
        .expect("ledger"),
    );
    let store = AwsStore::new(
        ledger.clone(),
        client_with_timeout(&endpoint, moto.region(), std::time::Duration::from_secs(1)),
        settings("divan/prod/"),
    );
    let s = name("stall");
    let v0 = put(&store, &s, b"v0").await;
    let mut rot = Rot::begin(&store, &s).await;
    let v1 = VersionId::generate();
    proxy.set_stalled(true);
    let started = std::time::Instant::now();
    let err = store
        .apply(rot.create_change(&v1, b"v1"))
        .await
        .expect_err("stalled");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert!(err.to_string().contains("unreachable"), "{err}");
    assert_eq!(
        ledger
            .read_stage(&s, Stage::Pending)
            .await
            .expect("ledger")
            .expect("pending")
            .meta
            .id,
        v1
    );
    proxy.set_stalled(false);
    proxy.cut_all();
    store.apply(rot.save_change()).await.expect("resume");
    let v = view(&moto, "divan/prod/stall").expect("secret");
    v.expect("AWSPENDING", Some((&v1, "v1")));
    v.expect("AWSCURRENT", Some((&v0, "v0")));
}
