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

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{RotationId, SecretName, VersionId};

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
}

/// The fields the hash covers, in a fixed order (serde_json keeps struct field order).
#[derive(Serialize)]
struct Hashed<'a> {
    seq: u64,
    time: &'a Timestamp,
    event: &'a AuditEvent,
    prev_hash: &'a str,
}

fn hash_of(seq: u64, time: &Timestamp, event: &AuditEvent, prev_hash: &str) -> String {
    let bytes = serde_json::to_vec(&Hashed {
        seq,
        time,
        event,
        prev_hash,
    })
    .expect("serializing plain strings and numbers cannot fail");
    hex::encode(Sha256::digest(&bytes))
}

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
        }
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
}
