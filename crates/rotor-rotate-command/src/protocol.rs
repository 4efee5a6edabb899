//! The wire format of docs/plugin-protocol.md: one JSON request on stdin, one JSON response
//! on stdout, and what an exit code means.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The protocol version rotor speaks; sent in every request as `protocol`.
pub const PROTOCOL: u32 = 1;

/// Exit code of a step that failed but may work if tried again (`EX_TEMPFAIL`): the target
/// was unreachable, busy, rate limited.
pub const EXIT_TRANSIENT: i32 = 75;

/// The steps a plugin is called for, by their names on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginStep {
    Create,
    Set,
    Test,
    Finish,
    Retire,
    Rollback,
    Evict,
    Probe,
}

impl PluginStep {
    pub fn as_str(self) -> &'static str {
        match self {
            PluginStep::Create => "create",
            PluginStep::Set => "set",
            PluginStep::Test => "test",
            PluginStep::Finish => "finish",
            PluginStep::Retire => "retire",
            PluginStep::Rollback => "rollback",
            PluginStep::Evict => "evict",
            PluginStep::Probe => "probe",
        }
    }
}

/// One version as the plugin sees it. `value` is present only for the steps that need it.
#[derive(Debug, Serialize)]
pub struct WireVersion<'a> {
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<&'a str>,
    pub metadata: &'a serde_json::Value,
}

/// What rotor writes to the plugin's stdin.
#[derive(Debug, Serialize)]
pub struct Request<'a> {
    pub protocol: u32,
    pub step: &'static str,
    pub secret: &'a str,
    pub emergency: bool,
    pub settings: &'a serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<WireVersion<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending: Option<WireVersion<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<WireVersion<'a>>,
}

/// What the plugin prints on stdout. Every field is optional: `{}` (or nothing) is a valid
/// answer for a step with nothing to report.
#[derive(Default, Deserialize)]
#[serde(default)]
pub struct Response {
    /// `create` only: the new value. Absent: rotor draws 32 random alphanumerics.
    #[serde(deserialize_with = "secret_string")]
    pub value: Option<Zeroizing<String>>,
    /// `create` only: non-secret metadata stored beside the version (e.g. a username).
    pub metadata: Option<serde_json::Value>,
    /// `evict` only: how many sessions were ended.
    pub evicted: Option<u64>,
    /// `evict`: sessions of the old credential the plugin still saw after ending them.
    #[serde(default)]
    pub surviving: Option<u64>,
    /// `probe` only: a line per check that passed.
    pub checks: Option<Vec<String>>,
    /// On a non-zero exit: what went wrong (values are redacted before rotor shows it).
    pub error: Option<String>,
    /// On a non-zero exit: what the operator can do about it.
    pub fix: Option<String>,
}

fn secret_string<'de, D>(d: D) -> Result<Option<Zeroizing<String>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Ok(Option::<String>::deserialize(d)?.map(Zeroizing::new))
}
