//! The HTTP API (axum): the only module that knows HTTP as a server.
//!
//! Routes (JSON unless said otherwise; bearer token unless marked public):
//! - `GET  /v1/secrets`: every secret's metadata and state (any valid token);
//! - `GET  /v1/secrets/{name}`: one secret with its versions (any valid token);
//! - `GET  /v1/secrets/{name}/value?stage=current`: the value (`read:` scope);
//! - `PUT  /v1/secrets/{name}/value`: store a value (`write:` scope);
//! - `POST /v1/secrets/{name}/rotate`: rotate (`rotate:` scope);
//! - `GET  /v1/rotations/{id}`: one rotation record (any valid token);
//! - `GET  /v1/audit?n=50`: the audit tail (`admin`);
//! - `GET  /v1/watch`: server-sent events of stage changes (any valid token);
//! - public: `GET /.well-known/jwks.json`, `GET /v1/secrets/{name}/jwks.json`, `/healthz`,
//!   `/readyz`, `/metrics`; the operator's console (`/`, `/console/...`) is merged in from
//!   [`crate::console`].
//!
//! Invariants: bodies are limited to 64 KiB; names are validated as [`SecretName`]s before
//! anything else; every error goes through [`ApiError`]; a value leaves only through the
//! value endpoint, to a token whose scope allows it.

mod error;
pub mod value_cache;

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use bytes::Bytes;
use futures_util::StreamExt as _;
use rotor_core::config::service::NotifyEvent;
use rotor_core::config::{KindSettings, ScopeAction};
use rotor_core::{Kind, RotationId, SecretName, SecretSpec, SecretValue, Stage, Trigger};
use rotor_engine::{Clock, Engine, RotateOptions};
use serde::Deserialize;
use tokio_stream::wrappers::BroadcastStream;
use tokio_util::sync::CancellationToken;

pub use error::ApiError;
pub use value_cache::ValueCache;

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
}

/// The router's state.
#[derive(Debug, Clone)]
pub struct ApiState(pub Arc<Shared>);

/// The API's router.
pub fn router(state: ApiState) -> Router {
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
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state.clone())
        .merge(crate::console::routes(state))
}

// ---- extractors -----------------------------------------------------------------------------

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::unauthorized(
                "no bearer token: send `Authorization: Bearer rtr_...` (make one with `rotor token new`)",
            ));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then_some(rest.trim())
            })
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header is not `Bearer <token>`")
            })?;
        state
            .0
            .tokens
            .verify(token)
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("the bearer token is not valid"))
    }
}

/// A request body, size-limited, with rejections as [`ApiError`]s.
pub(crate) struct Body(pub(crate) Bytes);

impl FromRequest<ApiState> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &ApiState) -> Result<Self, ApiError> {
        match Bytes::from_request(req, state).await {
            Ok(b) => Ok(Body(b)),
            Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the request body is larger than {} KiB", BODY_LIMIT / 1024),
            )),
            Err(r) => Err(ApiError::bad_request(format!(
                "cannot read the request body ({})",
                r.status()
            ))),
        }
    }
}

impl Body {
    /// Parses JSON; an empty body is `T::default()` when `empty_ok`. Parse errors say where,
    /// never what (the body may hold a value).
    fn json<T: serde::de::DeserializeOwned + Default>(
        &self,
        empty_ok: bool,
        expected: &str,
    ) -> Result<T, ApiError> {
        if self.0.iter().all(u8::is_ascii_whitespace) {
            return if empty_ok {
                Ok(T::default())
            } else {
                Err(ApiError::bad_request(format!(
                    "the request body is empty; send {expected}"
                )))
            };
        }
        serde_json::from_slice(&self.0).map_err(|e| {
            let what = match e.classify() {
                serde_json::error::Category::Data => "a field is missing or has the wrong type",
                serde_json::error::Category::Eof => "the JSON ends early",
                _ => "the body is not valid JSON",
            };
            ApiError::bad_request(format!(
                "{what} (line {}, column {}); send {expected}",
                e.line(),
                e.column()
            ))
        })
    }
}

/// A secret name from the path, validated.
fn secret_name(raw: &str) -> Result<SecretName, ApiError> {
    SecretName::new(raw)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_name", e.to_string()))
}

fn spec<'a>(engine: &'a Engine, name: &SecretName) -> Result<&'a SecretSpec, ApiError> {
    engine.spec(name.as_str()).map_err(ApiError::from)
}

fn require(caller: &Caller, action: ScopeAction, name: &SecretName) -> Result<(), ApiError> {
    if caller.allows(action, name.as_str()) {
        return Ok(());
    }
    let verb = match action {
        ScopeAction::Read => "read",
        ScopeAction::Rotate => "rotate",
        ScopeAction::Write => "write",
        ScopeAction::Admin => "admin",
    };
    Err(ApiError::forbidden(format!(
        "token {:?} may not {verb} secret {name}: it needs scope \"{verb}:{name}\" (or a glob matching it) or \"admin\"",
        caller.name
    )))
}

// ---- public endpoints -----------------------------------------------------------------------

