//! Checking a log: the hash chain from its first record ([`verify_chain`]) and the MACs
//! from its last keyed start ([`verify_keyed`]).

use super::{AuditRecord, GENESIS, INIT, KEYED, MASTER_KEY_ROTATE, MIGRATE};

/// The first record that breaks the chain, and how.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit record #{seq} (position {position}) is bad: {why}")]
pub struct ChainError {
    pub seq: u64,
    /// 1-based position in the log as read.
    pub position: u64,
    pub why: String,
}

/// Checks a whole log, in stored order, from its first record.
/// Returns the number of records on success.
pub fn verify_chain<'a>(
    records: impl IntoIterator<Item = &'a AuditRecord>,
) -> Result<u64, ChainError> {
    let mut prev_hash = GENESIS.to_owned();
    let mut n = 0u64;
    for (expect_seq, r) in (1u64..).zip(records) {
        n = expect_seq;
        let fail = |why: String| ChainError {
            seq: r.seq,
            position: n,
            why,
        };
        if r.computed_hash() != r.hash {
            return Err(fail("its content does not match its hash (edited)".into()));
        }
        if r.seq != expect_seq {
            return Err(fail(format!(
                "sequence number {} where {expect_seq} was expected (a record was deleted, inserted or moved)",
                r.seq
            )));
        }
        if r.prev_hash != prev_hash {
            return Err(fail(
                "it does not chain to the record before it (a record was deleted, inserted or moved)".into(),
            ));
        }
        prev_hash = r.hash.clone();
    }
    Ok(n)
}

/// A log whose chain and MACs verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyed {
    /// Records in the log.
    pub records: u64,
    /// The record from which MACs verify under the key (a start: see [`verify_keyed`]); the
    /// records
    /// before it are checked by hash and bound to it by the chain. `None` for an empty log.
    pub keyed_from: Option<u64>,
}

/// Checks the chain ([`verify_chain`]) and the MACs: `verify(data, mac_hex)` is the store's
/// constant-time check. MACs apply from the last start ([`INIT`] at seq 1, [`KEYED`],
/// [`MIGRATE`] or [`MASTER_KEY_ROTATE`]) whose MAC verifies; every record after it must carry a MAC that verifies. A log with records but
/// none of them a keyed start under this key fails (its keyed records were cut off, or the
/// log was rebuilt without the key), so stripping MACs cannot pass as an older store.
pub fn verify_keyed(
    records: &[AuditRecord],
    verify: impl Fn(&[u8], &str) -> bool,
) -> Result<Keyed, ChainError> {
    let n = verify_chain(records)?;
    let ok = |i: usize| -> bool {
        let prev_mac = i
            .checked_sub(1)
            .and_then(|p| records.get(p))
            .and_then(|p| p.mac.as_deref());
        let r = &records[i];
        r.mac
            .as_deref()
            .is_some_and(|mac| verify(&r.mac_input(prev_mac), mac))
    };
    // The last start that verifies: a key may come back (a log copied into a store under the
    // key it was once written with), and only the newest start tells which MACs are
    // under this key. Every start is bound to all records before it by the chain.
    let start = (0..records.len()).rfind(|&i| {
        let action = records[i].event.action.as_str();
        let start =
            [KEYED, MIGRATE, MASTER_KEY_ROTATE].contains(&action) || (action == INIT && i == 0);
        start && ok(i)
    });
    let Some(start) = start else {
        return match records.last() {
            None => Ok(Keyed {
                records: 0,
                keyed_from: None,
            }),
            Some(last) => Err(ChainError {
                seq: last.seq,
                position: n,
                why: format!(
                    "no record up to #{} is authenticated under this store's key (its keyed records were cut off, or the log was rebuilt without the key)",
                    last.seq
                ),
            }),
        };
    };
    for i in start + 1..records.len() {
        if !ok(i) {
            let r = &records[i];
            return Err(ChainError {
                seq: r.seq,
                position: i as u64 + 1,
                why: if r.mac.is_none() {
                    format!(
                        "it carries no MAC, though MACs apply from #{} (stripped, or written without the key)",
                        records[start].seq
                    )
                } else {
                    "its MAC does not verify under this store's key (forged, or rewritten without the key)".into()
                },
            });
        }
    }
    Ok(Keyed {
        records: n,
        keyed_from: Some(records[start].seq),
    })
}

/// A store's audit log and what [`verify_keyed`] found (`Store::audit_verify`).
#[derive(Debug, Clone)]
pub struct Verified {
    pub records: Vec<AuditRecord>,
    pub outcome: Result<Keyed, ChainError>,
}
