//! The hash-chained audit log as read through the trait.

use rotor_core::audit::{AuditEvent, verify_chain};

use super::{StoreFactory, name, put_change};

/// Many changes (two records each) leave a chain that verifies, numbered from the init
/// record on; `audit_tail` is the newest records, oldest first, equal to the full read.
pub async fn the_audit_chain_verifies_after_many_changes(f: &impl StoreFactory) {
    let subject = f.fresh().await;
    let store = &*subject.store;
    for i in 0..60 {
        let (_, c) = put_change(&name(&format!("s{}", i % 7)), b"v");
        let c = c.audit(AuditEvent::new("bob", "secret.note").reason(Some("two per change")));
        store.apply(c).await.expect("put");
    }
    let all = store.audit_all().await.expect("audit");
    assert_eq!(all.len(), 1 + 60 * 2);
    assert_eq!(verify_chain(&all), Ok(121));
    assert_eq!(
        all.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (1..=121).collect::<Vec<u64>>()
    );
    let tail = store.audit_tail(3).await.expect("tail");
    assert_eq!(
        tail.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![119, 120, 121]
    );
    assert_eq!(tail[2], all[120]);
    assert_eq!(tail[0].event.action, "secret.note");
}
