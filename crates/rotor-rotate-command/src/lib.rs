//! `kind = "command"`: rotates a secret on a target rotor does not know by running a plugin,
//! an executable in any language that speaks the protocol of `docs/plugin-protocol.md`.
//!
//! Each step is one run of the plugin (through `rotor-process`, the one child runner): a JSON
//! request on stdin, a JSON response on stdout, the exit code saying ok, transient or
//! permanent. Values travel only on stdin and stdout, never in argv or the environment; what
//! the plugin writes to stderr is logged line by line with every value of the call redacted,
//! and so is any error text it returns (it ends up in the rotation record and the audit).

mod protocol;
mod redact;

use async_trait::async_trait;
use rotor_core::config::{CommandSettings, KindSettings};
use rotor_core::rotator::{Generated, PlannedStep, StepContext};
use rotor_core::store::Versioned;
use rotor_core::{Kind, Rotator, RotatorError, SecretSpec, SecretValue, Step};
use zeroize::Zeroizing;

pub use protocol::{EXIT_TRANSIENT, PROTOCOL, PluginStep};
use protocol::{Request, Response, WireVersion};
use redact::Redactor;

/// Length of the value rotor draws when a plugin's `create` returns none.
const GENERATED_LENGTH: usize = 32;

/// Runs command plugins. Stateless: everything comes from the secret's settings.
#[derive(Debug, Default, Clone, Copy)]
pub struct CommandRotator;

impl CommandRotator {
    pub fn new() -> Self {
        Self
    }
}

/// Which versions a request carries, and whether with their values.
struct Carry<'a> {
    current: Option<(&'a Versioned, bool)>,
    pending: Option<&'a Versioned>,
    previous: Option<&'a Versioned>,
}

fn settings_of(spec: &SecretSpec) -> Result<&CommandSettings, RotatorError> {
    match &spec.settings {
        KindSettings::Command(c) => Ok(c),
        _ => Err(RotatorError::permanent(format!(
            "secret {} is not a command secret",
            spec.name
        ))),
    }
}

fn text<'a>(spec: &SecretSpec, v: &'a Versioned) -> Result<&'a str, RotatorError> {
    v.value.expose_str().map_err(|_| {
        RotatorError::permanent(format!(
            "version {} of secret {} is not UTF-8 text, which the plugin protocol (JSON) cannot carry",
            v.meta.id, spec.name
        ))
    })
}

fn wire<'a>(
    spec: &SecretSpec,
    v: &'a Versioned,
    with_value: bool,
    redactor: &mut Redactor,
) -> Result<WireVersion<'a>, RotatorError> {
    let value = if with_value {
        redactor.add(v.value.expose());
        Some(text(spec, v)?)
    } else {
        None
    };
    Ok(WireVersion {
        version: v.meta.id.to_string(),
        value,
        metadata: &v.meta.metadata,
    })
}

