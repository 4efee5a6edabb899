//! Resolving `{{ secret.stage[.field] }}` references against the store.
//!
//! A `previous` without a version renders as the empty string (the seed's convention: the
//! app knows there is no previous key); a `current` without a version, or whose text is
//! empty, is an error naming the secret and the fix, so the target is left untouched rather
//! than handing the app an empty key. A field reads a JSON value's member (dots walk nested
//! objects); strings render as they are, numbers and booleans as their JSON text. Errors
//! name the secret, stage and field, never the value.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use rotor_core::config::ValueRef;
use rotor_core::store::Versioned;
use rotor_core::version::VersionId;
use rotor_core::{SecretName, SecretValue, Stage, Store};
use zeroize::Zeroizing;

use crate::DeliverError;

/// Stage reads within one render: `(secret, stage)` → its version and value, if the stage is
/// held. Each secret's stages are read as one snapshot ([`Store::read_staged`]), so a render
/// during a rotation's finish never writes the same version as `current` and `previous`.
#[derive(Default)]
pub(crate) struct Cache {
    /// The references the render read, for its stamp.
    read: HashMap<(SecretName, Stage), Option<(VersionId, SecretValue)>>,
    /// Each secret's staged versions, read once per render.
    staged: HashMap<SecretName, Vec<(Stage, Versioned)>>,
}

impl Cache {
    /// Which version each `secret.stage` the render read was held by (`None`: no version):
    /// the stage set the target is written from.
    pub(crate) fn stamp(&self) -> BTreeMap<String, Option<String>> {
        self.read
            .iter()
            .map(|((secret, stage), v)| {
                (
                    format!("{secret}.{stage}"),
                    v.as_ref().map(|(id, _)| id.to_string()),
                )
            })
            .collect()
    }

    /// The version `r`'s stage was held by in this render (`None`: no version, or not read).
    pub(crate) fn version_of(&self, r: &ValueRef) -> Option<String> {
        self.read
            .get(&(r.secret.clone(), r.stage))
            .and_then(|v| v.as_ref().map(|(id, _)| id.to_string()))
    }
}

/// The text a reference renders to.
pub(crate) async fn resolve(
    store: &dyn Store,
    path: &Path,
    r: &ValueRef,
    cache: &mut Cache,
) -> Result<Zeroizing<String>, DeliverError> {
    let key = (r.secret.clone(), r.stage);
    if !cache.read.contains_key(&key) {
        if !cache.staged.contains_key(&r.secret) {
            let staged =
                store
                    .read_staged(&r.secret)
                    .await
                    .map_err(|source| DeliverError::Store {
                        path: path.to_path_buf(),
                        source,
                    })?;
            cache.staged.insert(r.secret.clone(), staged);
        }
        let held = cache.staged.get(&r.secret).and_then(|staged| {
            staged
                .iter()
                .find(|(stage, _)| *stage == r.stage)
                .map(|(_, v)| (v.meta.id.clone(), v.value.clone()))
        });
        cache.read.insert(key.clone(), held);
    }
    let err = |what: String| DeliverError::Value {
        path: path.to_path_buf(),
        reference: reference(r),
        what,
    };
    let Some(Some((_, value))) = cache.read.get(&key) else {
        if r.stage == Stage::Current {
            return Err(err(no_current(&r.secret)));
        }
        // No version holds this stage (no previous yet, or retired): the empty string.
        return Ok(Zeroizing::new(String::new()));
    };
    let text = resolve_value(r, value, &err)?;
    if r.stage == Stage::Current && text.is_empty() {
        return Err(err(format!(
            "the current value of secret {} renders as the empty string; the target is left as it was. Fix: store a non-empty value (`rotor rotate {0}` or `rotor put {0}`){}",
            r.secret,
            if r.field.is_some() {
                " or reference a non-empty field"
            } else {
                ""
            }
        )));
    }
    Ok(text)
}

/// Why a `current` reference has nothing to render, and the fix.
fn no_current(secret: &SecretName) -> String {
    format!(
        "secret {secret} has no current value yet (never rotated or put); the target is left as it was. Fix: `rotor rotate {secret}` (or `rotor put {secret}` for a manual secret), then `rotor render`"
    )
}

fn resolve_value(
    r: &ValueRef,
    value: &SecretValue,
    err: &dyn Fn(String) -> DeliverError,
) -> Result<Zeroizing<String>, DeliverError> {
    let Some(field) = &r.field else {
        let text = value.expose_str().map_err(|_| {
            err(format!(
                "the {} value of secret {} is not UTF-8 text",
                r.stage, r.secret
            ))
        })?;
        return Ok(Zeroizing::new(text.to_owned()));
    };
    let json: serde_json::Value = serde_json::from_slice(value.expose()).map_err(|_| {
        err(format!(
            "the {} value of secret {} is not JSON, so it has no field {field:?}",
            r.stage, r.secret
        ))
    })?;
    let mut at = &json;
    for part in field.split('.') {
        at = match at {
            serde_json::Value::Object(m) => m.get(part).ok_or_else(|| {
                err(format!(
                    "secret {} has no field {field:?} in its {} value",
                    r.secret, r.stage
                ))
            })?,
            _ => {
                return Err(err(format!(
                    "secret {} has no field {field:?} in its {} value (not a JSON object)",
                    r.secret, r.stage
                )));
            }
        };
    }
    let text = match at {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::Bool(b) => b.to_string(),
        serde_json::Value::Null => {
            return Err(err(format!(
                "field {field:?} of secret {}'s {} value is null",
                r.secret, r.stage
            )));
        }
        _ => {
            return Err(err(format!(
                "field {field:?} of secret {}'s {} value is an object or array, not text",
                r.secret, r.stage
            )));
        }
    };
    Ok(Zeroizing::new(text))
}

/// `secret.stage[.field]`, as written in a template.
fn reference(r: &ValueRef) -> String {
    match &r.field {
        Some(f) => format!("{}.{}.{f}", r.secret, r.stage),
        None => format!("{}.{}", r.secret, r.stage),
    }
}
