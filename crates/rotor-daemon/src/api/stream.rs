//! `GET /v1/watch`: the server-sent events of stage changes, filtered to the secrets the
//! token sees, ended by shutdown.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::StreamExt as _;
use tokio_stream::wrappers::BroadcastStream;

use super::ApiState;
use crate::auth::Caller;

pub(super) async fn watch(caller: Caller, State(st): State<ApiState>) -> impl IntoResponse {
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
