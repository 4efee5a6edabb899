//! The HTTP API (axum): the only module that knows HTTP as a server.
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
//! Invariants: bodies are limited to 64 KiB; names are validated as [`SecretName`]s before
//! anything else; every error, rejections included, goes through [`ApiError`]; a value leaves
//! only through the value endpoint, to a token whose scope allows it.

mod error;
mod extract;
mod headers;
pub mod read_audit;
pub mod value_cache;

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use futures_util::StreamExt as _;
use rotor_core::config::service::NotifyEvent;
use rotor_core::config::{KindSettings, PublicEndpoint, ScopeAction};
use rotor_core::{RotationId, SecretName, SecretSpec, SecretValue, Stage, Trigger};
use rotor_engine::{Clock, Engine, EngineError, RotateOptions};
use serde::Deserialize;
use tokio_stream::wrappers::BroadcastStream;
use tokio_util::sync::CancellationToken;

pub use error::ApiError;
pub use read_audit::ReadAudit;
pub use value_cache::ValueCache;

pub(crate) use extract::{ApiPath, ApiQuery, Body, MaybeCaller};

use crate::auth::{Caller, Tokens};
use crate::metrics::Metrics;
use crate::notify::{Notification, Notifier};
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
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/.well-known/jwks.json", get(jwks_all))
        .route("/v1/secrets", get(list_secrets))
        .route("/v1/secrets/{name}", get(get_secret))
        .route("/v1/secrets/{name}/value", get(get_value).put(put_value))
        .route("/v1/secrets/{name}/rotate", post(rotate))
        .route("/v1/secrets/{name}/jwks.json", get(jwks_one))
        .route("/v1/rotations/{id}", get(get_rotation))
        .route("/v1/audit", get(audit))
        .route("/v1/watch", get(watch))
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
            get(|State(st): State<ApiState>| async move { metrics_body(&st, None).await }),
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

// ---- public endpoints -----------------------------------------------------------------------

async fn healthz(State(st): State<ApiState>, who: MaybeCaller) -> Result<Response, ApiError> {
    gate(&st, PublicEndpoint::Health, who)?;
    Ok(Json(serde_json::json!({ "status": "ok" })).into_response())
}

async fn readyz(State(st): State<ApiState>, who: MaybeCaller) -> Result<Response, ApiError> {
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

async fn metrics(State(st): State<ApiState>, who: MaybeCaller) -> Result<Response, ApiError> {
    let caller = gate(&st, PublicEndpoint::Metrics, who)?;
    metrics_body(&st, caller.as_ref()).await
}

/// `/metrics` for `caller` (everything when `None`): also what the separate metrics listener
/// serves.
async fn metrics_body(st: &ApiState, caller: Option<&Caller>) -> Result<Response, ApiError> {
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

fn is_public_jwt(spec: &SecretSpec) -> bool {
    matches!(&spec.settings, KindSettings::Jwt(j) if !j.algorithm.is_hmac())
}

/// The public keys of a JWT secret's staged versions (pending, current, previous), read
/// from the store on every request (no cache: the served JWKS never lags the store).
///
/// The stages are one snapshot ([`Store::read_staged`](rotor_core::Store::read_staged)), so
/// the key that signs is always in the answer and no key is listed twice.
///
/// A stored key that does not parse is skipped (logged and counted in
/// `rotor_jwks_skipped_keys_total`), so one bad key never takes the whole JWKS down for
/// every verifier.
async fn public_keys(
    engine: &Engine,
    metrics: &Metrics,
    spec: &SecretSpec,
) -> Result<Vec<rotor_keyring::PublicJwk>, ApiError> {
    let mut keys: Vec<rotor_keyring::PublicJwk> = Vec::new();
    for (stage, v) in engine.store().read_staged(&spec.name).await? {
        match rotor_rotate::jwt::material(spec.name.as_str(), &v) {
            Ok(material) => {
                if let Some(jwk) = material.public_jwk() {
                    keys.push(jwk.clone());
                }
            }
            Err(e) => {
                tracing::error!(secret = %spec.name, %stage, error = %e.message,
                    "JWKS: skipping a stored key that does not parse");
                metrics.count_jwks_skipped(spec.name.as_str());
            }
        }
    }
    Ok(keys)
}

/// The JWKS max-age of a public JWT secret (its prepublish covers it; see rotor-core's
/// `JwtSettings`).
fn max_age(spec: &SecretSpec) -> Option<u64> {
    match &spec.settings {
        KindSettings::Jwt(j) if !j.algorithm.is_hmac() => Some(j.jwks_max_age.as_secs()),
        _ => None,
    }
}

/// A JWKS response cached for `max_age` seconds: every key signs only after its prepublish,
/// which is at least its max-age plus a margin, so a cache that honours this header always
/// has the signing key. Zero: `no-cache`.
fn jwks_response(keys: Vec<rotor_keyring::PublicJwk>, max_age: u64) -> Response {
    let body = rotor_keyring::Jwks { keys }.to_json();
    let cache = if max_age == 0 {
        HeaderValue::from_static("no-cache")
    } else {
        HeaderValue::from_str(&format!("public, max-age={max_age}"))
            .unwrap_or(HeaderValue::from_static("no-cache"))
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/jwk-set+json"),
            ),
            (header::CACHE_CONTROL, cache),
        ],
        body,
    )
        .into_response()
}

