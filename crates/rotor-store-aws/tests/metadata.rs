//! What AWS secrets carry besides values (KMS key, description, tags from the inventory),
//! `rotor store sync` bringing an existing secret in line, and outages as transient
//! errors. On a real moto server; boto3's `describe_secret` is the judge.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use rotor_core::{SecretSpec, Store, StoreError};
use rotor_store_aws::{AwsSecretMeta, AwsSettings, AwsStore, DEFAULT_DESCRIPTION};
use rotor_test_support::{Moto, TcpProxy};

const DESCRIBE: &str = r#"
import json, sys, boto3
d = boto3.client("secretsmanager").describe_secret(SecretId=sys.argv[1])
print(json.dumps({"kms": d.get("KmsKeyId"), "description": d.get("Description"),
                  "tags": {t["Key"]: t["Value"] for t in d.get("Tags", [])}}))
"#;

const NEW_KMS_KEY: &str = r#"
import boto3
print(boto3.client("kms").create_key(Description="rotor test")["KeyMetadata"]["KeyId"])
"#;

const TAG: &str = r#"
import sys, boto3
boto3.client("secretsmanager").tag_resource(SecretId=sys.argv[1],
    Tags=[{"Key": sys.argv[2], "Value": sys.argv[3]}])
"#;

struct Described {
    kms: Option<String>,
    description: Option<String>,
    tags: BTreeMap<String, String>,
}

fn describe(moto: &Moto, sid: &str) -> Described {
    let v: serde_json::Value =
        serde_json::from_str(boto3(moto, DESCRIBE, &[sid]).trim()).expect("json");
    Described {
        kms: v["kms"].as_str().map(str::to_owned),
        description: v["description"].as_str().map(str::to_owned),
        tags: v["tags"]
            .as_object()
            .expect("tags")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().expect("tag value").to_owned()))
            .collect(),
    }
}

/// The inventory entry of `name`, as the config parser builds it.
fn spec(name: &str) -> SecretSpec {
    let toml = format!(
        "[secrets.{name}]\nkind = \"random\"\ntier = \"high\"\nowner = \"team-payments\"\n\
         description = \"signs payment webhooks\"\n"
    );
    let config = rotor_core::config::parse(&toml, Path::new("/tmp/rotor.toml"), &|_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    config.secret(name).expect("secret").clone()
}

fn settings_with(prefix: &str, kms: Option<&str>, metas: &[(&str, AwsSecretMeta)]) -> AwsSettings {
    AwsSettings {
        prefix: prefix.to_owned(),
        kms_key_id: kms.map(str::to_owned),
        secrets: metas
            .iter()
            .map(|(n, m)| ((*n).to_owned(), m.clone()))
            .collect(),
        ..AwsSettings::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_secrets_carry_kms_key_description_and_inventory_tags() {
    let moto = start_moto();
    let store_key = boto3(&moto, NEW_KMS_KEY, &[]).trim().to_owned();
    let own_key = boto3(&moto, NEW_KMS_KEY, &[]).trim().to_owned();
    let meta = AwsSecretMeta::from_spec(&spec("webhook-key"), Some(own_key.clone()));
    let rig = rig(
        &moto.endpoint_url(),
        moto.region(),
        settings_with("prod/", Some(&store_key), &[("webhook-key", meta)]),
    );
    put(&rig.store, &name("webhook-key"), b"v1").await;
    put(&rig.store, &name("other"), b"v1").await;

    let d = describe(&moto, "prod/webhook-key");
    assert_eq!(
        d.kms.as_deref(),
        Some(own_key.as_str()),
        "the secret's own key wins"
    );
    assert_eq!(d.description.as_deref(), Some("signs payment webhooks"));
    let want: BTreeMap<String, String> = [
        ("rotor:rotated-by", "rotor"),
        ("rotor:owner", "team-payments"),
        ("rotor:tier", "high"),
        ("rotor:kind", "random"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(d.tags, want);

    let d = describe(&moto, "prod/other");
    assert_eq!(
        d.kms.as_deref(),
        Some(store_key.as_str()),
        "the store's key"
    );
    assert_eq!(d.description.as_deref(), Some(DEFAULT_DESCRIPTION));
    assert_eq!(
        d.tags.get("rotor:rotated-by").map(String::as_str),
        Some("rotor")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_sync_brings_an_existing_secret_in_line_and_keeps_foreign_tags() {
    let moto = start_moto();
    // A secret rotor created before the inventory said anything about it.
    let rig = rig(&moto.endpoint_url(), moto.region(), settings("prod/"));
    let s = name("webhook-key");
    put(&rig.store, &s, b"v1").await;
    let sid = "prod/webhook-key";
    boto3(&moto, TAG, &[sid, "team", "payments-oncall"]);
    boto3(&moto, TAG, &[sid, "rotor:tier", "low"]);
    boto3(&moto, TAG, &[sid, "rotor:gone", "x"]);
    let before = describe(&moto, sid);
    assert_eq!(before.description.as_deref(), Some(DEFAULT_DESCRIPTION));
    assert!(before.kms.is_none());

    // The inventory now has owner, tier, description and a KMS key: sync aligns.
    let key = boto3(&moto, NEW_KMS_KEY, &[]).trim().to_owned();
    let meta = AwsSecretMeta::from_spec(&spec("webhook-key"), None);
    let store = AwsStore::new(
        rig.ledger.clone(),
        client(&moto.endpoint_url(), moto.region()),
        settings_with("prod/", Some(&key), &[("webhook-key", meta)]),
    );
    let reports = store.sync_all_with_metadata().await.expect("sync");
    let calls = &reports[&s].calls;
    assert!(
        calls.iter().any(|c| c.starts_with("UpdateSecret")),
        "{calls:?}"
    );
    assert!(
        calls.iter().any(|c| c.starts_with("TagResource")),
        "{calls:?}"
    );
    assert!(
        calls.iter().any(|c| c.starts_with("UntagResource")),
        "{calls:?}"
    );
    let d = describe(&moto, sid);
    assert_eq!(d.kms.as_deref(), Some(key.as_str()));
    assert_eq!(d.description.as_deref(), Some("signs payment webhooks"));
    assert_eq!(d.tags.get("rotor:tier").map(String::as_str), Some("high"));
    assert_eq!(
        d.tags.get("rotor:owner").map(String::as_str),
        Some("team-payments")
    );
    assert_eq!(
        d.tags.get("team").map(String::as_str),
        Some("payments-oncall"),
        "not ours: kept"
    );
    assert!(
        !d.tags.contains_key("rotor:gone"),
        "ours and no longer wanted: removed"
    );
    // The values were not touched.
    view(&moto, sid)
        .expect("secret")
        .expect("AWSCURRENT", Some((&latest(&rig, &s).await, "v1")));

    // In line now: a second sync changes nothing.
    let again = store.sync_all_with_metadata().await.expect("sync");
    assert!(again[&s].was_in_sync(), "{:?}", again[&s].calls);
}

async fn latest(rig: &Rig, s: &rotor_core::SecretName) -> rotor_core::VersionId {
    rig.ledger
        .read_stage(s, rotor_core::Stage::Current)
        .await
        .expect("ledger")
        .expect("current")
        .meta
        .id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_aws_is_a_transient_unavailable_error() {
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
    let err = rig.store.sync(&s).await.expect_err("AWS is down");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("unreachable"), "{err}");
    proxy.set_refusing(false);
    assert!(rig.store.sync(&s).await.expect("back").was_in_sync());
}
