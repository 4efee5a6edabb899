//! `POST /v1/secrets/{name}/rotate`: a rotation or an emergency through the API (also the
//! console's rotate and emergency actions), with its scopes, notifications and metrics.

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use rotor_core::Trigger;
use rotor_core::config::ScopeAction;
use rotor_core::config::service::NotifyEvent;
use rotor_engine::RotateOptions;
use serde::Deserialize;

use super::{
    ApiError, ApiPath, ApiState, Body, EMERGENCY_NOTIFY_WAIT, no_store, require, secret_name,
    visible_spec, with_caller,
};
use crate::auth::Caller;
use crate::notify::Notification;

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
    // In its own task on the rotation runtime: a client that hangs up (or a cut connection)
    // never stops a rotation between steps, and its work never holds up the API's thread.
    let engine = s.engine.clone();
    let target = name.to_string();
    let result = s
        .work
        .spawn(async move { engine.rotate(&target, &opts).await })
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
