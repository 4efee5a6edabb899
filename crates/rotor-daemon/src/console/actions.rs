//! The console's actions (`POST`, form-encoded): sign-in, sign-out, rotate now, retire and
//! emergency. Every action but sign-in needs a live session and its CSRF token (a hidden
//! field, compared in constant time); the cookie is SameSite=Strict besides. Rotations run
//! through the API's rotate handler, so the scope check (`crate::auth`), notifications and
//! metrics are exactly the API's; the console adds no rules of its own.

use axum::Form;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use rotor_core::SecretName;
use rotor_core::config::ScopeAction;
use rotor_core::schedule::SecretState;
use serde::Deserialize;

use super::pages::safe_next;
use super::session::{self, Session};
use super::{ConsoleState, Visitor};
use crate::api::{self, ApiError};

/// The sign-in form. The token is wiped when the form drops.
#[derive(Deserialize)]
pub(super) struct SignInForm {
    token: String,
    next: Option<String>,
}

impl Drop for SignInForm {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.token);
    }
}

/// Whether a form came from a page of this daemon: a browser's `Origin` (sent with every
/// POST) names the host the request went to. No `Origin` (curl, old browsers) passes; the
/// session cookie is SameSite=Strict and actions carry a CSRF token besides.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    authority.is_some() && authority == host
}

pub(super) async fn sign_in(
    State(st): State<ConsoleState>,
    visitor: Visitor,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    // A sign-in posted by another site would sign this browser in as someone else.
    if !same_origin(&headers) {
        return st.error(
            &visitor,
            StatusCode::FORBIDDEN,
            "this sign-in form was posted from another site; open /console/sign-in on rotor itself",
        );
    }
    // A new session id on every sign-in; the old one ends.
    if let Some(old) = &visitor.id {
        st.sessions.end(old);
    }
    let next = safe_next(form.next.as_deref()).to_owned();
    let back = |why: &str| {
        Redirect::to(&format!(
            "/console/sign-in?error={why}&next={}",
            next.replace('&', "%26")
        ))
        .into_response()
    };
    let token = form.token.trim();
    if token.is_empty() {
        return back("empty");
    }
    let Some(caller) = st.api.0.tokens.verify(token).cloned() else {
        tracing::info!("console: a sign-in with an invalid token");
        return back("invalid");
    };
    let name = caller.name.clone();
    let Some(id) = st.sessions.start(caller) else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    tracing::info!(token = %name, "console: signed in");
    with_cookie(
        Redirect::to(&next).into_response(),
        &session::set_cookie(&id, st.secure()),
    )
}

fn with_cookie(mut resp: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// A form of an action: the CSRF token, and what the action asks.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ActionForm {
    #[serde(default)]
    csrf: String,
    reason: Option<String>,
    confirm: Option<String>,
}

/// Why an action was refused before it started: the status and the message for the page.
type Refusal = (StatusCode, String);

/// The session behind an action, when its CSRF token matches.
fn checked<'a>(visitor: &'a Visitor, form: &ActionForm) -> Result<&'a Session, Refusal> {
    let Some(s) = &visitor.session else {
        return Err((
            StatusCode::UNAUTHORIZED,
            "you are not signed in (or the session ended): sign in again, then repeat the action"
                .to_owned(),
        ));
    };
    if !s.csrf_ok(&form.csrf) {
        return Err((
            StatusCode::FORBIDDEN,
            "this form is stale or came from another site (its CSRF token does not match): reload the page and try again".to_owned(),
        ));
    }
    Ok(s)
}

pub(super) async fn sign_out(
    State(st): State<ConsoleState>,
    visitor: Visitor,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Err((status, msg)) = checked(&visitor, &form) {
        return st.error(&visitor, status, &msg);
    }
    if let Some(id) = &visitor.id {
        st.sessions.end(id);
    }
    with_cookie(
        Redirect::to("/").into_response(),
        &session::clear_cookie(st.secure()),
    )
}

fn name_of(st: &ConsoleState, raw: &str) -> Result<SecretName, Refusal> {
    let name = SecretName::new(raw).map_err(|_| {
        (
            StatusCode::BAD_REQUEST,
            "that is not a secret name".to_owned(),
        )
    })?;
    st.api
        .0
        .engine
        .spec(name.as_str())
        .map_err(|_| (StatusCode::NOT_FOUND, format!("no secret named {name}")))?;
    Ok(name)
}

fn done(name: &SecretName, what: &str) -> Response {
    Redirect::to(&format!("/console/secrets/{name}?done={what}")).into_response()
}

