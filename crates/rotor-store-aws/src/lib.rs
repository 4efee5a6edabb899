//! rotor's AWS Secrets Manager store: values in AWS, everything else in a ledger store.
//!
//! [`AwsStore`] implements [`rotor_core::Store`]. Apps and AWS's own tooling read the secret
//! values from AWS Secrets Manager; rotor's rotation records, leases, version metadata and
//! hash-chained audit log live in a *ledger* (the embedded SQLite store or the PostgreSQL
//! store), because AWS has no place for them.
//!
//! # Mapping
//!
//! | rotor                                   | AWS Secrets Manager                                         |
//! |-----------------------------------------|-------------------------------------------------------------|
//! | secret `name`                           | secret id `prefix + name` (e.g. `divan/prod/jwt-signing`)   |
//! | version id (UUIDv7)                     | `VersionId` = the `ClientRequestToken` it was written with |
//! | stage pending / current / previous      | label AWSPENDING / AWSCURRENT / AWSPREVIOUS                 |
//! | first value ever (`put`, first finish)  | `CreateSecret(ClientRequestToken, SecretString)`            |
//! | `InsertVersion` pending                 | `PutSecretValue(VersionStages=[AWSPENDING])`                |
//! | `Promote`                               | `UpdateSecretVersionStage(AWSCURRENT, Move=new, Remove=old)` (AWS moves AWSPREVIOUS itself), then `UpdateSecretVersionStage(AWSPENDING, Remove=new)` |
//! | `ClearStage` previous / pending         | `UpdateSecretVersionStage(AWSPREVIOUS / AWSPENDING, Remove=version)` |
//! | value                                   | SecretString: the value itself, or AWS's documented database JSON ([`AwsValueFormat`]) |
//!
//! These are the calls AWS's own rotation functions make, so the console, the CLI and the
//! caching clients see an ordinary rotation history.
//!
//! # Invariants and why the ledger is the source of truth
//!
//! - **Ledger first, then AWS.** [`Store::apply`] commits the change to the ledger (which
//!   seals a copy of every value), then makes AWS match the ledger for every secret the
//!   change touches ([`AwsStore::sync`]). AWS has no transactions, so the two cannot commit
//!   together; the ledger can, and it also holds the rotation record that says what was
//!   meant. So a pending value is never lost: once `apply` returned (Ok *or* an AWS error),
//!   the ledger has it, and AWS gets it at the next sync.
//! - **AWS is a pure function of the ledger.** `sync` does not replay operations: it reads
//!   the ledger's stages and AWS's labels and issues the next call that closes the gap,
//!   re-reading AWS after each call, until they match. Every call is therefore idempotent
//!   and a sync after any failure (endpoint down, throttled, process killed between two
//!   calls) finishes the job. Versions are uploaded only when AWS lacks them, so a version
//!   id is never written twice with two values (moto would silently overwrite; AWS refuses).
//! - **`apply` returns `Ok` only when AWS mirrors the ledger** for the secrets it touched.
//!   The engine stops at the first error, so no later step (notably `retire`, which removes
//!   the previous value from the target) runs while AWS could still serve an old AWSCURRENT.
//!   `rotor resume` starts with an apply on the secret, which syncs first. A change that
//!   begins a rotation also syncs *before* it commits, so a rotation does not start while AWS
//!   is unreachable.
//! - **Retries are idempotent.** An `InsertVersion` whose id the ledger already holds with
//!   the same value is a retry of a committed change: it is dropped (a different value under
//!   that id is refused, as AWS refuses a reused `ClientRequestToken`).
//! - **Reads name the stage.** A value read from AWS always passes `VersionId` *and*
//!   `VersionStage`; see [`ReadPolicy`] for what happens when AWS is behind or unreachable.
//! - A secret's first version: AWS labels it AWSCURRENT whatever the request says. So the
//!   pending value of a secret's very first rotation is uploaded when it becomes current
//!   (the ledger holds it meanwhile); from then on pending values go up as AWSPENDING.
//! - No value in an error or a log line: values exist only inside [`SecretValue`](rotor_core::value::SecretValue) and the
//!   SDK request (whose `Debug` redacts them).
//!
//! Concurrency: syncs of one secret are serialized within a process. Across processes the
//! engine's lease means one process drives a secret's rotation; two concurrent syncs both
//! re-read ledger and AWS before every call and converge on the newest ledger state.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_secretsmanager::Client;
use rotor_core::{SecretName, Store, StoreError};

mod failure;
mod format;
mod meta;
mod plan;
mod store;
mod sync;

pub use format::AwsValueFormat;
pub use meta::{AwsSecretMeta, DEFAULT_DESCRIPTION, ROTATED_BY_TAG, TAG_PREFIX};
pub use plan::{AWSCURRENT, AWSPENDING, AWSPREVIOUS, aws_label};

/// At most this many AWS calls in one sync (a promote takes two; catching up a whole missed
/// rotation about six).
const MAX_SYNC_CALLS: usize = 16;

