//! The HTTP API (axum): with `console/`, the only code that answers HTTP requests (the
//! listeners are bound in `daemon.rs`; `server.rs` is their accept loop and limits).
//!
//! Routes (JSON unless said otherwise; bearer token unless public). A token sees only the
//! secrets one of its scopes matches (see `auth`); any other secret answers 404 like one that
//! does not exist, and no "did you mean" names a secret the caller cannot see.
//! - `GET  /v1/secrets`: metadata and state of the secrets the token sees;
//! - `GET  /v1/secrets/{name}`: one secret with its versions;
//! - `GET  /v1/secrets/{name}/value?stage=current`: the value (`read:` scope);
//! - `PUT  /v1/secrets/{name}/value`: store a value (`write:` scope), checked like `rotor put`;
//! - `POST /v1/secrets/{name}/rotate`: rotate (`rotate:`; `emergency:` for an emergency,
//!   `confirm:` too for a secret marked `requires_confirmation`);
//! - `GET  /v1/rotations/{id}`: one rotation record (of a secret the token sees);
//! - `GET  /v1/audit?n=50`: the audit tail (`admin`);
//! - `GET  /v1/watch`: server-sent events of stage changes (of secrets the token sees);
//! - `GET /.well-known/jwks.json`, `GET /v1/secrets/{name}/jwks.json`, `/healthz`, `/readyz`:
//!   public by default; `/metrics` needs a token unless `[server] public` lists it, and shows
//!   only what the token sees. The operator's console (`/`, `/console/...`) is merged in from
//!   [`crate::console`]; its overview is public only when `[server] public` lists `page`.
//!
//! Layout: this file holds the shared state, the routers and the checks every handler
//! uses (name, visibility, scope, public gate); the handlers live by concept in
//! `monitoring` (health, readiness, metrics), `jwks`, `metadata` (secrets, rotations,
//! audit), `values`, `rotate` and `stream` (the watch stream).
//!
//! Invariants: bodies are limited to 64 KiB; names are validated as [`SecretName`]s before
//! anything else; every error, rejections included, goes through [`ApiError`]; a value leaves
//! only through the value endpoint, to a token whose scope allows it.

mod error;
mod extract;
mod headers;
mod jwks;
mod metadata;
mod monitoring;
pub mod read_audit;
mod rotate;
mod stream;
pub mod value_cache;
mod values;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rotor_core::config::{PublicEndpoint, ScopeAction};
use rotor_core::{SecretName, SecretSpec};
use rotor_engine::{Clock, Engine, EngineError};
use tokio_util::sync::CancellationToken;

pub use error::ApiError;
pub use read_audit::ReadAudit;
pub use value_cache::ValueCache;

pub(crate) use extract::{ApiPath, ApiQuery, Body, MaybeCaller};
pub(crate) use rotate::rotate;

use crate::auth::{Caller, Tokens};
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::scheduler::SchedulerHandle;
use crate::watch::WatchHub;

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 64 * 1024;
/// How long an emergency rotation waits for its notification before rotating anyway.
pub const EMERGENCY_NOTIFY_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// What the handlers share.
#[derive(Debug)]
pub struct Shared {
    pub engine: Arc<Engine>,
    pub clock: Arc<dyn Clock>,
    pub tokens: Tokens,
    pub hub: WatchHub,
    pub metrics: Arc<Metrics>,
    pub notifier: Notifier,
    pub scheduler: SchedulerHandle,
    pub shutdown: CancellationToken,
    pub cache: ValueCache,
    pub reads: ReadAudit,
    /// The runtime rotations run on (the daemon's multi-thread one); the handlers themselves
    /// run on the API's own thread (see `api_runtime`).
    pub work: tokio::runtime::Handle,
}

/// The router's state.
#[derive(Debug, Clone)]
pub struct ApiState(pub Arc<Shared>);

/// The API's router.
pub fn router(state: ApiState) -> Router {
    let tls = state.0.engine.config().server.tls.is_some();
    let request_timeout = state
        .0
        .engine
        .config()
        .server
        .limits
        .request_timeout
        .to_std();
    Router::new()
        .route("/healthz", get(monitoring::healthz))
        .route("/readyz", get(monitoring::readyz))
        .route("/metrics", get(monitoring::metrics))
        .route("/.well-known/jwks.json", get(jwks::jwks_all))
        .route("/v1/secrets", get(metadata::list_secrets))
        .route("/v1/secrets/{name}", get(metadata::get_secret))
        .route(
            "/v1/secrets/{name}/value",
            get(values::get_value).put(values::put_value),
        )
        .route("/v1/secrets/{name}/rotate", post(rotate::rotate))
        .route("/v1/secrets/{name}/jwks.json", get(jwks::jwks_one))
        .route("/v1/rotations/{id}", get(metadata::get_rotation))
        .route("/v1/audit", get(metadata::audit))
        .route("/v1/watch", get(stream::watch))
        .fallback(|| async { ApiError::not_found("no such endpoint; see /v1/secrets") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method; see the API routes in the README",
            )
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state.clone())
        .merge(crate::console::routes(state))
        .layer(axum::middleware::from_fn_with_state(
            request_timeout,
            within_deadline,
        ))
        .layer(axum::middleware::map_response(
            move |r: Response| async move { headers::secure(r, tls) },
        ))
}

