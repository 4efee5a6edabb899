//! The audit log: append-only, hash-chained, never a value.
//!
//! Every record holds the SHA-256 of the one before, and its own hash covers every field. So
//! editing a record breaks its hash, deleting or inserting one breaks the next record's
//! `prev_hash` and the sequence, and reordering breaks both. [`verify_chain`] names the first
//! bad record.
//!
//! The chain alone cannot see a rewrite of the whole chain from a point onwards, nor records
//! cut off the end (there is no later record to notice). So the head of the chain
//! ([`Head`]: sequence and hash) is also kept outside the store (the checkpoint file the CLI
//! writes after every change, the head in metrics, `--expect-head`), and [`check_head`]
//! compares a log with a head known from elsewhere: truncation, an emptied log and a rebuilt
//! chain are then detected, and records beyond the head are counted.
//!
//! An unkeyed hash can be recomputed by anyone who can write the store, so every record also
//! carries a MAC ([`AuditRecord::mac`]: HMAC-SHA256 under a key derived from the master key,
//! `rotor_seal::AuditKey::for_records`) over its canonical bytes and the previous record's
//! MAC. Whoever holds only the store file can then neither append a chained record nor
//! rewrite one and re-chain from there: [`verify_keyed`] names the first record whose MAC does
//! not verify. Records written before MACs existed (a store made by an older rotor) carry none;
//! the migration that adds the column appends an [`KEYED`] record, MACs apply from there,
//! and the older records are bound by the hash chain to that first MAC (so rewriting one of
//! them breaks the keyed record's MAC too). The holder of the master key can still rewrite
//! all of history; the anchor and `--expect-head` only show it was rewritten after the head
//! they saw.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{RotationId, SecretName, VersionId};

/// The action of the record the migration that added MACs to an older store appends: MACs
/// apply from it (the records before carry none).
pub const KEYED: &str = "audit.keyed";

/// The first record of a store. Like [`KEYED`], MACs apply from it.
pub const INIT: &str = "store.init";

/// The record of a finished master-key rotation, authenticated under the new key (MACs
/// under the old one no longer verify): like [`KEYED`], MACs apply from it.
pub const MASTER_KEY_ROTATE: &str = "store.master_key.rotate";

/// The record `Store::import` appends after a log copied from another store (`rotor store
/// migrate`), whose MACs are under the source's key: like [`KEYED`], MACs apply from it.
pub const MIGRATE: &str = "store.migrate";

/// The `prev_hash` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened, before the store numbers and chains it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// `user@host`, an API token's name, or `rotor` for the scheduler.
    pub actor: String,
    /// Dotted action name: `store.init`, `secret.put`, `rotation.create`, `rotation.failed`, ...
    pub action: String,
    pub secret: Option<SecretName>,
    pub versions: Vec<VersionId>,
    pub rotation: Option<RotationId>,
    pub reason: Option<String>,
    /// `ok`, or `error: ...` (error texts never carry values).
    pub outcome: String,
}

impl AuditEvent {
    pub fn new(actor: impl Into<String>, action: impl Into<String>) -> Self {
        Self {
            actor: actor.into(),
            action: action.into(),
            secret: None,
            versions: Vec::new(),
            rotation: None,
            reason: None,
            outcome: "ok".into(),
        }
    }
    pub fn secret(mut self, s: &SecretName) -> Self {
        self.secret = Some(s.clone());
        self
    }
    pub fn version(mut self, v: &VersionId) -> Self {
        self.versions.push(v.clone());
        self
    }
    pub fn rotation(mut self, r: &RotationId) -> Self {
        self.rotation = Some(r.clone());
        self
    }
    pub fn reason(mut self, r: Option<&str>) -> Self {
        self.reason = r.map(str::to_owned);
        self
    }
    pub fn failed(mut self, error: &str) -> Self {
        self.outcome = format!("error: {error}");
        self
    }
}

/// A chained record as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub seq: u64,
    pub time: Timestamp,
    #[serde(flatten)]
    pub event: AuditEvent,
    pub prev_hash: String,
    pub hash: String,
    /// HMAC-SHA256 (hex) under the store's record key of [`AuditRecord::mac_input`]; `None`
    /// on records written before MACs existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// The fields the hash covers, in a fixed order (serde_json keeps struct field order).