/// All public keys (of the secrets the caller sees, when the JWKS is not public); cached for
/// the shortest max-age among them, so it is safe for each.
async fn jwks_all(State(st): State<ApiState>, who: MaybeCaller) -> Result<Response, ApiError> {
    let caller = gate(&st, PublicEndpoint::Jwks, who)?;
    let engine = &st.0.engine;
    let mut keys = Vec::new();
    let mut shortest: Option<u64> = None;
    for spec in engine.config().secrets.iter().filter(|s| is_public_jwt(s)) {
        if caller.as_ref().is_none_or(|c| c.sees(spec.name.as_str())) {
            keys.extend(public_keys(engine, &st.0.metrics, spec).await?);
            if let Some(m) = max_age(spec) {
                shortest = Some(shortest.map_or(m, |s| s.min(m)));
            }
        }
    }
    Ok(jwks_response(keys, shortest.unwrap_or(0)))
}

async fn jwks_one(
    State(st): State<ApiState>,
    who: MaybeCaller,
    ApiPath(name): ApiPath<String>,
) -> Result<Response, ApiError> {
    let caller = gate(&st, PublicEndpoint::Jwks, who)?;
    let name = secret_name(&name)?;
    // One answer for "no such secret", "not visible", "not a JWT key" and "an HMAC key", so
    // the public endpoint cannot be used to probe names or kinds.
    let spec =
        st.0.engine
            .config()
            .secret(name.as_str())
            .filter(|s| is_public_jwt(s))
            .filter(|s| caller.as_ref().is_none_or(|c| c.sees(s.name.as_str())))
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "no public JWKS named {name} (only asymmetric JWT keys have one)"
                ))
            })?;
    Ok(jwks_response(
        public_keys(&st.0.engine, &st.0.metrics, spec).await?,
        max_age(spec).unwrap_or(0),
    ))
}

// ---- metadata -------------------------------------------------------------------------------

async fn list_secrets(caller: Caller, State(st): State<ApiState>) -> Result<Response, ApiError> {
    let rows = visible_rows(&st.0.engine, Some(&caller)).await?;
    Ok(no_store(Json(rows)))
}

