//! The inventory as code: a TOML file that lists secrets, their kind, schedule and settings.
//!
//! Parsing is two steps (parse, don't validate): [`parse`] walks the TOML document and builds
//! a [`Config`] in which every value is already valid (a [`Policy`] with grace shorter than
//! its period, a known [`Kind`] with its required settings). It collects every problem it
//! finds, each with file, line, column, secret and fix, rather than stopping at the first.

mod diagnostic;
mod emergency;
mod notify;
mod parse;
mod render;
mod server;
mod tokens;
mod window;

/// The sections beyond the inventory by their old common path
/// (`rotor_core::config::service::NotifyEvent`); each now lives in a module named after its
/// section.
pub mod service {
    pub use super::emergency::EmergencyConfig;
    pub use super::notify::{NotifyEvent, NotifyFormat, NotifySpec};
    pub use super::render::{
        GITHUB_API, GithubRender, RenderKind, RenderSpec, Template, TemplatePart, ValueRef,
        valid_github_secret_name,
    };
    pub use super::server::{HttpLimits, PublicEndpoint, ServerConfig, TlsFiles};
    pub use super::tokens::{Scope, ScopeAction, TokenSpec, glob_match};
    pub use super::window::Window;
}

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use diagnostic::{ConfigError, Diagnostic};
pub use emergency::EmergencyConfig;
pub use notify::NotifySpec;
pub use parse::{documented_keys, parse};
pub use render::{
    GITHUB_API, GithubRender, RenderKind, RenderSpec, Template, TemplatePart, ValueRef,
    valid_github_secret_name,
};
pub use server::{HttpLimits, PublicEndpoint, ServerConfig};
pub use tokens::{Scope, ScopeAction, TokenSpec};
pub use window::Window;

use crate::policy::Tiers;
use crate::{Duration, Kind, Policy, SecretName};

/// A validated inventory.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// The file it was read from (paths inside are resolved against its directory).
    pub source: PathBuf,
    pub store: StoreConfig,
    pub tiers: Tiers,
    /// Secrets in file order.
    pub secrets: Vec<SecretSpec>,
    pub server: ServerConfig,
    pub tokens: Vec<TokenSpec>,
    pub notify: Vec<NotifySpec>,
    pub render: Vec<RenderSpec>,
    pub emergency: EmergencyConfig,
    /// Problems that do not stop rotor from starting but will fail something later (e.g. a
    /// GitHub target's token variable not set now): `rotor check` prints them.
    #[serde(skip)]
    pub warnings: Vec<Diagnostic>,
    /// Secret name → position in `secrets`, so lookups stay O(1) in large inventories.
    #[serde(skip)]
    index: std::collections::HashMap<String, usize>,
}

impl Config {
    pub fn secret(&self, name: &str) -> Option<&SecretSpec> {
        self.index.get(name).and_then(|i| self.secrets.get(*i))
    }

    /// Builds the name index (the parser calls it once).
    fn indexed(mut self) -> Self {
        self.index = self
            .secrets
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.to_string(), i))
            .collect();
        self
    }

    /// The directory relative paths in the file are resolved against.
    pub fn dir(&self) -> &Path {
        self.source.parent().unwrap_or(Path::new("."))
    }
}

/// Where the store lives.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum StoreConfig {
    /// The embedded, encrypted SQLite store (the default).
    Sqlite {
        /// The database file (default `rotor.db` beside the config).
        path: PathBuf,
        /// The master key file (default `rotor.key` beside the config). `ROTOR_MASTER_KEY`
        /// takes precedence when set.
        master_key_file: PathBuf,
        /// Name of an environment variable holding a passphrase (Argon2id) instead of a key file.
        passphrase_env: Option<String>,
    },
    /// PostgreSQL, shared by several `rotor serve` replicas.
    Postgres {
        /// `postgres://user@host:port/db`; a password, if any, from `${VAR}` interpolation
        /// (so a [`SecretUrl`](crate::SecretUrl): no `Debug` of the config prints it).
        #[serde(skip)]
        url: crate::SecretUrl,
        master_key_file: PathBuf,
    },
    /// Values in AWS Secrets Manager; rotation state and the audit log in `ledger`.
    Aws {
        /// None: the standard AWS chain (AWS_REGION, profile).
        region: Option<String>,
        endpoint_url: Option<String>,
        /// Prepended to secret names to form AWS secret ids (the seed uses `divan/prod/`).
        prefix: String,
        /// KMS key for the secrets rotor creates and syncs; None: AWS's `aws/secretsmanager`.
        kms_key_id: Option<String>,
        /// Per secret (by name), winning over `kms_key_id` (`[store.kms_key_ids]`).
        kms_key_ids: std::collections::BTreeMap<String, String>,
        ledger: Box<StoreConfig>,
    },
}

