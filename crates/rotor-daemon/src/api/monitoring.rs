//! `/healthz`, `/readyz` and `/metrics`: what monitoring reads (public when `[server]
//! public` lists them).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rotor_core::config::PublicEndpoint;

use super::{ApiError, ApiState, MaybeCaller, gate, visible_rows};
use crate::auth::Caller;

pub(super) async fn healthz(
    State(st): State<ApiState>,
    who: MaybeCaller,
) -> Result<Response, ApiError> {
    gate(&st, PublicEndpoint::Health, who)?;
    Ok(Json(serde_json::json!({ "status": "ok" })).into_response())
}

pub(super) async fn readyz(
    State(st): State<ApiState>,
    who: MaybeCaller,
) -> Result<Response, ApiError> {
    gate(&st, PublicEndpoint::Health, who)?;
    match st.0.engine.store().audit_tail(1).await {
        Ok(_) => Ok(Json(serde_json::json!({ "status": "ready" })).into_response()),
        Err(e) => {
            tracing::warn!(error = %e, "readyz: the store is not reachable");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "the store is not reachable",
            ))
        }
    }
}

pub(super) async fn metrics(
    State(st): State<ApiState>,
    who: MaybeCaller,
) -> Result<Response, ApiError> {
    let caller = gate(&st, PublicEndpoint::Metrics, who)?;
    metrics_body(&st, caller.as_ref()).await
}

/// `/metrics` for `caller` (everything when `None`): also what the separate metrics listener
/// serves.
pub(super) async fn metrics_body(
    st: &ApiState,
    caller: Option<&Caller>,
) -> Result<Response, ApiError> {
    let rows = visible_rows(&st.0.engine, caller).await?;
    let mut body = st.0.metrics.render(&rows);
    // The head of the audit chain, so a scraper keeps a copy outside the store for
    // `rotor audit verify --expect-head SEQ:HASH`.
    if let Some(head) = st.0.engine.store().audit_tail(1).await?.last() {
        body.push_str(&crate::metrics::audit_head(head.seq, &head.hash));
    }
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response())
}