#[derive(Serialize)]
struct Hashed<'a> {
    seq: u64,
    time: &'a Timestamp,
    event: &'a AuditEvent,
    prev_hash: &'a str,
}

/// The canonical bytes of a record: what its hash and its MAC cover.
fn canonical(seq: u64, time: &Timestamp, event: &AuditEvent, prev_hash: &str) -> Vec<u8> {
    // Plain strings, numbers and a timestamp: serde_json cannot fail on them, and an empty
    // input would only make every hash and MAC mismatch (never verify falsely).
    serde_json::to_vec(&Hashed {
        seq,
        time,
        event,
        prev_hash,
    })
    .unwrap_or_default()
}

fn hash_of(seq: u64, time: &Timestamp, event: &AuditEvent, prev_hash: &str) -> String {
    hex::encode(Sha256::digest(canonical(seq, time, event, prev_hash)))
}

/// Domain separation of record MACs from every other use of the key.
const MAC_DOMAIN: &[u8] = b"rotor audit record v1\n";

impl AuditRecord {
    /// Chains `event` after the record whose hash is `prev_hash` (or [`GENESIS`]).
    pub fn chain(seq: u64, time: Timestamp, event: AuditEvent, prev_hash: &str) -> Self {
        let hash = hash_of(seq, &time, &event, prev_hash);
        Self {
            seq,
            time,
            event,
            prev_hash: prev_hash.to_owned(),
            hash,
            mac: None,
        }
    }

    /// Chains `event` after the record `prev` (`None` for the first) and authenticates it:
    /// `tag` is the keyed MAC of the store (hex out). Stores call this under the lock that
    /// orders `seq`; a MAC costs microseconds.
    pub fn chain_keyed(
        seq: u64,
        time: Timestamp,
        event: AuditEvent,
        prev: Option<(&str, Option<&str>)>,
        tag: impl FnOnce(&[u8]) -> String,
    ) -> Self {
        let (prev_hash, prev_mac) = prev.unwrap_or((GENESIS, None));
        let mut rec = Self::chain(seq, time, event, prev_hash);
        rec.mac = Some(tag(&rec.mac_input(prev_mac)));
        rec
    }

    /// What the MAC covers: a domain tag, the record's canonical bytes (which include
    /// `prev_hash`) and the previous record's MAC (empty when it has none).
    pub fn mac_input(&self, prev_mac: Option<&str>) -> Vec<u8> {
        let mut out = MAC_DOMAIN.to_vec();
        out.extend(canonical(
            self.seq,
            &self.time,
            &self.event,
            &self.prev_hash,
        ));
        out.push(b'\n');
        out.extend(prev_mac.unwrap_or("").as_bytes());
        out
    }

    /// Recomputes the hash from the fields.
    pub fn computed_hash(&self) -> String {
        hash_of(self.seq, &self.time, &self.event, &self.prev_hash)
    }
}

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

/// The head of the chain, as known outside the store: `SEQ:HASH`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
}

impl Head {
    /// The head of `records` (the last one), `None` for an empty log.
    pub fn of(records: &[AuditRecord]) -> Option<Head> {
        records.last().map(|r| Head {
            seq: r.seq,
            hash: r.hash.clone(),
        })
    }

    /// Parses `SEQ:HASH` (as metrics and `rotor audit verify` print it).
    pub fn parse(s: &str) -> Result<Head, String> {
        let (seq, hash) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?} is not SEQ:HASH (e.g. 42:9f86d08…)"))?;
        let seq = seq
            .parse()
            .map_err(|_| format!("{seq:?} in {s:?} is not a sequence number"))?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("the hash in {s:?} is not 64 hex digits"));
        }
        Ok(Head {
            seq,
            hash: hash.to_ascii_lowercase(),
        })
    }
}

impl std::fmt::Display for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash)
    }
}

/// How a log disagrees with a head known from elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error(
        "the log ends at #{last} but the anchor records #{anchored}: records were cut off the end{}",
        if *last == 0 { " (the log is empty)" } else { "" }
    )]
    Truncated { last: u64, anchored: u64 },
    #[error(
        "record #{seq} is not the one the anchor records: the chain was rebuilt from there or earlier"
    )]
    Rebuilt { seq: u64 },
}

