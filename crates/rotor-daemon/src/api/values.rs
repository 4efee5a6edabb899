//! The value endpoints: `GET …/value` (audited before the value leaves) and `PUT …/value`
//! (checked like `rotor put`).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use rotor_core::config::ScopeAction;
use rotor_core::{SecretValue, Stage};
use serde::Deserialize;

use super::{
    ApiError, ApiPath, ApiQuery, ApiState, Body, no_store, require, secret_name, visible_spec,
    with_caller,
};
use crate::auth::Caller;

#[derive(Debug, Deserialize)]
pub(super) struct StageQuery {
    stage: Option<String>,
}

pub(super) async fn get_value(
    caller: Caller,
    State(st): State<ApiState>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<StageQuery>,
) -> Result<Response, ApiError> {
    let name = secret_name(&name)?;
    let stage = match q.stage.as_deref() {
        None => Stage::Current,
        Some(s) => Stage::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown stage {s:?}: use current, previous or pending"
            ))
        })?,
    };
    visible_spec(&st.0.engine, &caller, &name)?;
    require(&caller, ScopeAction::Read, &name)?;
    let (version, body) =
        st.0.cache
            .read(st.0.engine.store(), &name, stage)
            .await?
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "no_value",
                    format!("secret {name} has no {stage} version"),
                )
            })?;
    // On the audit record (or counted for it) before the value leaves.
    st.0.reads
        .record(&caller.name, &name, &version, stage)
        .await?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response())
}

/// `PUT /v1/secrets/{name}/value`. The value is wiped from this struct when it drops.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PutBody {
    value: String,
    /// `utf8` (default) or `base64`.
    encoding: Option<String>,
    reason: Option<String>,
}

impl Drop for PutBody {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.value);
    }
}

pub(super) async fn put_value(
    caller: Caller,
    State(st): State<ApiState>,
    ApiPath(name): ApiPath<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let name = secret_name(&name)?;
    let spec = visible_spec(&st.0.engine, &caller, &name)?;
    require(&caller, ScopeAction::Write, &name)?;
    let put: PutBody = body.json(
        false,
        r#"{"value": "...", "reason": "..."} (optionally "encoding": "base64")"#,
    )?;
    let value = match put.encoding.as_deref() {
        None | Some("utf8") => SecretValue::from_slice(put.value.as_bytes()),
        Some("base64") => SecretValue::new(
            base64::engine::general_purpose::STANDARD
                .decode(put.value.as_bytes())
                .map_err(|_| ApiError::bad_request("`value` is not valid base64"))?,
        ),
        Some(_) => return Err(ApiError::bad_request("`encoding` must be utf8 or base64")),
    };
    // The same check as `rotor put`: a value of the wrong shape is refused before it is stored.
    let metadata = rotor_rotate::value_check::check(spec, &value)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_value", e.to_string()))?;
    let reason = with_caller(put.reason.as_deref(), &caller);
    let id =
        st.0.engine
            .put(name.as_str(), value, metadata, Some(&reason))
            .await?;
    st.0.scheduler.wake();
    Ok(no_store(Json(
        serde_json::json!({ "secret": name, "version": id }),
    )))
}
