//! Delivery to consumers: the `[[render]]` targets of the config, files and (`kind =
//! "github"`, module `github`) GitHub Actions secrets through `rotor-deliver-github`.
//!
//! A [`Renderer`] writes each `[[render]]` target from the store's stages: a `dotenv` file
//! (the seed's `.env`: `SECRET_KEY`, `SECRET_KEY_PREVIOUS`, `DATABASE_URL`, …), a `json`
//! object of the same variables, or a `template` file whose `{{ secret.stage[.field] }}`
//! references are replaced. The engine calls it (as a [`rotor_engine::Deliver`]) after every
//! finish, retire and put, and it brings **every** target that is behind up to date, not
//! only those referencing the secret that changed: a delivery lost to a crash between a
//! commit and its render is repaired by the next store change. `rotor render`, `rotor
//! resume` and `rotor serve` start-up call [`Renderer::render_all`] (see [`Renderer::catch_up`]).
//!
//! Durability: each target has a state file beside it (`.{name}.rotor-state`, ids only)
//! recording which version of each `secret.stage` its content came from and whether its
//! `on_change` is still owed (see `state`); a target is behind when its bytes differ from a
//! fresh render or its `on_change` is owed, and a render brings it up to date.
//!
//! Values: `{{ s.current }}` is the whole value as UTF-8; `{{ s.current.password }}` is a
//! field of a JSON value (dots walk nested objects); a `previous` that holds no version (no
//! previous yet, or after retire) renders as the empty string, which is how the seed's app
//! knows there is no previous key; a `current` that holds no version (never rotated) or
//! renders empty is an error naming the secret and the fix, and the target is untouched.
//!
//! The dotenv dialect ([`dotenv_quote`]): every value is double-quoted, and `\`, `"`, `$` and
//! `` ` `` are escaped with a backslash; a newline stays a literal newline inside the quotes
//! (a multi-line value). Read back identically by `bash` (`set -a; . FILE`) and by
//! docker-compose-style readers (compose-go's dotenv, python-dotenv); not by line-based
//! readers, which do not support multi-line values at all.
//!
//! Invariants:
//! - a target is written atomically: a temporary file in the same directory, created with
//!   mode 0600 (`O_EXCL`), written, fsynced, renamed over the target, then the directory
//!   fsynced; a failure removes the temporary file, so none is ever left behind;
//! - a target whose bytes would not change is not rewritten and its `on_change` does not run,
//!   unless an earlier `on_change` for it is still owed (crashed or failed);
//! - `on_change` runs only after the new content is in place, in the config's directory,
//!   in its own process group, killed (the whole group) when it exceeds its timeout; its
//!   stdout and stderr are captured and discarded, never logged (it may print secrets);
//! - rendered content is secret: it is held in zeroizing buffers, never logged, and no error
//!   message carries it (errors name the target, the variable, the secret, stage and field);
//! - renders of one target never interleave (one lock per target), so the file always ends
//!   up with the newest stages even when several rotations deliver at once.
//!
//! A `template` target is parsed at every delivery (so an edited template is picked up
//! without a restart); while its file cannot be read or parsed, every delivery reports that
//! target as failed, since it cannot tell which secrets the template references.
//!
//! Not protected against: another process reading the target between rotations (that is
//! its purpose: protect the directory), or a template that prints a value somewhere public.

mod command;
mod format;
mod github;
pub mod private_dir;
mod state;
mod values;
mod write;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rotor_core::config::{RenderKind, RenderSpec, Template};
use rotor_core::{Config, SecretName, Store, StoreError};
use rotor_engine::{Deliver, RetryPolicy, StageChange};
use zeroize::Zeroizing;

pub use format::{dotenv_quote, valid_var_name};
pub use write::write_atomic;

/// `secret.stage` → the version a target's content was rendered from.
type Stamp = std::collections::BTreeMap<String, Option<String>>;

/// Writes the `[[render]]` targets of a config from a store.
pub struct Renderer {
    config: Arc<Config>,
    store: Arc<dyn Store>,
    /// One per `config.render` entry: renders of one target never interleave.
    locks: Vec<tokio::sync::Mutex<()>>,
    /// How transient failures of remote targets (GitHub) are retried within a delivery: the
    /// engine's step policy (4 tries, 200 ms doubling, at most 5 s a wait).
    retry: RetryPolicy,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer")
            .field(
                "targets",
                &self
                    .config
                    .render
                    .iter()
                    .map(RenderSpec::target)
                    .collect::<Vec<_>>(),
            )
            .field("store", &self.store)
            .finish()
    }
}

/// What rendering one target did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderResult {
    /// The file written (for a GitHub target: its state file).
    pub path: PathBuf,
    /// What the target is called: the file, or `github:OWNER/REPO[/ENVIRONMENT]`.
    pub target: String,
    /// The file was (re)written: its content differed, or it did not exist (GitHub: some
    /// secret was written).
    pub changed: bool,
    pub on_change: OnChangeOutcome,
}