/// Checks a log (already checked with [`verify_chain`]) against `head`; returns how many
/// records come after it.
pub fn check_head(records: &[AuditRecord], head: &Head) -> Result<u64, HeadError> {
    let last = records.last().map_or(0, |r| r.seq);
    if head.seq == 0 {
        return Ok(last);
    }
    let Some(at) = usize::try_from(head.seq - 1)
        .ok()
        .and_then(|i| records.get(i))
    else {
        return Err(HeadError::Truncated {
            last,
            anchored: head.seq,
        });
    };
    if at.seq != head.seq || at.hash != head.hash {
        return Err(HeadError::Rebuilt { seq: head.seq });
    }
    Ok(last - head.seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(n: u64) -> Vec<AuditRecord> {
        let mut out: Vec<AuditRecord> = Vec::new();
        for seq in 1..=n {
            let prev = out.last().map_or(GENESIS.to_owned(), |r| r.hash.clone());
            let ev = AuditEvent::new("alice@host", "secret.put")
                .secret(&SecretName::new("db").expect("valid"))
                .reason(Some(&format!("r{seq}")));
            out.push(AuditRecord::chain(
                seq,
                Timestamp::from_second(seq as i64).expect("valid"),
                ev,
                &prev,
            ));
        }
        out
    }

    #[test]
    fn intact_chain_verifies() {
        assert_eq!(verify_chain(&log(5)), Ok(5));
        assert_eq!(verify_chain(&[]), Ok(0));
    }

    #[test]
    fn detects_edit_delete_insert_reorder() {
        let mut edited = log(5);
        edited[2].event.reason = Some("changed".into());
        assert_eq!(verify_chain(&edited).expect_err("edit").seq, 3);

        let mut deleted = log(5);
        deleted.remove(1);
        let e = verify_chain(&deleted).expect_err("delete");
        assert_eq!((e.seq, e.position), (3, 2));

        let mut inserted = log(5);
        let extra = inserted[1].clone();
        inserted.insert(2, extra);
        assert_eq!(verify_chain(&inserted).expect_err("insert").position, 3);

        let mut reordered = log(5);
        reordered.swap(1, 3);
        assert_eq!(verify_chain(&reordered).expect_err("reorder").position, 2);

        // A head kept elsewhere catches what the chain alone cannot.
        let full = log(5);
        let head = Head::of(&full).expect("head");
        assert_eq!(Head::parse(&head.to_string()), Ok(head.clone()));
        assert_eq!(check_head(&full, &head), Ok(0));
        assert_eq!(
            check_head(&full[..4], &head),
            Err(HeadError::Truncated {
                last: 4,
                anchored: 5
            })
        );
        assert_eq!(
            check_head(&[], &head),
            Err(HeadError::Truncated {
                last: 0,
                anchored: 5
            })
        );
        let mut rebuilt = full.clone();
        rebuilt[4].event.reason = Some("forged".into());
        rebuilt[4].hash = rebuilt[4].computed_hash();
        assert!(verify_chain(&rebuilt).is_ok(), "the chain alone misses it");
        assert_eq!(
            check_head(&rebuilt, &head),
            Err(HeadError::Rebuilt { seq: 5 })
        );
        let older = Head::of(&full[..3]).expect("head");
        assert_eq!(
            check_head(&full, &older),
            Ok(2),
            "two records after the anchor"
        );

        // Rehashing an edited record still breaks the next record's link.
        let mut rehashed = log(5);
        rehashed[1].event.actor = "mallory".into();
        rehashed[1].hash = rehashed[1].computed_hash();
        assert_eq!(verify_chain(&rehashed).expect_err("rehash").seq, 3);
    }

    /// A log of `n` records whose MACs start at `keyed_from` (records before it are legacy).
    fn keyed_log(n: u64, keyed_from: u64, key: &rotor_seal::AuditKey) -> Vec<AuditRecord> {
        let mut out: Vec<AuditRecord> = Vec::new();
        for seq in 1..=n {
            let action = match seq {
                1 => INIT,
                s if s == keyed_from => KEYED,
                _ => "secret.put",
            };
            let ev = AuditEvent::new("alice@host", action).reason(Some(&format!("r{seq}")));
            let time = Timestamp::from_second(seq as i64).expect("valid");
            let prev = out.last().map(|r| (r.hash.as_str(), r.mac.as_deref()));
            let rec = if seq >= keyed_from {
                AuditRecord::chain_keyed(seq, time, ev, prev, |d| key.tag(d))
            } else {
                AuditRecord::chain(seq, time, ev, prev.map_or(GENESIS, |p| p.0))
            };
            out.push(rec);
        }
        out
    }

    #[test]
    fn macs_verify_only_under_the_key() {
        let master = rotor_seal::MasterKey::generate().expect("key");
        let key = rotor_seal::AuditKey::for_records(&master);
        let check = |d: &[u8], t: &str| key.verify(d, t);
        let full = keyed_log(6, 1, &key);
        assert_eq!(
            verify_keyed(&full, check),
            Ok(Keyed {
                records: 6,
                keyed_from: Some(1)
            })
        );
        let other =
            rotor_seal::AuditKey::for_records(&rotor_seal::MasterKey::generate().expect("key"));
        assert_eq!(
            verify_keyed(&full, |d, t| other.verify(d, t))
                .expect_err("other key")
                .seq,
            6
        );

        // A forged, correctly chained append: the chain holds, the MAC does not.
        let mut appended = full.clone();
        let last = appended.last().expect("last").clone();
        appended.push(AuditRecord::chain(
            7,
            last.time,
            AuditEvent::new("mallory", "secret.put"),
            &last.hash,
        ));
        assert!(verify_chain(&appended).is_ok());
        assert_eq!(verify_keyed(&appended, check).expect_err("append").seq, 7);
        appended[6].mac = full[5].mac.clone();
        assert_eq!(
            verify_keyed(&appended, check).expect_err("copied mac").seq,
            7
        );

        // Rewritten from #3 with the chain recomputed (MACs dropped or copied): #3 is named.
        let mut rebuilt = full.clone();
        rebuilt[2].event.reason = Some("forged".into());
        for i in 2..rebuilt.len() {
            let prev = rebuilt[i - 1].hash.clone();
            let mac = rebuilt[i].mac.clone();
            rebuilt[i] = AuditRecord::chain(
                rebuilt[i].seq,
                rebuilt[i].time,
                rebuilt[i].event.clone(),
                &prev,
            );
            rebuilt[i].mac = mac;
        }
        assert!(verify_chain(&rebuilt).is_ok());
        assert_eq!(verify_keyed(&rebuilt, check).expect_err("rebuilt").seq, 3);
    }

    #[test]
    fn legacy_records_are_bound_by_the_keyed_one() {
        let master = rotor_seal::MasterKey::generate().expect("key");
        let key = rotor_seal::AuditKey::for_records(&master);
        let check = |d: &[u8], t: &str| key.verify(d, t);
        let migrated = keyed_log(8, 5, &key);
        assert_eq!(
            verify_keyed(&migrated, check),
            Ok(Keyed {
                records: 8,
                keyed_from: Some(5)
            })
        );
        // An old store that was never keyed under this key does not pass.
        let legacy = keyed_log(4, 99, &key);
        assert_eq!(verify_keyed(&legacy, check).expect_err("unkeyed").seq, 4);
        assert_eq!(verify_keyed(&[], check).map(|k| k.records), Ok(0));

        // Rewriting a legacy record and re-chaining breaks the keyed record's MAC.
        let mut rewritten = migrated.clone();
        rewritten[1].event.actor = "mallory".into();
        for i in 1..rewritten.len() {
            let prev = rewritten[i - 1].hash.clone();
            let mac = rewritten[i].mac.clone();
            rewritten[i] = AuditRecord::chain(
                rewritten[i].seq,
                rewritten[i].time,
                rewritten[i].event.clone(),
                &prev,
            );
            rewritten[i].mac = mac;
        }
        assert!(verify_chain(&rewritten).is_ok());
        assert!(verify_keyed(&rewritten, check).is_err());

        // Stripping the MACs of new records (passing as an old store) fails.
        let mut stripped = migrated.clone();
        stripped[7].mac = None;
        let e = verify_keyed(&stripped, check).expect_err("stripped");
        assert_eq!(e.seq, 8);
        assert!(e.why.contains("no MAC"), "{}", e.why);
        let mut all_stripped = migrated;
        for r in &mut all_stripped {
            r.mac = None;
        }
        assert_eq!(
            verify_keyed(&all_stripped, check)
                .expect_err("all stripped")
                .seq,
            8
        );
    }
}
