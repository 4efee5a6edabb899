//! The value read path of `GET /v1/secrets/{name}/value`: reads a stage from the store and
//! renders the response body `{"version","stage","value","encoding"}`.

use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use rotor_core::{SecretName, Stage, Store, StoreError};

/// Renders value responses. (See the bench notes in `scripts/bench-http`.)
#[derive(Debug, Clone, Default)]
pub struct ValueCache {}

impl ValueCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The response body for `name` at `stage`, `None` when no version holds the stage.
    pub async fn read(
        &self,
        store: &Arc<dyn Store>,
        name: &SecretName,
        stage: Stage,
    ) -> Result<Option<Bytes>, StoreError> {
        let Some(v) = store.read_stage(name, stage).await? else {
            return Ok(None);
        };
        Ok(Some(render(v.meta.id.as_str(), stage, v.value.expose())))
    }

    /// Forgets what is cached for `name` (after a stage change).
    pub fn invalidate(&self, _name: &str) {}
}

/// `{"version":…,"stage":…,"value":…,"encoding":"utf8"|"base64"}`.
fn render(version: &str, stage: Stage, value: &[u8]) -> Bytes {
    let (text, encoding) = match std::str::from_utf8(value) {
        Ok(s) => (zeroize::Zeroizing::new(s.to_owned()), "utf8"),
        Err(_) => (
            zeroize::Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(value)),
            "base64",
        ),
    };
    let body = serde_json::json!({
        "version": version,
        "stage": stage.as_str(),
        "value": text.as_str(),
        "encoding": encoding,
    });
    Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
}
