//! Metadata endpoints: the secrets a token sees, one secret with its versions, one rotation
//! record, the audit tail. No value passes here.

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use rotor_core::RotationId;
use serde::Deserialize;

use super::{
    ApiError, ApiPath, ApiQuery, ApiState, no_store, secret_name, unknown, visible_rows,
    visible_spec,
};
use crate::auth::Caller;

pub(super) async fn list_secrets(
    caller: Caller,
    State(st): State<ApiState>,
) -> Result<Response, ApiError> {
    let rows = visible_rows(&st.0.engine, Some(&caller)).await?;
    Ok(no_store(Json(rows)))
}

pub(super) async fn get_secret(
    caller: Caller,
    State(st): State<ApiState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Response, ApiError> {
    let name = secret_name(&name)?;
    let spec = visible_spec(&st.0.engine, &caller, &name)?;
    let row = visible_rows(&st.0.engine, Some(&caller))
        .await?
        .into_iter()
        .find(|r| r.name == name)
        .ok_or_else(|| unknown(&name, None))?;
    let versions = st.0.engine.store().versions(&name).await?;
    let mut out = serde_json::to_value(&row).map_err(ApiError::internal)?;
    if let Some(obj) = out.as_object_mut() {
        obj.insert("description".into(), serde_json::json!(spec.description));
        obj.insert("owner".into(), serde_json::json!(spec.owner));
        obj.insert(
            "policy".into(),
            serde_json::to_value(spec.policy).map_err(ApiError::internal)?,
        );
        obj.insert(
            "versions".into(),
            serde_json::to_value(versions).map_err(ApiError::internal)?,
        );
    }
    Ok(no_store(Json(out)))
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct RotationPath {
    id: String,
}

pub(super) async fn get_rotation(
    caller: Caller,
    State(st): State<ApiState>,
    ApiPath(p): ApiPath<RotationPath>,
) -> Result<Response, ApiError> {
    if p.id.is_empty()
        || p.id.len() > 64
        || !p.id.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
    {
        return Err(ApiError::bad_request(
            "a rotation id is a UUID (hex digits and dashes)",
        ));
    }
    let id = RotationId::from_stored(p.id.to_ascii_lowercase());
    match st.0.engine.store().rotation(&id).await? {
        Some(r) if caller.sees(r.secret.as_str()) => Ok(no_store(Json(r))),
        _ => Err(ApiError::not_found(format!("no rotation {id}"))),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct AuditQuery {
    n: Option<usize>,
}

pub(super) async fn audit(
    caller: Caller,
    State(st): State<ApiState>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Response, ApiError> {
    if !caller.is_admin() {
        return Err(ApiError::forbidden(format!(
            "token {:?} may not read the audit log: it needs scope \"admin\"",
            caller.name
        )));
    }
    let n = q.n.unwrap_or(50).clamp(1, 1000);
    Ok(no_store(Json(st.0.engine.store().audit_tail(n).await?)))
}