/// Runs the plugin for one step and returns its response, or the error its exit code says.
async fn call(
    ctx: &StepContext<'_>,
    step: PluginStep,
    carry: Carry<'_>,
) -> Result<(Response, Redactor), RotatorError> {
    let spec = ctx.spec;
    let settings = settings_of(spec)?;
    let mut redactor = Redactor::default();
    let request = Request {
        protocol: PROTOCOL,
        step: step.as_str(),
        secret: spec.name.as_str(),
        emergency: ctx.emergency,
        settings: &settings.settings,
        current: carry
            .current
            .map(|(v, with)| wire(spec, v, with, &mut redactor))
            .transpose()?,
        pending: carry
            .pending
            .map(|v| wire(spec, v, true, &mut redactor))
            .transpose()?,
        previous: carry
            .previous
            .map(|v| wire(spec, v, true, &mut redactor))
            .transpose()?,
    };
    let mut input = Zeroizing::new(Vec::new());
    serde_json::to_writer(&mut *input, &request).map_err(|e| {
        RotatorError::permanent(format!("cannot encode the {} request: {e}", step.as_str()))
    })?;
    input.push(b'\n');

    let (program, args) = settings
        .command
        .split_first()
        .ok_or_else(|| RotatorError::permanent("the plugin command is empty"))?;
    let who = format!(
        "plugin {program} (secret {}, step {})",
        spec.name,
        step.as_str()
    );
    let run = rotor_process::Spec::new(program, settings.timeout.to_std())
        .args(args)
        .env("ROTOR_PLUGIN_PROTOCOL", PROTOCOL.to_string())
        .env("ROTOR_SECRET", spec.name.as_str())
        .env("ROTOR_STEP", step.as_str())
        .stdin(input);
    let finished = match rotor_process::run(run).await {
        Ok(f) => f,
        Err(rotor_process::ProcessError::TimedOut { after, stderr, .. }) => {
            log_stderr(&who, &stderr, &redactor);
            return Err(RotatorError::transient(format!(
                "{who} did not answer within {}s; it and every process it started were killed",
                after.as_secs_f64()
            ))
            .with_fix("make the step faster, or raise `timeout` in the secret's config"));
        }
        Err(e @ rotor_process::ProcessError::Spawn { .. }) => {
            return Err(RotatorError::permanent(format!("{who}: {e}")).with_fix(
                "check that `command` names an executable file (an absolute path, or one on PATH)",
            ));
        }
        Err(e) => return Err(RotatorError::transient(format!("{who}: {e}"))),
    };
    log_stderr(&who, &finished.stderr.bytes, &redactor);

    let response: Response = if finished.stdout.truncated {
        return Err(RotatorError::permanent(format!(
            "{who} printed more than {} bytes on stdout",
            rotor_process::DEFAULT_OUTPUT_LIMIT
        ))
        .with_fix("a response is one small JSON object"));
    } else if finished.stdout.bytes.iter().all(u8::is_ascii_whitespace) {
        Response::default()
    } else {
        match serde_json::from_slice(&finished.stdout.bytes) {
            Ok(r) => r,
            Err(e) if finished.status.success() => {
                return Err(RotatorError::permanent(format!(
                    // serde's message can quote the input (a value): only where, not what.
                    "{who} exited 0 but its stdout is not a JSON response object ({:?} error at line {}, column {})",
                    e.classify(),
                    e.line(),
                    e.column()
                ))
                .with_fix("print one JSON object (see docs/plugin-protocol.md); log to stderr"));
            }
            // A failing plugin that printed no JSON still fails by its exit code.
            Err(_) => Response::default(),
        }
    };

    if finished.status.success() {
        if let Some(v) = &response.value {
            redactor.add(v.as_bytes());
        }
        return Ok((response, redactor));
    }
    let cause = response
        .error
        .as_deref()
        .map(|e| redactor.clean(e))
        .unwrap_or_else(|| "no error message".into());
    let mut err = match finished.code() {
        Some(EXIT_TRANSIENT) => {
            RotatorError::transient(format!("{who} failed (exit 75, transient): {cause}"))
        }
        Some(code) => RotatorError::permanent(format!("{who} failed (exit {code}): {cause}")),
        // Killed from outside (OOM killer, an operator): the step is idempotent, try again.
        None => RotatorError::transient(format!("{who} was killed by a signal: {cause}")),
    };
    if let Some(fix) = &response.fix {
        err = err.with_fix(redactor.clean(fix));
    }
    Err(err)
}

fn log_stderr(who: &str, stderr: &[u8], redactor: &Redactor) {
    if stderr.is_empty() {
        return;
    }
    let text = Zeroizing::new(String::from_utf8_lossy(stderr).into_owned());
    for line in redactor.clean(&text).lines() {
        tracing::info!(plugin = %who, "{line}");
    }
}

fn kind_error_fix(e: RotatorError) -> RotatorError {
    if e.fix.is_some() {
        e
    } else {
        e.with_fix("see the plugin's own messages above (stderr, logged redacted)")
    }
}

#[async_trait]
impl Rotator for CommandRotator {
    fn kind(&self) -> Kind {
        Kind::Command
    }

    fn plan(&self, spec: &SecretSpec) -> Vec<PlannedStep> {
        let program = settings_of(spec)
            .ok()
            .and_then(|s| s.command.first().cloned())
            .unwrap_or_default();
        [
            Step::Create,
            Step::Set,
            Step::Test,
            Step::Finish,
            Step::Retire,
        ]
        .into_iter()
        .map(|step| PlannedStep {
            step,
            touches: format!("runs {program} for `{step}` (JSON on stdin)"),
        })
        .collect()
    }

