//! `rotor serve`: the scheduler, the HTTP API, metrics, alert rules, webhook notifications, the
//! emergency runbook and drills.
//!
//! Layout (modules named after concepts):
//! - [`scheduler`]: starts rotations when their `Standing` (rotor-core: due time, window,
//!   jitter) says so, and retires, with a concurrency limit and bounded backoff; resumes
//!   interrupted rotations at start-up;
//! - [`api`]: the HTTP API (axum): with `console/`, the only code that answers HTTP requests;
//!   the listeners are bound in `daemon.rs` and served by the accept loop in `server.rs`
//!   (connection limits and timeouts), on the API's own thread and runtime (`api_runtime.rs`);
//! - [`auth`]: bearer tokens (SHA-256 in the config, constant-time compare) and scopes;
//! - [`watch`]: the stage-change hub behind `GET /v1/watch` (engine delivery + store polling);
//! - [`metrics`]: the Prometheus text exposition; [`alerts`]: the Prometheus rules file;
//! - [`notify`]: webhooks (Slack or JSON), retried, audited on failure; with [`emergency`](mod@emergency)
//!   (health and error-rate URLs) and [`client`], the only HTTP clients (reqwest);
//! - [`emergency`](mod@emergency): emergency rotation and drills with the post-rotation checklist report;
//! - [`client`]: the CLI's `--server URL` mode.
//! - [`console`]: the operator's console (HTML pages, sign-in, actions) at `/`;
//!
//! Invariants:
//! - a secret value never appears in a log line, an error, a notification, a metric or a
//!   report; only the value endpoint returns one, and only to a token whose scope allows it;
//! - nothing is fire-and-forget: every background task belongs to a `JoinSet` or the daemon's
//!   `TaskTracker`, and both see shutdown;
//! - the scheduler never loops on a failure: attempts are bounded, then the secret is held
//!   `failed` until someone acts (a rotate or put, from the API or the CLI).

pub mod alerts;
pub mod api;
mod api_runtime;
pub mod auth;
pub mod client;
pub mod console;
mod daemon;
pub mod emergency;
mod error;
pub mod metrics;
pub mod notify;
pub mod probing;
pub mod scheduler;
mod server;
pub mod watch;

pub use alerts::alert_rules;
pub use auth::new_token;
pub use client::{Client, ClientError, FetchedValue};
pub use daemon::{Daemon, Running, ServeOptions, serve};
pub use emergency::{CheckStatus, EmergencyOptions, Report, drill, emergency};
pub use error::{DaemonError, Result};
pub use notify::{Notification, Notifier};
pub use scheduler::{SchedulerOptions, TokioClock};
