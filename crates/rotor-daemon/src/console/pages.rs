//! The console's pages (`GET`): they read `engine.status()`, the store's version metadata,
//! rotation records and audit log, and hand [`view`](super::view)s to the templates.

use std::convert::Infallible;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use futures_util::StreamExt as _;
use minijinja::context;
use rotor_core::SecretName;
use rotor_core::config::ScopeAction;
use rotor_core::schedule::SecretState;
use serde::Deserialize;
use tokio_stream::wrappers::BroadcastStream;

use super::{ConsoleState, Visitor, me, view};

/// A view as a template value.
fn ser<T: serde::Serialize>(t: &T) -> minijinja::Value {
    minijinja::Value::from(minijinja::value::Serde(t))
}

/// Rotations listed on a secret's page.
const HISTORY: usize = 20;
/// Audit records listed on the audit page (the verification covers the whole log).
const AUDIT_ROWS: usize = 200;

/// What a finished action says on the page it returns to (`?done=`): a fixed set of
/// messages, so the query string cannot put text on the page.
fn notice(done: Option<&str>) -> Option<&'static str> {
    match done? {
        "rotated" => Some("Rotated: the new version is current."),
        "retired" => Some("Retired: the previous value is gone."),
        "emergency" => Some("Emergency rotation done: the old value is dead."),
        "signed-in" => Some("Signed in."),
        _ => None,
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct Done {
    done: Option<String>,
}

pub(super) async fn overview(
    State(st): State<ConsoleState>,
    visitor: Visitor,
    headers: HeaderMap,
    Query(q): Query<Done>,
) -> Response {
    let engine = &st.api.0.engine;
    // The overview lists names and states: public only when `[server] public` lists `page`;
    // otherwise for a session (or a bearer token, as the API takes it), showing only the
    // secrets its token sees. A browser without either is sent to sign in, a script gets 401.
    let public = engine
        .config()
        .server
        .public
        .contains(&rotor_core::config::PublicEndpoint::Page);
    let caller = visitor
        .session
        .as_ref()
        .map(|s| s.caller.clone())
        .or_else(|| bearer(&st, &headers));
    if !public && caller.is_none() {
        let browser = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"));
        return if browser {
            sign_in_first("/")
        } else {
            crate::api::ApiError::unauthorized(
                "the overview needs a token: sign in at /console/sign-in, or send `Authorization: Bearer rtr_...`",
            )
            .into_response()
        };
    }
    let mut rows = match engine.status().await {
        Ok(r) => r,
        Err(e) => return st.error(&visitor, StatusCode::SERVICE_UNAVAILABLE, &store_down(&e)),
    };
    if !public && let Some(caller) = &caller {
        rows.retain(|r| caller.sees(r.name.as_str()));
    }
    let now = engine.now();
    st.render(
        StatusCode::OK,
        "overview.html",
        context! {
            me => me(&visitor),
            now => ser(&view::When::new(now, now)),
            total => rows.len(),
            counts => ser(&view::counts(&rows)),
            rows => ser(&view::overview(&rows, &engine.config().secrets, now)),
            notice => notice(q.done.as_deref()),
        },
    )
}

/// The caller of an `Authorization: Bearer` header with a valid token.
fn bearer(st: &ConsoleState, headers: &HeaderMap) -> Option<crate::auth::Caller> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    st.api.0.tokens.verify(token.trim()).cloned()
}

fn store_down(e: &dyn std::fmt::Display) -> String {
    tracing::warn!(error = %e, "console: reading the store failed");
    "the store cannot be read right now; the daemon's log has the details".to_owned()
}

fn sign_in_first(next: &str) -> Response {
    Redirect::to(&format!("/console/sign-in?next={}", urlencode(next))).into_response()
}

