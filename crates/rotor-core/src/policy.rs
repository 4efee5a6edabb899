//! Rotation policy: how often, how long the old value stays valid, and who may start it.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Duration;

/// The seed policy's three frequency tiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// 90 days by default: JWT signing keys, session secrets.
    High,
    /// 180 days by default: database and Redis passwords, vendor API keys.
    Medium,
    /// 365 days by default: peppers, OAuth secrets, data-at-rest keys.
    Low,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::High => "high",
            Tier::Medium => "medium",
            Tier::Low => "low",
        }
    }
    pub fn parse(s: &str) -> Option<Tier> {
        [Tier::High, Tier::Medium, Tier::Low]
            .into_iter()
            .find(|t| t.as_str() == s)
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The tier lengths in force (the seed's defaults, overridable under `[tiers]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Tiers {
    pub high: Duration,
    pub medium: Duration,
    pub low: Duration,
}

impl Default for Tiers {
    fn default() -> Self {
        Self {
            high: Duration::from_days(90),
            medium: Duration::from_days(180),
            low: Duration::from_days(365),
        }
    }
}

impl Tiers {
    pub fn get(&self, tier: Tier) -> Duration {
        match tier {
            Tier::High => self.high,
            Tier::Medium => self.medium,
            Tier::Low => self.low,
        }
    }
}

/// Whether rotor may rotate the secret by itself when it comes due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Automation {
    /// Rotated by `rotor rotate --due` and the daemon's scheduler.
    Automatic,
    /// Only reported as due or overdue; a person rotates it (`rotor put`, `rotor rotate NAME`).
    Manual,
}

impl Automation {
    pub fn as_str(self) -> &'static str {
        match self {
            Automation::Automatic => "automatic",
            Automation::Manual => "manual",
        }
    }
}

/// A secret's validated schedule. `grace < rotate_every` always holds: a [`Policy`] that would
/// retire the previous value after the next rotation began cannot be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Policy {
    pub tier: Option<Tier>,
    pub rotate_every: Duration,
    pub grace: Duration,
    pub automation: Automation,
    pub requires_confirmation: bool,
}

/// Why a policy cannot exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    #[error("grace ({grace}) must be shorter than rotate_every ({rotate_every})")]
    GraceTooLong {
        grace: Duration,
        rotate_every: Duration,
    },
    #[error("rotate_every must be longer than 0s")]
    ZeroPeriod,
}

impl Policy {
    pub fn new(
        tier: Option<Tier>,
        rotate_every: Duration,
        grace: Duration,
        automation: Automation,
        requires_confirmation: bool,
    ) -> Result<Self, PolicyError> {
        if rotate_every.is_zero() {
            return Err(PolicyError::ZeroPeriod);
        }
        if grace >= rotate_every {
            return Err(PolicyError::GraceTooLong {
                grace,
                rotate_every,
            });
        }
        Ok(Self {
            tier,
            rotate_every,
            grace,
            automation,
            requires_confirmation,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_must_be_shorter_than_period() {
        let p = Policy::new(
            None,
            Duration::from_days(1),
            Duration::from_days(1),
            Automation::Automatic,
            false,
        );
        assert!(matches!(p, Err(PolicyError::GraceTooLong { .. })));
        assert!(
            Policy::new(
                Some(Tier::High),
                Duration::from_days(90),
                Duration::from_hours(1),
                Automation::Automatic,
                false
            )
            .is_ok()
        );
    }
}