    async fn create(&self, ctx: &StepContext<'_>) -> Result<Generated, RotatorError> {
        let carry = Carry {
            current: ctx.current.map(|c| (c, false)),
            pending: None,
            previous: None,
        };
        let (response, _) = call(ctx, PluginStep::Create, carry)
            .await
            .map_err(kind_error_fix)?;
        let value = match response.value {
            Some(v) if v.is_empty() => {
                return Err(RotatorError::permanent(format!(
                    "plugin for secret {} returned an empty value from create",
                    ctx.spec.name
                ))
                .with_fix("return a non-empty \"value\", or omit it and rotor draws one"));
            }
            Some(v) => SecretValue::from_slice(v.as_bytes()),
            None => rotor_rotate::random::alnum(GENERATED_LENGTH)?,
        };
        let metadata = match response.metadata {
            None => serde_json::json!({}),
            Some(m @ serde_json::Value::Object(_)) => m,
            Some(_) => {
                return Err(RotatorError::permanent(format!(
                    "plugin for secret {} returned `metadata` that is not a JSON object",
                    ctx.spec.name
                )));
            }
        };
        Ok(Generated { value, metadata })
    }

    async fn set(&self, ctx: &StepContext<'_>, pending: &Versioned) -> Result<(), RotatorError> {
        let carry = Carry {
            current: ctx.current.map(|c| (c, true)),
            pending: Some(pending),
            previous: None,
        };
        call(ctx, PluginStep::Set, carry).await.map(drop)
    }

    async fn test(&self, ctx: &StepContext<'_>, pending: &Versioned) -> Result<(), RotatorError> {
        // `test` is also how the engine re-checks the current value before retire; then
        // `pending` is the current version and is sent as such.
        let is_current = ctx.current.is_some_and(|c| c.meta.id == pending.meta.id);
        let carry = Carry {
            current: ctx.current.filter(|_| !is_current).map(|c| (c, false)),
            pending: Some(pending),
            previous: None,
        };
        call(ctx, PluginStep::Test, carry).await.map(drop)
    }

    async fn finish(&self, ctx: &StepContext<'_>, pending: &Versioned) -> Result<(), RotatorError> {
        let carry = Carry {
            current: ctx.current.map(|c| (c, false)),
            pending: Some(pending),
            previous: None,
        };
        call(ctx, PluginStep::Finish, carry).await.map(drop)
    }

    async fn retire(
        &self,
        ctx: &StepContext<'_>,
        previous: &Versioned,
    ) -> Result<(), RotatorError> {
        let carry = Carry {
            current: ctx.current.map(|c| (c, true)),
            pending: None,
            previous: Some(previous),
        };
        call(ctx, PluginStep::Retire, carry).await.map(drop)
    }

    async fn rollback(
        &self,
        ctx: &StepContext<'_>,
        pending: &Versioned,
    ) -> Result<(), RotatorError> {
        let carry = Carry {
            current: ctx.current.map(|c| (c, true)),
            pending: Some(pending),
            previous: None,
        };
        call(ctx, PluginStep::Rollback, carry).await.map(drop)
    }

    async fn evict(
        &self,
        ctx: &StepContext<'_>,
        previous: &Versioned,
    ) -> Result<rotor_core::rotator::Eviction, RotatorError> {
        let carry = Carry {
            current: ctx.current.map(|c| (c, false)),
            pending: None,
            previous: Some(previous),
        };
        let (response, _) = call(ctx, PluginStep::Evict, carry).await?;
        Ok(rotor_core::rotator::Eviction {
            ended: response.evicted.unwrap_or(0),
            surviving: response.surviving.unwrap_or(0),
        })
    }

    async fn probe(&self, ctx: &StepContext<'_>) -> Result<Vec<String>, RotatorError> {
        let carry = Carry {
            current: ctx.current.map(|c| (c, true)),
            pending: None,
            previous: None,
        };
        let (response, redactor) = call(ctx, PluginStep::Probe, carry).await?;
        Ok(response
            .checks
            .unwrap_or_else(|| vec!["the plugin's probe passed".into()])
            .iter()
            .map(|c| redactor.clean(c))
            .collect())
    }
}
