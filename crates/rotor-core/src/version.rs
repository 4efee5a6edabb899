//! Versions of a secret and the stage labels on them.

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::SecretName;

/// A version's id: a UUIDv7, so ids sort by creation time and are never reused. It doubles as
/// AWS Secrets Manager's `ClientRequestToken`, which makes a retried create idempotent there.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VersionId(String);

impl VersionId {
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    /// Accepts an id read back from a store or typed by a user (any UUID).
    pub fn parse(s: &str) -> Option<Self> {
        uuid::Uuid::parse_str(s)
            .ok()
            .map(|u| Self(u.hyphenated().to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last 8 characters: a UUIDv7 starts with its timestamp, so ids made in the same
    /// minute share their first characters but not their (random) last ones.
    pub fn short(&self) -> &str {
        &self.0[self.0.len().saturating_sub(8)..]
    }
}

impl fmt::Display for VersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for VersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// A label on a version. Each stage labels at most one version of a secret at a time
/// (as AWS's AWSPENDING / AWSCURRENT / AWSPREVIOUS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Created by a rotation that has not finished; consumers must not use it yet
    /// (JWT verifiers may: it is published before it signs).
    Pending,
    /// The value consumers use.
    Current,
    /// The value before `current`, still accepted on the target until retired after grace.
    Previous,
}

impl Stage {
    pub const ALL: [Stage; 3] = [Stage::Pending, Stage::Current, Stage::Previous];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Pending => "pending",
            Stage::Current => "current",
            Stage::Previous => "previous",
        }
    }

    pub fn parse(s: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Stage {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Stage::parse(s)
            .ok_or_else(|| format!("unknown stage {s:?}: use pending, current or previous"))
    }
}

/// Everything about a version except its value: safe to print, log and audit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionMeta {
    pub id: VersionId,
    pub secret: SecretName,
    pub created_at: Timestamp,
    /// Who made it: `user@host`, an API token's name, or `rotor` for scheduled rotations.
    pub created_by: String,
    /// Kind metadata that is not secret: a JWT `kid` and `alg`, a database `username`.
    pub metadata: serde_json::Value,
    /// The stages this version holds now (empty once it is retired).
    pub stages: Vec<Stage>,
}

impl VersionMeta {
    pub fn has(&self, stage: Stage) -> bool {
        self.stages.contains(&stage)
    }
}
