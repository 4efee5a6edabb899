//! The JWKS endpoints: the public keys of asymmetric JWT secrets, read from the store on
//! every request and cached by clients for the secret's `jwks_max_age`.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use rotor_core::SecretSpec;
use rotor_core::config::{KindSettings, PublicEndpoint};
use rotor_engine::Engine;

use super::{ApiError, ApiPath, ApiState, MaybeCaller, gate, secret_name};
use crate::metrics::Metrics;

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
pub(super) async fn jwks_all(
    State(st): State<ApiState>,
    who: MaybeCaller,
) -> Result<Response, ApiError> {
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

pub(super) async fn jwks_one(
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
