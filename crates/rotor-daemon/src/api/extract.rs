//! Extractors whose rejections are [`ApiError`]s, so that no request is ever answered with
//! axum's plain-text rejections: the caller ([`Caller`], [`MaybeCaller`]), the body
//! ([`Body`]), the query ([`ApiQuery`]) and path parameters ([`ApiPath`]).

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::{ApiError, ApiState, BODY_LIMIT};
use crate::auth::Caller;

/// The bearer token of `parts`, if one is sent: `Ok(None)` without an `Authorization` header.
fn authenticate(parts: &Parts, state: &ApiState) -> Result<Option<Caller>, ApiError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Ok(None);
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
        .map(Some)
        .ok_or_else(|| ApiError::unauthorized("the bearer token is not valid"))
}

/// The answer to a request that needs a token and sent none.
pub fn no_token() -> ApiError {
    ApiError::unauthorized(
        "no bearer token: send `Authorization: Bearer rtr_...` (make one with `rotor token new`)",
    )
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        authenticate(parts, state)?.ok_or_else(no_token)
    }
}

/// A caller that may be anonymous (public endpoints). A token that is sent must be valid.
#[derive(Debug)]
pub struct MaybeCaller(pub Option<Caller>);

impl FromRequestParts<ApiState> for MaybeCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        authenticate(parts, state).map(MaybeCaller)
    }
}

/// A request body, size-limited, with rejections as [`ApiError`]s.
pub struct Body(pub Bytes);

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
    pub fn json<T: DeserializeOwned + Default>(
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

/// The query string, parsed; a bad one is a `bad_query` error.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<ApiState> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(ApiQuery(v)),
            Err(e) => {
                tracing::debug!(error = %e.body_text(), "API: bad query string");
                Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_query",
                    "the query string is not valid: each parameter at most once, with a value of the documented form (e.g. ?stage=current, ?n=50)",
                ))
            }
        }
    }
}

/// Path parameters, parsed; a bad one (e.g. not UTF-8) is a `bad_path` error.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<ApiState> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(ApiPath(v)),
            Err(e) => {
                tracing::debug!(error = %e.body_text(), "API: bad path parameter");
                Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_path",
                    "a path segment is not valid (percent-decoded it must be UTF-8 text); secret names use letters, digits, '.', '_' and '-'",
                ))
            }
        }
    }
}
