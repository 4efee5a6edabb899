//! [`GithubTarget`]: writes a set of secrets to one scope, only those whose value changed.
//!
//! GitHub never returns a secret's value, so "changed" is decided by a fingerprint the
//! caller gives with each value (e.g. the rotor version ids it was made from: never derived
//! from the value itself). The fingerprints of what was written are kept in a state file
//! (JSON, 0600, replaced atomically) that holds names and fingerprints only, no value.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use rotor_core::SecretValue;
use serde::{Deserialize, Serialize};

use crate::GithubError;
use crate::client::GithubClient;

/// One secret to deliver.
#[derive(Debug)]
pub struct Item<'a> {
    /// The GitHub secret name (`JWT_SIGNING_KEY`).
    pub name: String,
    pub value: &'a SecretValue,
    /// Changes exactly when the value does (e.g. `jwt-signing@<version id>`).
    pub fingerprint: String,
}

/// What a write did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Secrets written (created or updated).
    pub written: Vec<String>,
    /// Secrets whose fingerprint was unchanged: not sent.
    pub unchanged: Vec<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    scope: String,
    secrets: BTreeMap<String, String>,
}

/// A GitHub scope plus the record of what rotor wrote there.
#[derive(Debug)]
pub struct GithubTarget {
    client: GithubClient,
    state: PathBuf,
}

impl GithubTarget {
    /// Delivers through `client`; `state` is the file recording what was written.
    pub fn new(client: GithubClient, state: impl Into<PathBuf>) -> Self {
        Self {
            client,
            state: state.into(),
        }
    }

    fn load(&self) -> Result<State, GithubError> {
        let scope = self.client.scope().to_string();
        match std::fs::read(&self.state) {
            Ok(bytes) => {
                let state: State = serde_json::from_slice(&bytes).map_err(|e| {
                    GithubError::permanent(
                        format!(
                            "the GitHub state file {} does not parse ({e})",
                            self.state.display()
                        ),
                        "delete it: rotor then writes every secret once",
                    )
                })?;
                // Another scope's record says nothing about this one.
                Ok(if state.scope == scope {
                    state
                } else {
                    State {
                        scope,
                        ..State::default()
                    }
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State {
                scope,
                ..State::default()
            }),
            Err(e) => Err(GithubError::permanent(
                format!(
                    "cannot read the GitHub state file {}: {e}",
                    self.state.display()
                ),
                "check its permissions",
            )),
        }
    }

    fn save(&self, state: &State) -> Result<(), GithubError> {
        let fail = |e: std::io::Error| {
            GithubError::permanent(
                format!(
                    "cannot write the GitHub state file {}: {e}",
                    self.state.display()
                ),
                "check the directory is writable; the secrets were written, the next run may write them again",
            )
        };
        let dir = self
            .state
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(fail)?;
        let json = serde_json::to_vec_pretty(state).map_err(|e| fail(std::io::Error::other(e)))?;
        tmp.write_all(&json).map_err(fail)?;
        tmp.as_file().sync_all().map_err(fail)?;
        // NamedTempFile is created 0600.
        tmp.persist(&self.state).map_err(|e| fail(e.error))?;
        Ok(())
    }

    /// Writes every item whose fingerprint differs from the last one written. Reads the
    /// public key only when something is to be written. On an error, what was written
    /// before it is recorded, then the error is returned.
    pub async fn write(&self, items: &[Item<'_>]) -> Result<Report, GithubError> {
        let mut state = self.load()?;
        let mut report = Report::default();
        let todo: Vec<&Item<'_>> = items
            .iter()
            .filter(|i| {
                let same = state.secrets.get(&i.name) == Some(&i.fingerprint);
                if same {
                    report.unchanged.push(i.name.clone());
                }
                !same
            })
            .collect();
        if todo.is_empty() {
            return Ok(report);
        }
        let key = self.client.public_key().await?;
        let mut result = Ok(());
        for item in todo {
            match self.client.put(&item.name, &key, item.value).await {
                Ok(outcome) => {
                    tracing::info!(scope = %self.client.scope(), secret = %item.name, ?outcome, "github secret written");
                    state
                        .secrets
                        .insert(item.name.clone(), item.fingerprint.clone());
                    report.written.push(item.name.clone());
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        if !report.written.is_empty() {
            self.save(&state)?;
        }
        result.map(|()| report)
    }
}