/// Percent-encodes a console path for `?next=` (only our own paths get here).
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub(super) async fn secret(
    State(st): State<ConsoleState>,
    visitor: Visitor,
    Path(raw): Path<String>,
    Query(q): Query<Done>,
) -> Response {
    let Ok(name) = SecretName::new(&raw) else {
        return st.error(
            &visitor,
            StatusCode::BAD_REQUEST,
            "that is not a secret name",
        );
    };
    let Some(session) = &visitor.session else {
        return sign_in_first(&format!("/console/secrets/{name}"));
    };
    let engine = &st.api.0.engine;
    // A secret the token may not see reads like one that does not exist (as in the API).
    let spec = engine
        .spec(name.as_str())
        .ok()
        .filter(|_| session.caller.sees(name.as_str()));
    let Some(spec) = spec else {
        return st.error(
            &visitor,
            StatusCode::NOT_FOUND,
            &format!("no secret named {name} in the config; the overview lists them all"),
        );
    };
    let store = engine.store();
    let loaded = async {
        let rows = engine.status().await.map_err(|e| store_down(&e))?;
        let versions = store.versions(&name).await.map_err(|e| store_down(&e))?;
        let rotations = store
            .rotations(Some(&name), HISTORY)
            .await
            .map_err(|e| store_down(&e))?;
        let audit = store.audit_all().await.map_err(|e| store_down(&e))?;
        Ok::<_, String>((rows, versions, rotations, audit))
    };
    let (rows, versions, rotations, audit) = match loaded.await {
        Ok(x) => x,
        Err(msg) => return st.error(&visitor, StatusCode::SERVICE_UNAVAILABLE, &msg),
    };
    let Some(row) = rows.iter().find(|r| r.name == name) else {
        return st.error(&visitor, StatusCode::NOT_FOUND, "no such secret");
    };
    let now = engine.now();
    let caller = &session.caller;
    let can_rotate = caller.allows(ScopeAction::Rotate, name.as_str());
    st.render(
        StatusCode::OK,
        "secret.html",
        context! {
            me => me(&visitor),
            now => ser(&view::When::new(now, now)),
            row => ser(&view::RowView::new(row, Some(spec), now)),
            description => spec.description.clone(),
            rotate_every => spec.policy.rotate_every.to_string(),
            grace => spec.policy.grace.to_string(),
            requires_confirmation => spec.policy.requires_confirmation,
            deadline => ser(&row.standing.deadline.map(|t| view::When::new(t, now))),
            window => view::window_of(spec, row, now),
            versions => ser(&view::versions(&versions, now)),
            rotations => ser(&view::rotations(&rotations, &audit, now)),
            can_rotate => can_rotate && row.kind != rotor_core::Kind::Manual,
            can_retire => can_rotate && row.standing.state == SecretState::RetireDue,
            can_emergency => can_rotate && row.kind != rotor_core::Kind::Manual,
            read_only => !can_rotate,
            notice => notice(q.done.as_deref()),
        },
    )
}

pub(super) async fn audit(State(st): State<ConsoleState>, visitor: Visitor) -> Response {
    let Some(session) = &visitor.session else {
        return sign_in_first("/console/audit");
    };
    if !session.caller.is_admin() {
        return st.error(
            &visitor,
            StatusCode::FORBIDDEN,
            &format!(
                "token {:?} may not read the audit log: it needs scope \"admin\"",
                session.caller.name
            ),
        );
    }
    let engine = &st.api.0.engine;
    // The store's own check (chain and MACs under its record key), the one `rotor audit
    // verify` reads: a forged record appended with its chain recomputed fails here too.
    let checked = match engine.store().audit_verify().await {
        Ok(v) => v,
        Err(e) => return st.error(&visitor, StatusCode::SERVICE_UNAVAILABLE, &store_down(&e)),
    };
    let (verified, problem) = match &checked.outcome {
        Ok(k) => (
            true,
            format!("{} records, hash chain and MACs intact", k.records),
        ),
        Err(e) => (false, e.to_string()),
    };
    let records = checked.records;
    let now = engine.now();
    st.render(
        StatusCode::OK,
        "audit.html",
        context! {
            me => me(&visitor),
            now => ser(&view::When::new(now, now)),
            verified,
            verification => problem,
            total => records.len(),
            shown => records.len().min(AUDIT_ROWS),
            records => ser(&view::audit(&records, now, AUDIT_ROWS)),
        },
    )
}

#[derive(Debug, Deserialize)]
pub(super) struct Next {
    next: Option<String>,
    error: Option<String>,
}

/// Only our own pages are places to go after sign-in (no open redirect).
pub(super) fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with("/console/") && !n.contains("//") && !n.contains('\\') => n,
        _ => "/",
    }
}

pub(super) async fn sign_in(
    State(st): State<ConsoleState>,
    visitor: Visitor,
    Query(q): Query<Next>,
) -> Response {
    let error = match q.error.as_deref() {
        Some("invalid") => {
            Some("That token is not valid. Make one with `rotor token new NAME --scope ...`.")
        }
        Some("empty") => Some("Paste a token (rtr_...) to sign in."),
        _ => None,
    };
    st.render(
        if error.is_some() {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::OK
        },
        "sign_in.html",
        context! {
            me => me(&visitor),
            next => safe_next(q.next.as_deref()),
            error,
        },
    )
}

/// Live updates for a signed-in page: each stage change becomes an event; the page's script
/// then reloads its `<main>`.
pub(super) async fn events(State(st): State<ConsoleState>, visitor: Visitor) -> Response {
    if visitor.session.is_none() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let shared = &st.api.0;
    let events = BroadcastStream::new(shared.hub.subscribe()).map(|r| {
        Ok::<Event, Infallible>(match r {
            Ok(_) => Event::default().event("stage_change").data("{}"),
            Err(_) => Event::default().event("lagged").data("{}"),
        })
    });
    Sse::new(events.take_until(shared.shutdown.clone().cancelled_owned()))
        .keep_alive(KeepAlive::default())
        .into_response()
}
