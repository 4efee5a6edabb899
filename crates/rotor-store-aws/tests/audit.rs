//! The AWS store's audit log lives in its ledger, which authenticates every record: changes
//! made through the AWS store (against a real moto) carry MACs that `audit_verify` checks,
//! and a forged append to the ledger file is named.

mod common;

use common::*;
use rotor_core::Store;
use rotor_core::audit::AuditRecord;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_through_aws_are_authenticated_in_the_ledger() {
    let moto = start_moto();
    let rig = rig(&moto.endpoint_url(), moto.region(), settings("audit/"));
    for i in 0..3 {
        put(&rig.store, &name(&format!("s{i}")), b"value").await;
    }
    let v = rig.store.audit_verify().await.expect("verify");
    let keyed = v.outcome.expect("intact");
    assert_eq!((keyed.records, keyed.keyed_from), (4, Some(1)));
    assert!(v.records.iter().all(|r| r.mac.is_some()));

    // A correctly chained record appended to the ledger file without the key.
    let last = v.records.last().expect("last");
    let forged = AuditRecord::chain(
        last.seq + 1,
        last.time,
        rotor_core::AuditEvent::new("mallory", "secret.put"),
        &last.hash,
    );
    // With sqlite3, as someone holding only the ledger file would; the MAC is copied.
    let out = std::process::Command::new("sqlite3")
        .arg(rig._dir.path().join("ledger.db"))
        .arg(format!(
            "INSERT INTO audit (seq, time, actor, action, secret, versions, rotation, reason, outcome, prev_hash, hash, mac) \
             SELECT {}, time, 'mallory', 'secret.put', NULL, '[]', NULL, NULL, 'ok', '{}', '{}', mac FROM audit WHERE seq = {}",
            forged.seq, forged.prev_hash, forged.hash, last.seq
        ))
        .output()
        .expect("sqlite3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = rig.store.audit_verify().await.expect("verify");
    rotor_core::audit::verify_chain(&v.records).expect("the chain alone passes");
    let e = v.outcome.expect_err("forged append detected");
    assert_eq!(e.seq, forged.seq);
}