async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(State(st): State<ApiState>) -> Result<impl IntoResponse, ApiError> {
    match st.0.engine.store().audit_tail(1).await {
        Ok(_) => Ok(Json(serde_json::json!({ "status": "ready" }))),
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

async fn metrics(State(st): State<ApiState>) -> Result<Response, ApiError> {
    let rows = st.0.engine.status().await?;
    let body = st.0.metrics.render(&rows);
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
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
/// The stages are read in the order a key moves through them, so a key that moves while
/// they are read is still seen (in its old stage or its new one), and a key that signs is
/// always in the answer; a key seen twice that way is listed once.
async fn public_keys(
    engine: &Engine,
    spec: &SecretSpec,
) -> Result<Vec<rotor_keyring::PublicJwk>, ApiError> {
    let mut keys: Vec<rotor_keyring::PublicJwk> = Vec::new();
    for stage in [Stage::Pending, Stage::Current, Stage::Previous] {
        if let Some(v) = engine.store().read_stage(&spec.name, stage).await? {
            let material = rotor_rotate::jwt::material(spec.name.as_str(), &v)
                .map_err(|e| ApiError::internal(e.message))?;
            if let Some(jwk) = material.public_jwk()
                && !keys.iter().any(|k| k.kid == jwk.kid)
            {
                keys.push(jwk.clone());
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

/// All public keys; cached for the shortest max-age among them, so it is safe for each.
async fn jwks_all(State(st): State<ApiState>) -> Result<Response, ApiError> {
    let engine = &st.0.engine;
    let mut keys = Vec::new();
    let mut shortest: Option<u64> = None;
    for spec in engine.config().secrets.iter().filter(|s| is_public_jwt(s)) {
        keys.extend(public_keys(engine, spec).await?);
        if let Some(m) = max_age(spec) {
            shortest = Some(shortest.map_or(m, |s| s.min(m)));
        }
    }
    Ok(jwks_response(keys, shortest.unwrap_or(0)))
}

async fn jwks_one(
    State(st): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let name = secret_name(&name)?;
    let spec = spec(&st.0.engine, &name)?;
    if spec.kind != Kind::Jwt {
        return Err(ApiError::not_found(format!(
            "secret {name} is not a JWT key"
        )));
    }
    if !is_public_jwt(spec) {
        return Err(ApiError::not_found(format!(
            "secret {name} is an HMAC key: it has no public JWKS (HMAC keys are shared secrets)"
        )));
    }
    Ok(jwks_response(
        public_keys(&st.0.engine, spec).await?,
        max_age(spec).unwrap_or(0),
    ))
}

// ---- metadata -------------------------------------------------------------------------------

async fn list_secrets(
    _caller: Caller,
    State(st): State<ApiState>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(st.0.engine.status().await?))
}

async fn get_secret(
    _caller: Caller,
    State(st): State<ApiState>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let name = secret_name(&name)?;
    let spec = spec(&st.0.engine, &name)?;
    let row =
        st.0.engine
            .status()
            .await?
            .into_iter()
            .find(|r| r.name == name)
            .ok_or_else(|| ApiError::not_found(format!("no secret named {name}")))?;
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
    Ok(Json(out))
}

#[derive(Debug, Default, Deserialize)]
struct RotationPath {
    id: String,
}

async fn get_rotation(
    _caller: Caller,
    State(st): State<ApiState>,
    Path(p): Path<RotationPath>,
) -> Result<impl IntoResponse, ApiError> {
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
        Some(r) => Ok(Json(r)),
        None => Err(ApiError::not_found(format!("no rotation {id}"))),
    }
}

#[derive(Debug, Deserialize)]
struct AuditQuery {
    n: Option<usize>,
}

async fn audit(
    caller: Caller,
    State(st): State<ApiState>,
    Query(q): Query<AuditQuery>,
) -> Result<impl IntoResponse, ApiError> {
    if !caller.is_admin() {
        return Err(ApiError::forbidden(format!(
            "token {:?} may not read the audit log: it needs scope \"admin\"",
            caller.name
        )));
    }
    let n = q.n.unwrap_or(50).clamp(1, 1000);
    Ok(Json(st.0.engine.store().audit_tail(n).await?))
}

// ---- values ---------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct StageQuery {
    stage: Option<String>,
}

async fn get_value(
    caller: Caller,
    State(st): State<ApiState>,
    Path(name): Path<String>,
    Query(q): Query<StageQuery>,
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
    spec(&st.0.engine, &name)?;
    require(&caller, ScopeAction::Read, &name)?;
    let body =
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
    Path(name): Path<String>,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    let name = secret_name(&name)?;
    spec(&st.0.engine, &name)?;
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
    let reason = with_caller(put.reason.as_deref(), &caller);
    let id =
        st.0.engine
            .put(name.as_str(), value, serde_json::json!({}), Some(&reason))
            .await?;
    st.0.scheduler.wake();
    Ok(Json(serde_json::json!({ "secret": name, "version": id })))
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

pub(crate) async fn rotate(
    caller: Caller,
    State(st): State<ApiState>,
    Path(name): Path<String>,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    let name = secret_name(&name)?;
    spec(&st.0.engine, &name)?;
    require(&caller, ScopeAction::Rotate, &name)?;
    let req: RotateBody = body.json(
        true,
        r#"{"emergency": false, "reason": "...", "confirm": false}"#,
    )?;
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
    let result = s.engine.rotate(name.as_str(), &opts).await;
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
            Ok(Json(outcome))
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

async fn watch(_caller: Caller, State(st): State<ApiState>) -> impl IntoResponse {
    let rx = st.0.hub.subscribe();
    let ready = futures_util::stream::once(async {
        Ok::<Event, Infallible>(Event::default().event("ready").data("{}"))
    });
    let events = BroadcastStream::new(rx).filter_map(|r| async move {
        match r {
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
    });
    let stream = ready
        .chain(events)
        .take_until(st.0.shutdown.clone().cancelled_owned());
    Sse::new(stream).keep_alive(KeepAlive::default())
}