impl StoreConfig {
    /// The master key file of this store (or of its ledger).
    pub fn master_key_file(&self) -> &Path {
        match self {
            StoreConfig::Sqlite {
                master_key_file, ..
            }
            | StoreConfig::Postgres {
                master_key_file, ..
            } => master_key_file,
            StoreConfig::Aws { ledger, .. } => ledger.master_key_file(),
        }
    }
}

/// One secret of the inventory.
#[derive(Debug, Clone, Serialize)]
pub struct SecretSpec {
    pub name: SecretName,
    pub kind: Kind,
    pub description: Option<String>,
    pub owner: Option<String>,
    pub policy: Policy,
    pub settings: KindSettings,
    /// When scheduled rotations may run.
    pub window: Option<Window>,
    /// Up to this much is added to the due time, derived from the name, so a fleet of
    /// secrets due together does not rotate at once.
    pub jitter: Duration,
    /// A shell command run after an emergency rotation of this secret (e.g. flush sessions).
    pub on_emergency: Option<String>,
    /// When a person says the secret was last rotated (`last_rotated = "2026-06-01"`), for a
    /// value rotor has never stored. Without it, a secret with no current value has an
    /// unknown age and is overdue (`schedule::evaluate`); a stored current value wins.
    pub last_rotated: Option<jiff::Timestamp>,
}

/// Settings specific to a kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum KindSettings {
    Random(RandomSettings),
    Jwt(JwtSettings),
    Postgres(PostgresSettings),
    Redis(RedisSettings),
    Manual(ManualSettings),
    Command(CommandSettings),
}

/// `kind = "random"`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RandomSettings {
    /// Characters of output, each drawn uniformly from `alphabet`.
    pub length: usize,
    pub alphabet: Alphabet,
    /// Fixed text before the random part (e.g. `sk_`), not counted in `length`.
    pub prefix: String,
}

/// The characters a random secret is drawn from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Alphabet {
    Alnum,
    Base64,
    Base64Url,
    Hex,
    Custom(String),
}

impl Alphabet {
    pub fn chars(&self) -> Vec<char> {
        const ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        match self {
            Alphabet::Alnum => ALNUM.chars().collect(),
            Alphabet::Base64 => format!("{ALNUM}+/").chars().collect(),
            Alphabet::Base64Url => format!("{ALNUM}-_").chars().collect(),
            Alphabet::Hex => "0123456789abcdef".chars().collect(),
            Alphabet::Custom(s) => s.chars().collect(),
        }
    }

    /// Bits of entropy per character.
    pub fn bits_per_char(&self) -> f64 {
        // Counted, not collected: the parser asks once per random secret.
        let n = match self {
            Alphabet::Alnum => 62,
            Alphabet::Base64 | Alphabet::Base64Url => 64,
            Alphabet::Hex => 16,
            Alphabet::Custom(s) => s.chars().count(),
        };
        (n as f64).log2()
    }
}

/// The JWT algorithms rotor can generate keys for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum JwtAlgorithm {
    HS256,
    HS384,
    HS512,
    ES256,
    EdDSA,
    RS256,
}