impl RenderResult {
    /// Whether the target is written and its `on_change` (if it ran) succeeded.
    pub fn is_ok(&self) -> bool {
        !matches!(self.on_change, OnChangeOutcome::Failed(_))
    }
}

/// What happened to a target's `on_change` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnChangeOutcome {
    /// The target has no `on_change`.
    NotConfigured,
    /// The content did not change, so the command did not run.
    NotRun,
    /// The command ran and exited 0.
    Succeeded,
    /// The command failed or timed out: the message names the target and the exit status or
    /// the timeout (never the command's output).
    Failed(String),
}

/// Why a target could not be rendered. Each names the target; none carries a value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeliverError {
    #[error("render {path}: {source}")]
    Store {
        path: PathBuf,
        #[source]
        source: StoreError,
    },
    #[error("render {path}: template {template}: {message}")]
    Template {
        path: PathBuf,
        template: PathBuf,
        message: String,
    },
    /// A reference that cannot be resolved: the secret, stage and field are in `reference`.
    #[error("render {path}: {{{{ {reference} }}}}: {what}")]
    Value {
        path: PathBuf,
        reference: String,
        what: String,
    },
    #[error("render {path}: variable {name:?}: {what}")]
    Var {
        path: PathBuf,
        name: String,
        what: String,
    },
    /// The target's directory lets other users replace the file (see [`private_dir`]).
    #[error("render {path}: {why}")]
    UnsafeDirectory { path: PathBuf, why: String },
    /// A GitHub target failed: the crate's message, its fix, and whether a retry helps
    /// (`source.transient`). Never the token or a value.
    #[error("render {target}: {source}")]
    Github {
        target: String,
        #[source]
        source: rotor_deliver_github::GithubError,
    },
    #[error("render {path}: cannot {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// `render_all`: some targets failed; the others were rendered (see `results`).
    #[error("{} of {} render target(s) failed: {}", errors.len(), errors.len() + results.len(), errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Incomplete {
        errors: Vec<DeliverError>,
        results: Vec<RenderResult>,
    },
}

impl Renderer {
    pub fn new(config: Arc<Config>, store: Arc<dyn Store>) -> Renderer {
        let locks = config
            .render
            .iter()
            .map(|_| tokio::sync::Mutex::new(()))
            .collect();
        Renderer {
            config,
            store,
            locks,
            retry: RetryPolicy::default(),
        }
    }

    /// Renders every target (`rotor render`). All targets are tried; when some fail, the
    /// error carries both the failures and the results of the others.
    pub async fn render_all(&self) -> Result<Vec<RenderResult>, DeliverError> {
        self.render_many(None).await
    }

    /// Brings every target that is behind up to date (`rotor resume`, `rotor serve` start-up,
    /// and every delivery): the same as [`render_all`](Self::render_all), named for why it
    /// is called. Targets already up to date are left alone.
    pub async fn catch_up(&self) -> Result<Vec<RenderResult>, DeliverError> {
        self.render_many(None).await
    }

    /// Renders every target that references `secret`; `Ok(vec![])` when none does.
    pub async fn render_for(&self, secret: &SecretName) -> Result<Vec<RenderResult>, DeliverError> {
        self.render_many(Some(secret)).await
    }