/// The router of the separate metrics listener (`[server] metrics_listen`): `/metrics` with
/// every secret and `/healthz`, no token, nothing else.
pub fn metrics_router(state: ApiState) -> Router {
    let tls = state.0.engine.config().server.tls.is_some();
    Router::new()
        .route(
            "/metrics",
            get(|State(st): State<ApiState>| async move { monitoring::metrics_body(&st, None).await }),
        )
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({ "status": "ok" })) }),
        )
        .fallback(|| async {
            ApiError::not_found("this listener serves /metrics and /healthz only")
        })
        .layer(axum::middleware::map_response(
            move |r: Response| async move { headers::secure(r, tls) },
        ))
        .with_state(state)
}

/// `[server] request_timeout`: reading the body and answering must finish within it. The
/// watch stream (long-lived by design) and rotations (which run to their end in their own
/// task; cancelling one mid-step would only leave it to be resumed) are exempt.
async fn within_deadline(
    State(limit): State<std::time::Duration>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = req.uri().path();
    if path == "/v1/watch" || path.ends_with("/rotate") {
        return next.run(req).await;
    }
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request took longer than the server's request_timeout; send it again",
        )
        .into_response(),
    }
}

/// A secret name from the path, validated.
fn secret_name(raw: &str) -> Result<SecretName, ApiError> {
    SecretName::new(raw)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_name", e.to_string()))
}

/// The spec of `name` if `caller` may see it. An unknown secret and one the caller cannot see
/// answer alike, and a "did you mean" only names a secret the caller sees.
fn visible_spec<'a>(
    engine: &'a Engine,
    caller: &Caller,
    name: &SecretName,
) -> Result<&'a SecretSpec, ApiError> {
    match engine.spec(name.as_str()) {
        Ok(spec) if caller.sees(name.as_str()) => Ok(spec),
        Ok(_) => Err(unknown(name, None)),
        Err(EngineError::UnknownSecret { suggestion, .. }) => Err(unknown(
            name,
            suggestion.filter(|s| caller.sees(s)).as_deref(),
        )),
        Err(e) => Err(e.into()),
    }
}

fn unknown(name: &SecretName, hint: Option<&str>) -> ApiError {
    ApiError::not_found(match hint {
        Some(h) => format!("no secret named {name}; did you mean {h}?"),
        None => format!("no secret named {name}"),
    })
}

fn require(caller: &Caller, action: ScopeAction, name: &SecretName) -> Result<(), ApiError> {
    if caller.allows(action, name.as_str()) {
        return Ok(());
    }
    let verb = action.as_str();
    Err(ApiError::forbidden(format!(
        "token {:?} may not {verb} secret {name}: it needs scope \"{verb}:{name}\" (or a glob matching it) or \"admin\"",
        caller.name
    )))
}

/// The gate of an endpoint `[server] public` may open: `Ok(None)` when it is public (all
/// rows shown), else the caller, whose scopes then filter what it sees (401 without a token).
fn gate(
    st: &ApiState,
    endpoint: PublicEndpoint,
    who: MaybeCaller,
) -> Result<Option<Caller>, ApiError> {
    if st.0.engine.config().server.public.contains(&endpoint) {
        return Ok(None);
    }
    who.0.map(Some).ok_or_else(extract::no_token)
}

/// Status rows of the secrets `caller` sees (all of them for a public endpoint).
async fn visible_rows(
    engine: &Engine,
    caller: Option<&Caller>,
) -> Result<Vec<rotor_engine::StatusRow>, ApiError> {
    let mut rows = engine.status().await?;
    if let Some(c) = caller {
        rows.retain(|r| c.sees(r.name.as_str()));
    }
    Ok(rows)
}

/// Metadata and audit answers are not to be kept by caches or browsers.
fn no_store(body: impl IntoResponse) -> Response {
    (
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        body,
    )
        .into_response()
}

fn with_caller(reason: Option<&str>, caller: &Caller) -> String {
    match reason {
        Some(r) if !r.trim().is_empty() => format!("{} (API token {})", r.trim(), caller.name),
        _ => format!("via the API (token {})", caller.name),
    }
}
