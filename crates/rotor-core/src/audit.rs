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

mod head;
mod verify;

pub use head::{Head, HeadError, check_head};
pub use verify::{ChainError, Keyed, Verified, verify_chain, verify_keyed};

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

#[cfg(test)]
mod tests;