    async fn render_many(
        &self,
        only: Option<&SecretName>,
    ) -> Result<Vec<RenderResult>, DeliverError> {
        let mut results = Vec::new();
        let mut errors = Vec::new();
        for i in 0..self.config.render.len() {
            match self.render_target(i, only).await {
                Ok(Some(r)) => results.push(r),
                Ok(None) => {}
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(results)
        } else {
            Err(DeliverError::Incomplete { errors, results })
        }
    }

    /// Renders target `i` (when `only` is given, only if it references that secret).
    async fn render_target(
        &self,
        i: usize,
        only: Option<&SecretName>,
    ) -> Result<Option<RenderResult>, DeliverError> {
        let spec = &self.config.render[i];
        let _guard = self.locks[i].lock().await;
        let templates = self.templates(spec).await?;
        if let Some(secret) = only
            && !templates
                .iter()
                .any(|(_, t)| t.refs().any(|r| &r.secret == secret))
        {
            return Ok(None);
        }
        if let Some(github) = &spec.github {
            return github::deliver(self, spec, github, &templates)
                .await
                .map(Some);
        }
        // Every reference resolves before anything is touched: a render error leaves the
        // target (and its state) as they were.
        let (content, from) = self.content(spec, &templates).await?;
        check_dir_of(&spec.path)?;
        let recorded = state::read(&spec.path).await;
        let owed = spec.on_change.is_some() && recorded.as_ref().is_some_and(|s| s.on_change_owed);
        if spec.on_change.is_some() && !write::holds(&spec.path, &content).await? {
            // Owed before the target changes: a crash from here until on_change succeeded
            // is repaired by the next render.
            state::write(
                &spec.path,
                &state::State {
                    from: from.clone(),
                    on_change_owed: true,
                },
            )
            .await?;
        }
        let changed = write::write_if_changed(&spec.path, content).await?;
        let on_change = match (&spec.on_change, changed || owed) {
            (None, _) => OnChangeOutcome::NotConfigured,
            (Some(_), false) => OnChangeOutcome::NotRun,
            (Some(cmd), true) => {
                match command::run(&spec.path, cmd, self.config.dir(), spec.timeout.to_std()).await
                {
                    Ok(()) => OnChangeOutcome::Succeeded,
                    Err(message) => {
                        tracing::error!(path = %spec.path.display(), error = %message, "on_change failed");
                        OnChangeOutcome::Failed(message)
                    }
                }
            }
        };
        let now = state::State {
            from,
            on_change_owed: matches!(on_change, OnChangeOutcome::Failed(_)),
        };
        if recorded.as_ref() != Some(&now) {
            state::write(&spec.path, &now).await?;
        }
        tracing::info!(path = %spec.path.display(), changed, "rendered");
        Ok(Some(RenderResult {
            path: spec.path.clone(),
            target: spec.target(),
            changed,
            on_change,
        }))
    }

    /// The templates of a target: its vars (dotenv, json), or its template file parsed now
    /// against the inventory's names.
    async fn templates(&self, spec: &RenderSpec) -> Result<Vec<(String, Template)>, DeliverError> {
        if spec.kind != RenderKind::Template {
            return Ok(spec.vars.clone());
        }
        let template = spec
            .template
            .clone()
            .ok_or_else(|| DeliverError::Template {
                path: spec.path.clone(),
                template: PathBuf::new(),
                message: "kind = \"template\" needs `template` (the template file)".into(),
            })?;
        let text =
            tokio::fs::read_to_string(&template)
                .await
                .map_err(|e| DeliverError::Template {
                    path: spec.path.clone(),
                    template: template.clone(),
                    message: format!("cannot read it: {e}"),
                })?;
        let known: Vec<&str> = self
            .config
            .secrets
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        let parsed = Template::parse(&text, &known).map_err(|message| DeliverError::Template {
            path: spec.path.clone(),
            template: template.clone(),
            message,
        })?;
        Ok(vec![(String::new(), parsed)])
    }

    /// The bytes of a target.
    async fn content(
        &self,
        spec: &RenderSpec,
        templates: &[(String, Template)],
    ) -> Result<(Zeroizing<Vec<u8>>, Stamp), DeliverError> {
        let mut cache = values::Cache::default();
        let mut rendered = Vec::with_capacity(templates.len());
        for (name, t) in templates {
            let value = self.render_template(&spec.path, t, &mut cache).await?;
            rendered.push((name.as_str(), value));
        }
        let bytes = match spec.kind {
            RenderKind::Dotenv => format::dotenv(&spec.path, &rendered)?,
            RenderKind::Json => format::json(&rendered),
            RenderKind::Template | RenderKind::Github => {
                let mut out = Zeroizing::new(Vec::new());
                for (_, v) in &rendered {
                    out.extend_from_slice(v.as_bytes());
                }
                out
            }
        };
        Ok((bytes, cache.stamp()))
    }

    async fn render_template(
        &self,
        path: &Path,
        t: &Template,
        cache: &mut values::Cache,
    ) -> Result<Zeroizing<String>, DeliverError> {
        let mut out = Zeroizing::new(String::new());
        for part in &t.parts {
            match part {
                rotor_core::config::TemplatePart::Text(s) => out.push_str(s),
                rotor_core::config::TemplatePart::Ref(r) => {
                    let v = values::resolve(&*self.store, path, r, cache).await?;
                    out.push_str(&v);
                }
            }
        }
        Ok(out)
    }
}

#[async_trait::async_trait]
impl Deliver for Renderer {
    async fn deliver(&self, secret: &SecretName, change: StageChange) -> Result<(), String> {
        // Every target, not only those of `secret`: one left behind by a crash is repaired
        // by the next change of any secret.
        let (results, errors) = match self.catch_up().await {
            Ok(results) => (results, Vec::new()),
            Err(DeliverError::Incomplete { errors, results }) => (results, errors),
            Err(e) => (Vec::new(), vec![e]),
        };
        let mut failures: Vec<String> = errors.iter().map(ToString::to_string).collect();
        failures.extend(results.into_iter().filter_map(|r| match r.on_change {
            OnChangeOutcome::Failed(m) => Some(m),
            _ => None,
        }));
        if failures.is_empty() {
            Ok(())
        } else {
            tracing::debug!(secret = %secret, ?change, failed = failures.len(), "delivery incomplete");
            Err(failures.join("; "))
        }
    }
}

/// Refuses to write `path` (a rendered file, a state file) into a directory others may
/// write: see [`private_dir`].
pub(crate) fn check_dir_of(path: &Path) -> Result<(), DeliverError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    private_dir::check(dir).map_err(|why| DeliverError::UnsafeDirectory {
        path: path.to_path_buf(),
        why,
    })
}
