//! The daemon's own errors (the HTTP API maps engine errors itself, in `api::error`).

use rotor_engine::EngineError;

/// Errors of the daemon's public functions. Messages never carry a secret value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] rotor_core::StoreError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Http(String),
}

impl DaemonError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        DaemonError::Io {
            what: what.into(),
            source,
        }
    }
}

pub type Result<T, E = DaemonError> = std::result::Result<T, E>;
