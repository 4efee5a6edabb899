//! Reads of values on the audit record: who read which secret, version and stage, and how.
//!
//! Every way a value leaves rotor to a person or a client (`rotor get --reveal`,
//! `rotor keyring --reveal`, the API's value endpoint, which `rotor --server get` uses) calls
//! [`Engine::record_read`] *before* the value is handed out, so a read whose record cannot be
//! written is refused rather than unrecorded. The API may coalesce repeats (see the daemon's
//! `api::read_audit`): the first read of a version is recorded at once, repeats as counts.

use rotor_core::store::Change;
use rotor_core::{AuditEvent, SecretName, Stage, VersionId};

use crate::{Engine, EngineError};

/// How a value was read (the `channel` on its audit record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadChannel {
    /// The CLI on the store's host (`get --reveal`, `keyring --reveal`).
    Cli,
    /// The HTTP API (including `rotor --server get`).
    Api,
}

impl ReadChannel {
    pub fn as_str(self) -> &'static str {
        match self {
            ReadChannel::Cli => "cli",
            ReadChannel::Api => "api",
        }
    }
}

/// One read (or `count` coalesced reads) of a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueRead {
    /// The OS user (`user@host`) or the API token (`token NAME`).
    pub actor: String,
    pub secret: SecretName,
    pub version: VersionId,
    pub stage: Stage,
    pub channel: ReadChannel,
    /// How many reads this record stands for (1 unless coalesced).
    pub count: u64,
}

impl ValueRead {
    /// The audit event: action `secret.read`; stage, channel and count in a fixed
    /// `key=value` reason so tools can parse them.
    pub fn event(&self) -> AuditEvent {
        AuditEvent::new(self.actor.clone(), "secret.read")
            .secret(&self.secret)
            .version(&self.version)
            .reason(Some(&format!(
                "stage={} channel={} count={}",
                self.stage.as_str(),
                self.channel.as_str(),
                self.count
            )))
    }
}

impl Engine {
    /// Appends the audit record of `reads` (one transaction).
    pub async fn record_reads(&self, reads: &[ValueRead]) -> Result<(), EngineError> {
        if reads.is_empty() {
            return Ok(());
        }
        let mut change = Change::new();
        for r in reads {
            change = change.audit(r.event());
        }
        self.store().apply(change).await?;
        Ok(())
    }

    /// Records one read by this engine's actor (the CLI's OS user).
    pub async fn record_read(
        &self,
        secret: &SecretName,
        version: &VersionId,
        stage: Stage,
        channel: ReadChannel,
    ) -> Result<(), EngineError> {
        self.record_reads(&[ValueRead {
            actor: self.actor().to_owned(),
            secret: secret.clone(),
            version: version.clone(),
            stage,
            channel,
            count: 1,
        }])
        .await
    }
}
