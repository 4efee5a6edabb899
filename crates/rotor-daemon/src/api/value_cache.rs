//! The value read path of `GET /v1/secrets/{name}/value`, with a small in-memory cache.
//!
//! Why a cache: the store serialises reads on one connection and opens (decrypts) the value
//! on every read; the bench (`scripts/bench-http`) showed that path, not HTTP or the token
//! check, bounds read throughput. So the rendered response body for `(secret, stage)` is kept:
//!
//! - bodies live in zeroize-on-drop buffers shared with the response (`Bytes::from_owner`),
//!   so the last copy is wiped when the last response using it is sent;
//! - an entry is dropped at once when this process changes the secret (the watch hub, fed by
//!   the engine's delivery, calls [`ValueCache::invalidate`]), and when the watch poller sees
//!   a change made elsewhere;
//! - every entry expires after `ttl` (default 1 s): a change made by another process (the CLI,
//!   another replica) is served at most `ttl` late. During a normal rotation the previous value
//!   still works for the whole grace, so that costs nothing; set `ttl` to 0 to disable the
//!   cache where even that second matters.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use rotor_core::{SecretName, Stage, Store, StoreError, VersionId};
use zeroize::Zeroizing;

/// A rendered body, wiped on drop.
#[derive(Debug)]
struct Body(Zeroizing<Vec<u8>>);

impl AsRef<[u8]> for Body {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

#[derive(Debug, Clone)]
struct Entry {
    version: VersionId,
    body: Arc<Body>,
    at: Instant,
}

/// Cached value responses. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct ValueCache {
    ttl: Duration,
    map: Arc<RwLock<HashMap<(String, Stage), Entry>>>,
}

impl Default for ValueCache {
    fn default() -> Self {
        Self::new(Duration::from_secs(1))
    }
}

impl ValueCache {
    /// A cache whose entries live `ttl` (0 disables caching).
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            map: Arc::new(RwLock::new(HashMap::new())),
        }
    }

    /// The version and response body for `name` at `stage`, `None` when no version holds
    /// the stage.
    pub async fn read(
        &self,
        store: &Arc<dyn Store>,
        name: &SecretName,
        stage: Stage,
    ) -> Result<Option<(VersionId, Bytes)>, StoreError> {
        let key = (name.to_string(), stage);
        if !self.ttl.is_zero()
            && let Some(e) = self
                .map
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(&key)
            && e.at.elapsed() < self.ttl
        {
            return Ok(Some((
                e.version.clone(),
                Bytes::from_owner(SharedBody(e.body.clone())),
            )));
        }
        let Some(v) = store.read_stage(name, stage).await? else {
            return Ok(None);
        };
        let body = Arc::new(render(v.meta.id.as_str(), stage, v.value.expose()));
        if !self.ttl.is_zero() {
            self.map
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(
                    key,
                    Entry {
                        version: v.meta.id.clone(),
                        body: body.clone(),
                        at: Instant::now(),
                    },
                );
        }
        Ok(Some((
            v.meta.id.clone(),
            Bytes::from_owner(SharedBody(body)),
        )))
    }

    /// Forgets what is cached for `name` (after a stage change).
    pub fn invalidate(&self, name: &str) {
        self.map
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|(n, _), _| n != name);
    }
}

struct SharedBody(Arc<Body>);

impl AsRef<[u8]> for SharedBody {
    fn as_ref(&self) -> &[u8] {
        self.0.as_ref().as_ref()
    }
}

/// `{"version":…,"stage":…,"value":…,"encoding":"utf8"|"base64"}`, built in a wiped buffer.
fn render(version: &str, stage: Stage, value: &[u8]) -> Body {
    let (text, encoding) = match std::str::from_utf8(value) {
        Ok(s) => (Zeroizing::new(s.to_owned()), "utf8"),
        Err(_) => (
            Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(value)),
            "base64",
        ),
    };
    let mut out = Zeroizing::new(Vec::with_capacity(text.len() + 128));
    let body = serde_json::json!({
        "version": version,
        "stage": stage.as_str(),
        "value": "",
        "encoding": encoding,
    });
    // Serialise the skeleton, then splice the escaped value in, so the only copies of the value
    // are in zeroizing buffers (a serde_json::Value holding it would not be wiped).
    let skeleton = serde_json::to_string(&body).unwrap_or_default();
    let marker = "\"value\":\"\"";
    let (head, tail) = skeleton.split_at(skeleton.find(marker).unwrap_or(skeleton.len()));
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(b"\"value\":");
    let mut escaped = Zeroizing::new(Vec::with_capacity(text.len() + 2));
    let _ = serde_json::to_writer(&mut *escaped, text.as_str());
    out.extend_from_slice(&escaped);
    out.extend_from_slice(tail.get(marker.len()..).unwrap_or("").as_bytes());
    Body(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_valid_json() {
        let b = render("v1", Stage::Current, b"a\"b\\c");
        let v: serde_json::Value = serde_json::from_slice(b.as_ref()).expect("json");
        assert_eq!(v["value"], "a\"b\\c");
        assert_eq!(v["version"], "v1");
        assert_eq!(v["encoding"], "utf8");
        let b = render("v2", Stage::Previous, &[0xff, 0x00]);
        let v: serde_json::Value = serde_json::from_slice(b.as_ref()).expect("json");
        assert_eq!(v["encoding"], "base64");
        assert_eq!(v["value"], "/wA=");
    }
}
