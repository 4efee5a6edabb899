//! rotor's vocabulary and the rules that hold whatever the store or target.
//!
//! This crate names the concepts every other rotor crate speaks in: a [`SecretName`], a
//! [`SecretValue`] (the only type that holds secret bytes), [`Stage`]s on versions, a
//! [`Policy`], the inventory [`Config`], the [`Rotation`] record and its step order, the
//! hash-chained [`audit`] log, and the two plug-in traits the engine mediates between:
//! [`Store`] (where versions live) and [`Rotator`] (how a kind of secret is changed on its
//! target).
//!
//! Invariants written as absences:
//! - no IO: nothing here opens a file, a socket or a database; the config parser takes text;
//! - no async runtime: the traits are `async`, their callers choose the runtime;
//! - no secret bytes anywhere but inside [`SecretValue`], which has no `Display` and a
//!   redacting `Debug`.

pub mod audit;
pub mod backoff;
pub mod config;
pub mod credential;
pub mod duration;
pub mod host;
pub mod kind;
pub mod name;
pub mod policy;
pub mod rotation;
pub mod rotator;
pub mod schedule;
pub mod secret_url;
pub mod store;
pub mod value;
pub mod version;

pub use audit::{AuditEvent, AuditRecord, ChainError};
pub use backoff::Backoff;
pub use config::{Config, ConfigError, Diagnostic, SecretSpec};
pub use credential::{Credential, CredentialError};
pub use duration::Duration;
pub use kind::Kind;
pub use name::SecretName;
pub use policy::{Automation, Policy, Tier};
pub use rotation::{Rotation, RotationId, RotationStatus, Step, Trigger};
pub use rotator::{Rotator, RotatorError};
pub use schedule::SecretState;
pub use secret_url::SecretUrl;
pub use store::{Store, StoreError};
pub use value::SecretValue;
pub use version::{Stage, VersionId, VersionMeta};
