//! The operator's console: server-rendered HTML pages (minijinja templates, auto-escaped), a
//! stylesheet and a few lines of JS served by rotor itself (no CDN, no framework).
//!
//! Pages (`GET`):
//! - `/`: the overview, public like the status page it replaces (names and states only);
//! - `/console/secrets/{name}`: one secret (versions, rotation history, failure reason, next
//!   due in its window, grace) for a signed-in token;
//! - `/console/audit`: the audit log and whether its hash chain and MACs verify (`admin`);
//! - `/console/sign-in`: the sign-in form; `/console/events`: live updates (SSE).
//!
//! Actions (`POST`, signed in, CSRF token checked): sign-in, sign-out, rotate now, retire,
//! emergency (reason required, the secret's name typed to confirm). Rotations go through the
//! API's own rotate handler, so scopes, notifications and metrics are the API's.
//!
//! Invariants: no page holds a value (views carry ids, stages and metadata only, see
//! [`view`]); every state shown is a `Standing` from `engine.status()`; the session cookie
//! holds a random id, never the token ([`session`]).

mod actions;
mod pages;
pub mod session;
pub mod view;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use minijinja::Environment;

use crate::api::{ApiState, BODY_LIMIT};
use session::{Session, Sessions};

/// The console's state: the API's shared state, the sessions and the templates.
#[derive(Debug, Clone)]
pub struct ConsoleState {
    pub api: ApiState,
    pub sessions: Arc<Sessions>,
    templates: Arc<Environment<'static>>,
}

/// The console's routes, with their own state, to merge into the API's router.
pub fn routes(api: ApiState) -> Router {
    let state = ConsoleState {
        api,
        sessions: Arc::new(Sessions::default()),
        templates: Arc::new(templates()),
    };
    Router::new()
        .route("/", get(pages::overview))
        .route("/console/secrets/{name}", get(pages::secret))
        .route("/console/audit", get(pages::audit))
        .route(
            "/console/sign-in",
            get(pages::sign_in).post(actions::sign_in),
        )
        .route("/console/sign-out", post(actions::sign_out))
        .route("/console/secrets/{name}/rotate", post(actions::rotate))
        .route("/console/secrets/{name}/retire", post(actions::retire))
        .route(
            "/console/secrets/{name}/emergency",
            post(actions::emergency),
        )
        .route("/console/events", get(pages::events))
        .route("/console/static/console.css", get(stylesheet))
        .route("/console/static/console.js", get(script))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// Templates are compiled in; a `.html` name turns auto-escaping on.
fn templates() -> Environment<'static> {
    let mut env = Environment::new();
    for (name, source) in [
        ("base.html", include_str!("templates/base.html")),
        ("overview.html", include_str!("templates/overview.html")),
        ("secret.html", include_str!("templates/secret.html")),
        ("audit.html", include_str!("templates/audit.html")),
        ("sign_in.html", include_str!("templates/sign_in.html")),
        ("error.html", include_str!("templates/error.html")),
    ] {
        if let Err(e) = env.add_template(name, source) {
            // The templates are part of the binary: a syntax error is caught by the tests.
            tracing::error!(template = name, error = %e, "a console template does not compile");
        }
    }
    env
}

/// Who is looking: the signed-in session, if any.
#[derive(Debug, Clone)]
pub struct Visitor {
    pub id: Option<String>,
    pub session: Option<Session>,
}

impl FromRequestParts<ConsoleState> for Visitor {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ConsoleState,
    ) -> Result<Self, Self::Rejection> {
        let id = parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(session::from_cookie_header)
            .map(str::to_owned);
        let session = id.as_deref().and_then(|id| state.sessions.get(id));
        Ok(Visitor {
            id: session.as_ref().and(id),
            session,
        })
    }
}

impl ConsoleState {
    /// Whether the session cookie must be `Secure` (rotor serves TLS).
    fn secure(&self) -> bool {
        self.api.0.engine.config().server.tls.is_some()
    }

    /// Renders a page; a template error is logged and answered with a plain 500.
    fn render(&self, status: StatusCode, name: &str, ctx: minijinja::Value) -> Response {
        match self
            .templates
            .get_template(name)
            .and_then(|t| t.render(ctx))
        {
            Ok(body) => html(status, body),
            Err(e) => {
                tracing::error!(template = name, error = %e, "rendering a console page failed");
                html(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "<!doctype html><html lang=\"en\"><title>rotor: error</title><p>internal error; the daemon's log has the details</p></html>".to_owned(),
                )
            }
        }
    }

    /// The error page: what went wrong and what to do, with the visitor's header.
    fn error(&self, visitor: &Visitor, status: StatusCode, message: &str) -> Response {
        self.render(
            status,
            "error.html",
            minijinja::context! { me => me(visitor), status => status.as_u16(), message },
        )
    }
}

/// What every page's header shows about the visitor.
fn me(visitor: &Visitor) -> minijinja::Value {
    match &visitor.session {
        Some(s) => minijinja::context! {
            name => s.caller.name.clone(),
            csrf => s.csrf.clone(),
            admin => s.caller.is_admin(),
        },
        None => minijinja::Value::UNDEFINED,
    }
}

/// An HTML response that no cache keeps and no other site frames.
fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            // CSP, framing and referrer policy: `api::headers` adds them to every HTML answer.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response()
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/css")),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
        ],
        include_str!("static/console.css"),
    )
        .into_response()
}

async fn script() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/javascript"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
        ],
        include_str!("static/console.js"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_template_compiles() {
        let env = super::templates();
        for name in [
            "base.html",
            "overview.html",
            "secret.html",
            "audit.html",
            "sign_in.html",
            "error.html",
        ] {
            env.get_template(name)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