/// Runs the API's rotate handler for the signed-in token with this JSON body.
async fn rotate_via_api(
    st: &ConsoleState,
    visitor: &Visitor,
    session: &Session,
    name: &SecretName,
    body: serde_json::Value,
    what: &str,
) -> Response {
    let body = match serde_json::to_vec(&body) {
        Ok(b) => api::Body(Bytes::from(b)),
        Err(e) => return api_error(st, visitor, &ApiError::internal(e)),
    };
    match api::rotate(
        session.caller.clone(),
        State(st.api.clone()),
        api::ApiPath(name.to_string()),
        body,
    )
    .await
    {
        Ok(_) => done(name, what),
        Err(e) => api_error(st, visitor, &e),
    }
}

fn api_error(st: &ConsoleState, visitor: &Visitor, e: &ApiError) -> Response {
    st.error(visitor, e.status, &e.message)
}

pub(super) async fn rotate(
    State(st): State<ConsoleState>,
    visitor: Visitor,
    Path(raw): Path<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    let (session, name) = match checked(&visitor, &form).and_then(|s| Ok((s, name_of(&st, &raw)?)))
    {
        Ok(x) => x,
        Err((status, msg)) => return st.error(&visitor, status, &msg),
    };
    let confirm = form.confirm.as_deref().map(str::trim) == Some(name.as_str());
    let body = serde_json::json!({
        "reason": non_empty(form.reason.as_deref()).unwrap_or("rotate now, from the console"),
        "confirm": confirm,
    });
    rotate_via_api(&st, &visitor, session, &name, body, "rotated").await
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

pub(super) async fn emergency(
    State(st): State<ConsoleState>,
    visitor: Visitor,
    Path(raw): Path<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    let (session, name) = match checked(&visitor, &form).and_then(|s| Ok((s, name_of(&st, &raw)?)))
    {
        Ok(x) => x,
        Err((status, msg)) => return st.error(&visitor, status, &msg),
    };
    let Some(reason) = non_empty(form.reason.as_deref()) else {
        return st.error(
            &visitor,
            StatusCode::BAD_REQUEST,
            "an emergency rotation needs a reason (what leaked, where): go back and fill it in",
        );
    };
    if form.confirm.as_deref().map(str::trim) != Some(name.as_str()) {
        return st.error(
            &visitor,
            StatusCode::BAD_REQUEST,
            &format!("to confirm the emergency rotation, type the secret's name ({name}) exactly; nothing was rotated"),
        );
    }
    let body = serde_json::json!({ "emergency": true, "reason": reason, "confirm": true });
    rotate_via_api(&st, &visitor, session, &name, body, "emergency").await
}

pub(super) async fn retire(
    State(st): State<ConsoleState>,
    visitor: Visitor,
    Path(raw): Path<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    let (session, name) = match checked(&visitor, &form).and_then(|s| Ok((s, name_of(&st, &raw)?)))
    {
        Ok(x) => x,
        Err((status, msg)) => return st.error(&visitor, status, &msg),
    };
    if !session.caller.allows(ScopeAction::Rotate, name.as_str()) {
        return st.error(
            &visitor,
            StatusCode::FORBIDDEN,
            &format!(
                "token {:?} may not retire secret {name}: it needs scope \"rotate:{name}\" (or a glob matching it) or \"admin\"",
                session.caller.name
            ),
        );
    }
    let engine = &st.api.0.engine;
    let rows = match engine.status().await {
        Ok(r) => r,
        Err(e) => return api_error(&st, &visitor, &e.into()),
    };
    let standing = rows
        .into_iter()
        .find(|r| r.name == name)
        .map(|r| r.standing);
    if standing.as_ref().map(|s| s.state) != Some(SecretState::RetireDue) {
        let when = standing.and_then(|s| s.retire_after).map_or_else(
            || "no previous value is waiting".to_owned(),
            |t| format!("its grace ends at {}", rotor_core::schedule::short(t)),
        );
        return st.error(
            &visitor,
            StatusCode::CONFLICT,
            &format!("secret {name} is not due for retirement ({when}); nothing was retired"),
        );
    }
    let result = engine.resume(Some(name.as_str())).await;
    st.api.0.scheduler.wake();
    match result {
        Ok(list) => match list.into_iter().find_map(|(_, r)| r.err()) {
            None => done(&name, "retired"),
            Some(e) => api_error(&st, &visitor, &e.into()),
        },
        Err(e) => api_error(&st, &visitor, &e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_forms_from_this_host_sign_in() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(same_origin(&h), "no Origin: not a cross-site browser post");
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&h));
    }
}