/// What a read does when AWS does not serve the ledger's value (AWS behind, or unreachable).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReadPolicy {
    /// Read the version from AWS (`VersionId` + `VersionStage`) and check it is the ledger's
    /// value; when AWS is unreachable or behind, log a warning and return the ledger's sealed
    /// copy. The default: a rotation in progress must be able to read its pending value
    /// while AWS is down (the ledger's copy is the same value, and the source of truth).
    #[default]
    Verify,
    /// As `Verify`, but an unreachable or stale AWS is an error: every value returned was
    /// just served by AWS.
    RequireAws,
    /// Read only the ledger (no AWS call).
    LedgerOnly,
}

/// Settings of an [`AwsStore`].
#[derive(Debug, Clone, Default)]
pub struct AwsSettings {
    /// AWS region; `None`: the standard chain (`AWS_REGION`, the profile).
    pub region: Option<String>,
    /// Endpoint URL (moto, a VPC endpoint); `None`: AWS's own for the region.
    pub endpoint_url: Option<String>,
    /// Named profile; `None`: the standard chain (`AWS_PROFILE`, `default`).
    pub profile: Option<String>,
    /// Prepended to every secret name to make the AWS secret id (`divan/prod/`).
    pub prefix: String,
    /// Per-secret value format (by rotor secret name); absent: [`AwsValueFormat::Plain`].
    pub formats: BTreeMap<String, AwsValueFormat>,
    pub reads: ReadPolicy,
    /// KMS key (id, ARN or alias) for every secret; `None`: AWS's `aws/secretsmanager`.
    pub kms_key_id: Option<String>,
    /// Per secret (by rotor secret name): description, KMS key and tags from the inventory.
    pub secrets: BTreeMap<String, AwsSecretMeta>,
}

/// What one [`AwsStore::sync`] did: the AWS calls it made (ids and labels, never values).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub calls: Vec<String>,
}

impl SyncReport {
    /// AWS already matched the ledger.
    pub fn was_in_sync(&self) -> bool {
        self.calls.is_empty()
    }
}

/// The AWS Secrets Manager store. See the crate docs.
pub struct AwsStore {
    ledger: Arc<dyn Store>,
    client: Client,
    settings: AwsSettings,
    locks: Mutex<HashMap<SecretName, Arc<tokio::sync::Mutex<()>>>>,
    /// Secrets whose metadata this process has already brought in line.
    aligned: Mutex<BTreeSet<SecretName>>,
}

impl fmt::Debug for AwsStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsStore")
            .field("ledger", &self.ledger)
            .field("prefix", &self.settings.prefix)
            .field("endpoint_url", &self.settings.endpoint_url)
            .field("reads", &self.settings.reads)
            .finish_non_exhaustive()
    }
}

impl AwsStore {
    /// A store over `ledger` that mirrors values to AWS through `client`. The client's own
    /// retry and timeout settings apply; [`AwsStore::connect`] sets sensible ones.
    pub fn new(ledger: Arc<dyn Store>, client: Client, settings: AwsSettings) -> Self {
        Self {
            ledger,
            client,
            settings,
            locks: Mutex::new(HashMap::new()),
            aligned: Mutex::new(BTreeSet::new()),
        }
    }

    /// Builds the client from the standard AWS chain (environment, profile, container and
    /// instance credentials), with `settings.region`, `settings.endpoint_url` and
    /// `settings.profile` when given; standard retries (4 attempts, exponential backoff,
    /// throttling included) and timeouts (connect 3 s, attempt 10 s, call 30 s).
    pub async fn connect(
        ledger: Arc<dyn Store>,
        settings: AwsSettings,
    ) -> Result<Self, StoreError> {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(4))
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .operation_attempt_timeout(Duration::from_secs(10))
                    .operation_timeout(Duration::from_secs(30))
                    .build(),
            );
        if let Some(region) = &settings.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(url) = &settings.endpoint_url {
            loader = loader.endpoint_url(url.clone());
        }
        if let Some(profile) = &settings.profile {
            loader = loader.profile_name(profile.clone());
        }
        let config = loader.load().await;
        if config.region().is_none() {
            return Err(StoreError::Backend(
                "AWS store: no region: set `region` in the store settings, or AWS_REGION".into(),
            ));
        }
        Ok(Self::new(ledger, Client::new(&config), settings))
    }

    /// The ledger (rotation state, audit log, sealed copies of the values).
    pub fn ledger(&self) -> &Arc<dyn Store> {
        &self.ledger
    }

    /// The AWS client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn settings(&self) -> &AwsSettings {
        &self.settings
    }

    /// The AWS secret id of `secret`: the prefix followed by the name.
    pub fn aws_secret_id(&self, secret: &SecretName) -> String {
        format!("{}{}", self.settings.prefix, secret)
    }

    fn format_of(&self, secret: &SecretName) -> &AwsValueFormat {
        static PLAIN: AwsValueFormat = AwsValueFormat::Plain;
        self.settings.formats.get(secret.as_str()).unwrap_or(&PLAIN)
    }

    fn lock_of(&self, secret: &SecretName) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self
            .locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(map.entry(secret.clone()).or_default())
    }
}