async fn get_secret(
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

/// Metadata and audit answers are not to be kept by caches or browsers.
fn no_store(body: impl IntoResponse) -> Response {
    (
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        body,
    )
        .into_response()
}

#[derive(Debug, Default, Deserialize)]
struct RotationPath {
    id: String,
}

async fn get_rotation(
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
struct AuditQuery {
    n: Option<usize>,
}

async fn audit(
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

// ---- values ---------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct StageQuery {
    stage: Option<String>,
}

async fn get_value(
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

async fn put_value(
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

fn with_caller(reason: Option<&str>, caller: &Caller) -> String {
    match reason {
        Some(r) if !r.trim().is_empty() => format!("{} (API token {})", r.trim(), caller.name),
        _ => format!("via the API (token {})", caller.name),
    }
}

// ---- rotate ---------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    #[serde(default)]
    emergency: bool,
    reason: Option<String>,
    #[serde(default)]
    confirm: bool,
}

/// The scope a rotation needs: `emergency:` for an emergency, `rotate:` otherwise (a secret
/// marked `requires_confirmation` needs `confirm:` on top).
fn required_rotate_scope(emergency: bool) -> ScopeAction {
    if emergency {
        ScopeAction::Emergency
    } else {
        ScopeAction::Rotate
    }
}

pub(crate) async fn rotate(
    caller: Caller,
    State(st): State<ApiState>,
    ApiPath(name): ApiPath<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let name = secret_name(&name)?;
    let policy = visible_spec(&st.0.engine, &caller, &name)?.policy;
    let req: RotateBody = body.json(
        true,
        r#"{"emergency": false, "reason": "...", "confirm": false}"#,
    )?;
    // Disruptive rotations need their own scopes, so a `rotate:*` token for routine work
    // cannot cut off every session or rotate what an operator must confirm.
    require(&caller, required_rotate_scope(req.emergency), &name)?;
    if policy.requires_confirmation {
        require(&caller, ScopeAction::Confirm, &name)?;
    }
    let reason = with_caller(req.reason.as_deref(), &caller);
    let s = &st.0;
    if req.emergency {
        // Notifications go out first in an emergency.
        s.notifier
            .send_first(
                &Notification::new(
                    NotifyEvent::Emergency,
                    Some(&name),
                    None,
                    format!("{name}: {reason}"),
                    s.clock.now(),
                ),
                EMERGENCY_NOTIFY_WAIT,
            )
            .await;
    }
    let opts = RotateOptions {
        trigger: if req.emergency {
            Trigger::Emergency
        } else {
            Trigger::Manual
        },
        reason: Some(reason),
        emergency: req.emergency,
        evict: true,
        confirm: req.confirm,
    };
    let started = tokio::time::Instant::now();
    // In its own task: a client that hangs up (or a cut connection) never stops a rotation
    // between steps.
    let engine = s.engine.clone();
    let target = name.to_string();
    let result = tokio::spawn(async move { engine.rotate(&target, &opts).await })
        .await
        .map_err(ApiError::internal)?;
    s.scheduler.wake();
    match result {
        Ok(outcome) => {
            if let Ok(spec) = s.engine.spec(name.as_str()) {
                s.metrics
                    .observe_duration(spec.kind, started.elapsed().as_secs_f64());
            }
            let rotation = match &outcome {
                rotor_engine::Outcome::Completed { rotation, .. }
                | rotor_engine::Outcome::InGrace { rotation, .. }
                | rotor_engine::Outcome::Waiting { rotation, .. } => rotation.clone(),
            };
            s.notifier.spawn(Notification::new(
                NotifyEvent::Rotated,
                Some(&name),
                Some(&rotation),
                format!(
                    "secret {name} was rotated via the API (token {})",
                    caller.name
                ),
                s.clock.now(),
            ));
            Ok(no_store(Json(outcome)))
        }
        Err(e) => {
            // Only a rotation that ended `failed` counts and alerts (issue 15.3); busy and
            // other contention are answered, not counted.
            if e.rotation_failed() {
                s.metrics.count_failure(name.as_str());
                s.notifier.spawn(Notification::new(
                    NotifyEvent::Failed,
                    Some(&name),
                    None,
                    format!("secret {name}: rotation via the API failed: {e}"),
                    s.clock.now(),
                ));
            }
            Err(e.into())
        }
    }
}

// ---- watch ----------------------------------------------------------------------------------

async fn watch(caller: Caller, State(st): State<ApiState>) -> impl IntoResponse {
    let rx = st.0.hub.subscribe();
    let ready = futures_util::stream::once(async {
        Ok::<Event, Infallible>(Event::default().event("ready").data("{}"))
    });
    let caller = Arc::new(caller);
    let events = BroadcastStream::new(rx).filter_map(move |r| {
        let caller = caller.clone();
        async move {
            match r {
                Ok(ev) if !caller.sees(ev.secret.as_str()) => None,
                Ok(ev) => Event::default()
                    .event("stage_change")
                    .json_data(&ev)
                    .ok()
                    .map(Ok),
                Err(tokio_stream::wrappers::errors::BroadcastStreamRecvError::Lagged(n)) => {
                    Some(Ok(Event::default()
                        .event("lagged")
                        .data(format!("{{\"missed\":{n}}}"))))
                }
            }
        }
    });
    let stream = ready
        .chain(events)
        .take_until(st.0.shutdown.clone().cancelled_owned());
    Sse::new(stream).keep_alive(KeepAlive::default())
}