impl JwtAlgorithm {
    pub const ALL: [JwtAlgorithm; 6] = [
        JwtAlgorithm::HS256,
        JwtAlgorithm::HS384,
        JwtAlgorithm::HS512,
        JwtAlgorithm::ES256,
        JwtAlgorithm::EdDSA,
        JwtAlgorithm::RS256,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            JwtAlgorithm::HS256 => "HS256",
            JwtAlgorithm::HS384 => "HS384",
            JwtAlgorithm::HS512 => "HS512",
            JwtAlgorithm::ES256 => "ES256",
            JwtAlgorithm::EdDSA => "EdDSA",
            JwtAlgorithm::RS256 => "RS256",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
    /// HMAC keys are shared secrets: never published in a JWKS.
    pub fn is_hmac(self) -> bool {
        matches!(
            self,
            JwtAlgorithm::HS256 | JwtAlgorithm::HS384 | JwtAlgorithm::HS512
        )
    }
}

/// `kind = "jwt"`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JwtSettings {
    pub algorithm: JwtAlgorithm,
    /// RSA modulus size for RS256 (2048 or 3072).
    pub rsa_bits: u16,
    /// How long a new key is published (pending) before it signs, for JWKS caches. For an
    /// asymmetric key it is at least [`jwks_max_age`](Self::jwks_max_age) plus
    /// [`JwtSettings::jwks_margin`] (the default), so every client that honours the served
    /// `Cache-Control` has fetched the key before a token uses it.
    pub prepublish: Duration,
    /// `Cache-Control: max-age` of this key's JWKS (`jwks_max_age`; default
    /// [`JwtSettings::derived_max_age`]). Zero for HMAC keys, which are never published.
    pub jwks_max_age: Duration,
    /// The longest lifetime of a token signed with this key (the seed's refresh tokens: 30d).
    /// `rotor check` refuses a grace below it plus `leeway`; `rotor jwt sign` refuses a
    /// longer token.
    pub token_lifetime: Duration,
    /// Clock skew allowed when checking `exp`/`nbf`.
    pub leeway: Duration,
}

impl JwtSettings {
    /// The JWKS max-age when `jwks_max_age` is not set: a twentieth of the rotation period
    /// (so the prepublish wait it implies stays small next to the period), at most 60 s and
    /// at least 1 s, in whole seconds as `Cache-Control` counts.
    pub fn derived_max_age(period: Duration) -> Duration {
        Duration::from_secs((period.as_secs() / 20).clamp(1, 60))
    }

    /// What prepublish adds to the max-age: a tenth of it, at least 1 s (request time and
    /// timer granularity); nothing when the JWKS is not cached at all.
    pub fn jwks_margin(max_age: Duration) -> Duration {
        if max_age.is_zero() {
            Duration::ZERO
        } else {
            Duration::from_secs((max_age.as_secs() / 10).max(1))
        }
    }

    /// The least prepublish an asymmetric key may have: max-age plus margin.
    pub fn min_prepublish(&self) -> Duration {
        self.jwks_max_age
            .saturating_add(Self::jwks_margin(self.jwks_max_age))
    }

    /// The least grace: a token signed just before `finish` stays valid for its lifetime
    /// plus the verifiers' clock leeway.
    pub fn min_grace(&self) -> Duration {
        self.token_lifetime.saturating_add(self.leeway)
    }
}

/// PostgreSQL rotation strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PgStrategy {
    /// One role; its password changes (a short window where new logins need the new value).
    Single,
    /// Two login roles in one group role; rotation alternates between them (zero downtime).
    Alternating,
}

/// `kind = "postgres"`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PostgresSettings {
    /// `postgres://host:port/dbname[?sslmode=...&sslrootcert=...]` (no password: credentials
    /// come from managed secrets; libpq TLS parameters, see `rotor_tls`).
    pub url: String,
    /// The role (single) or the group role whose `_a`/`_b` login roles alternate.
    pub role: String,
    pub strategy: PgStrategy,
    /// The managed secret holding the admin credential; `None` means the role changes its own password.
    pub admin: Option<SecretName>,
}

/// `kind = "redis"`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RedisSettings {
    /// `redis://host:port` or `rediss://host:port?sslrootcert=...` (no password; TLS
    /// parameters as for PostgreSQL, see `rotor_tls`).
    pub url: String,
    /// The ACL user whose password rotates (`default` is allowed).
    pub user: String,
    /// The managed secret holding the admin credential; `None` means the user manages itself.
    pub admin: Option<SecretName>,
}

/// `kind = "manual"`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ManualSettings {
    /// Optional command that checks a supplied value (it reads the value on stdin).
    pub check: Option<String>,
}

/// `kind = "command"`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandSettings {
    /// The plugin executable and its arguments (never secret: values go on stdin).
    pub command: Vec<String>,
    /// How long one step may run before its whole process group is killed.
    pub timeout: Duration,
    /// The `settings` table, handed to the plugin in every request (never secret: it sits in
    /// the config file in plain text).
    pub settings: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::Alphabet;

    #[test]
    fn bits_per_char_counts_the_alphabet() {
        for a in [
            Alphabet::Alnum,
            Alphabet::Base64,
            Alphabet::Base64Url,
            Alphabet::Hex,
            Alphabet::Custom("abcé".into()),
        ] {
            assert_eq!(a.bits_per_char(), (a.chars().len() as f64).log2(), "{a:?}");
        }
    }
}
