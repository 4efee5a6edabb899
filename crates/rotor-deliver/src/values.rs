//! Resolving `{{ secret.stage[.field] }}` references against the store.
//!
//! A stage without a version renders as the empty string. A field reads a JSON value's
//! member (dots walk nested objects); strings render as they are, numbers and booleans as
//! their JSON text. Errors name the secret, stage and field, never the value.

use std::collections::HashMap;
use std::path::Path;

use rotor_core::config::ValueRef;
use rotor_core::{SecretName, SecretValue, Stage, Store};
use zeroize::Zeroizing;

use crate::DeliverError;

/// Stage reads within one render: `(secret, stage)` → its value, if the stage is held.
#[derive(Default)]
pub(crate) struct Cache(HashMap<(SecretName, Stage), Option<SecretValue>>);

/// The text a reference renders to.
pub(crate) async fn resolve(
    store: &dyn Store,
    path: &Path,
    r: &ValueRef,
    cache: &mut Cache,
) -> Result<Zeroizing<String>, DeliverError> {
    let key = (r.secret.clone(), r.stage);
    if !cache.0.contains_key(&key) {
        let v = store
            .read_stage(&r.secret, r.stage)
            .await
            .map_err(|source| DeliverError::Store {
                path: path.to_path_buf(),
                source,
            })?;
        cache.0.insert(key.clone(), v.map(|v| v.value));
    }
    let Some(Some(value)) = cache.0.get(&key) else {
        // No version holds this stage (no previous yet, or retired): the empty string.
        return Ok(Zeroizing::new(String::new()));
    };
    let err = |what: String| DeliverError::Value {
        path: path.to_path_buf(),
        reference: reference(r),
        what,
    };
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
