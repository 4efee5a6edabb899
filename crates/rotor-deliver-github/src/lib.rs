//! GitHub Actions secrets as a delivery target (the seed's staging store).
//!
//! For a repository or one of its environments: read GitHub's public key, seal each value
//! for it (libsodium sealed box via the `crypto_box` crate; [`RepoKey::seal`]), `PUT` it with the
//! key id. The token comes from an environment variable ([`GithubClient::from_env`]) and is
//! never shown. Only values whose fingerprint changed are written ([`GithubTarget`]).
//! Rate limits, permissions, unknown repositories and outages become errors that say what
//! to do and whether a retry helps ([`GithubError`]).
//!
//! Selected by `[[render]] kind = "github"` in `rotor.toml`; `rotor-deliver` renders the
//! values and calls [`GithubTarget::write`], so engine deliveries, `rotor render` and
//! catch-up reach it alike. This crate knows nothing of the store or the config.
//!
//! What was and was not tested against the real service: see `docs/github-secrets.md`.

mod client;
mod error;
mod seal;
mod target;

pub use client::{DEFAULT_API, GithubClient, PutOutcome, Scope, valid_secret_name};
pub use error::GithubError;
pub use seal::RepoKey;
pub use target::{GithubTarget, Item, Report};
