//! The head of the chain as known outside the store ([`Head`]), and the check of a log
//! against it ([`check_head`]): what the chain alone cannot see (truncation, a rebuilt
//! chain).

use serde::{Deserialize, Serialize};

use super::AuditRecord;

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

/// Checks a log (already checked with [`verify_chain`](super::verify_chain)) against `head`; returns how many
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
