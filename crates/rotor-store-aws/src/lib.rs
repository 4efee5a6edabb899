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

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::primitives::Blob;
use jiff::Timestamp;
use rotor_core::rotation::Lease;
use rotor_core::store::{Change, Op, SecretSummary, Takeover, Versioned};
use rotor_core::{
    AuditRecord, Rotation, RotationId, SecretName, Stage, Store, StoreError, VersionId, VersionMeta,
};

mod format;
mod meta;
mod plan;

pub use format::AwsValueFormat;
pub use meta::{AwsSecretMeta, DEFAULT_DESCRIPTION, ROTATED_BY_TAG, TAG_PREFIX};
pub use plan::{AWSCURRENT, AWSPENDING, AWSPREVIOUS, aws_label};

use format::Payload;
use plan::{Action, Actual, Desired};

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

/// How an AWS call failed.
enum AwsFailure {
    /// The secret does not exist.
    NotFound,
    /// AWS answered with an error (code, message): not retried by us.
    Refused(String),
    /// Unreachable, timed out, throttled past the SDK's retries, or a 5xx.
    Unavailable(String),
}

impl AwsFailure {
    fn from_sdk<E>(e: &SdkError<E>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let shown = DisplayErrorContext(e).to_string();
        match e {
            SdkError::ServiceError(s) => {
                let code = s.err().code().unwrap_or("");
                let status = s.raw().status().as_u16();
                if code == "ResourceNotFoundException" {
                    AwsFailure::NotFound
                } else if status >= 500
                    || code.contains("Throttl")
                    || code == "InternalServiceError"
                {
                    AwsFailure::Unavailable(shown)
                } else {
                    AwsFailure::Refused(shown)
                }
            }
            _ => AwsFailure::Unavailable(shown),
        }
    }

    fn detail(&self) -> &str {
        match self {
            AwsFailure::NotFound => "the secret does not exist",
            AwsFailure::Refused(d) | AwsFailure::Unavailable(d) => d,
        }
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

    /// An AWS failure as a store error: an outage or throttling is
    /// [`StoreError::Unavailable`] (transient: retried), a refusal [`StoreError::Backend`].
    fn aws_error(&self, secret: &SecretName, call: &str, f: &AwsFailure) -> StoreError {
        let (what, make): (&str, fn(String) -> StoreError) = match f {
            AwsFailure::Unavailable(_) => (
                "AWS Secrets Manager is unreachable or throttling",
                StoreError::Unavailable,
            ),
            _ => ("AWS Secrets Manager refused", StoreError::Backend),
        };
        make(format!(
            "secret {secret}: {what} ({call} on {}: {}); the ledger has the change and remains the source of truth: run `rotor resume {secret}` (or `AwsStore::sync`) once AWS answers, to bring AWS up to date",
            self.aws_secret_id(secret),
            f.detail()
        ))
    }

    /// Makes AWS's labels for `secret` match the ledger's stages (see the crate docs), and
    /// returns the calls it made. Idempotent: when AWS already matches, one read call.
    pub async fn sync(&self, secret: &SecretName) -> Result<SyncReport, StoreError> {
        let lock = self.lock_of(secret);
        let _held = lock.lock().await;
        let mut report = SyncReport::default();
        loop {
            let desired = self.desired(secret).await?;
            let actual = self.actual(secret).await?;
            let Some(action) = plan::next(&desired, actual.as_ref()) else {
                let done = self
                    .aligned
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .contains(secret);
                if !done && actual.is_some() {
                    report.calls.extend(self.align(secret).await?);
                    self.aligned
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(secret.clone());
                }
                return Ok(report);
            };
            if report.calls.len() >= MAX_SYNC_CALLS {
                return Err(StoreError::Backend(format!(
                    "secret {secret}: AWS secret {} did not converge to the ledger's stages after {MAX_SYNC_CALLS} calls (last planned: {action:?}); another writer may be changing its labels",
                    self.aws_secret_id(secret)
                )));
            }
            let call = self.perform(secret, &action).await?;
            tracing::info!(secret = %secret, aws_secret = %self.aws_secret_id(secret), call = %call, "aws mirror");
            report.calls.push(call);
        }
    }

    /// `rotor store sync`: [`sync_all`](Self::sync_all) with every secret's description,
    /// KMS key and tags checked again (not only once per process).
    pub async fn sync_all_with_metadata(
        &self,
    ) -> Result<BTreeMap<SecretName, SyncReport>, StoreError> {
        self.aligned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
        self.sync_all().await
    }

    /// Syncs every secret the ledger knows; returns the first error after trying them all.
    pub async fn sync_all(&self) -> Result<BTreeMap<SecretName, SyncReport>, StoreError> {
        let mut out = BTreeMap::new();
        let mut first_err = None;
        for s in self.ledger.summaries().await? {
            let Some(name) = s.secret else { continue };
            match self.sync(&name).await {
                Ok(r) => {
                    out.insert(name, r);
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    async fn desired(&self, secret: &SecretName) -> Result<Desired, StoreError> {
        let mut d = Desired::default();
        for v in self.ledger.versions(secret).await? {
            for st in &v.stages {
                let slot = match st {
                    Stage::Pending => &mut d.pending,
                    Stage::Current => &mut d.current,
                    Stage::Previous => &mut d.previous,
                };
                *slot = Some(v.id.as_str().to_owned());
            }
        }
        Ok(d)
    }

    /// AWS's versions and labels, `None` when the secret does not exist.
    async fn actual(&self, secret: &SecretName) -> Result<Option<Actual>, StoreError> {
        let id = self.aws_secret_id(secret);
        let mut actual = Actual::default();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .list_secret_version_ids()
                .secret_id(&id)
                .include_deprecated(true)
                .max_results(100)
                .set_next_token(token.take())
                .send()
                .await;
            let out = match out {
                Ok(o) => o,
                Err(e) => {
                    let answered = matches!(e, SdkError::ServiceError(_));
                    return match AwsFailure::from_sdk(&e) {
                        AwsFailure::NotFound => Ok(None),
                        // moto answers a missing secret here with HTTP 500: ask DescribeSecret.
                        AwsFailure::Unavailable(_)
                            if answered && self.secret_missing(secret).await? =>
                        {
                            Ok(None)
                        }
                        f => Err(self.aws_error(secret, "ListSecretVersionIds", &f)),
                    };
                }
            };
            for v in out.versions() {
                if let Some(vid) = v.version_id() {
                    actual
                        .versions
                        .insert(vid.to_owned(), v.version_stages().to_vec());
                }
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => return Ok(Some(actual)),
            }
        }
    }

    async fn secret_missing(&self, secret: &SecretName) -> Result<bool, StoreError> {
        match self
            .client
            .describe_secret()
            .secret_id(self.aws_secret_id(secret))
            .send()
            .await
        {
            Ok(_) => Ok(false),
            Err(e) => match AwsFailure::from_sdk(&e) {
                AwsFailure::NotFound => Ok(true),
                f => Err(self.aws_error(secret, "DescribeSecret", &f)),
            },
        }
    }

    /// The AWS form of the ledger's value of `version`.
    async fn payload(&self, secret: &SecretName, version: &str) -> Result<Payload, StoreError> {
        let vid = VersionId::parse(version).ok_or_else(|| {
            StoreError::Backend(format!(
                "secret {secret}: ledger version id {version:?} is not a UUID"
            ))
        })?;
        let v = self
            .ledger
            .read_version(secret, &vid)
            .await?
            .ok_or_else(|| StoreError::VersionNotFound {
                secret: secret.to_string(),
                version: version.to_owned(),
            })?;
        self.format_of(secret).encode(secret, version, &v.value)
    }

    async fn perform(&self, secret: &SecretName, action: &Action) -> Result<String, StoreError> {
        let id = self.aws_secret_id(secret);
        match action {
            Action::Create { version } => {
                let payload = self.payload(secret, version).await?;
                let wanted = self.wanted(secret);
                let req = self
                    .client
                    .create_secret()
                    .name(&id)
                    .client_request_token(version)
                    .description(&wanted.description)
                    .set_kms_key_id(wanted.kms_key_id.clone())
                    .set_tags(Some(wanted.aws_tags()));
                let req = match &payload {
                    Payload::String(v) => req.secret_string(utf8(secret, v)?),
                    Payload::Binary(v) => req.secret_binary(Blob::new(v.expose())),
                };
                match req.send().await {
                    Ok(_) => {}
                    Err(e) => {
                        let f = AwsFailure::from_sdk(&e);
                        // Another process created it meanwhile: the next round sees it.
                        let exists = e
                            .as_service_error()
                            .is_some_and(|s| s.is_resource_exists_exception());
                        if !exists {
                            return Err(self.aws_error(secret, "CreateSecret", &f));
                        }
                    }
                }
                Ok(format!("CreateSecret {id} version {version} (AWSCURRENT)"))
            }
            Action::Put { version, label } => {
                let payload = self.payload(secret, version).await?;
                let req = self
                    .client
                    .put_secret_value()
                    .secret_id(&id)
                    .client_request_token(version)
                    .version_stages(*label);
                let req = match &payload {
                    Payload::String(v) => req.secret_string(utf8(secret, v)?),
                    Payload::Binary(v) => req.secret_binary(Blob::new(v.expose())),
                };
                req.send().await.map_err(|e| {
                    self.aws_error(secret, "PutSecretValue", &AwsFailure::from_sdk(&e))
                })?;
                Ok(format!("PutSecretValue {id} version {version} [{label}]"))
            }
            Action::Move { label, to, from } => {
                self.client
                    .update_secret_version_stage()
                    .secret_id(&id)
                    .version_stage(*label)
                    .set_move_to_version_id(to.clone())
                    .set_remove_from_version_id(from.clone())
                    .send()
                    .await
                    .map_err(|e| {
                        self.aws_error(
                            secret,
                            "UpdateSecretVersionStage",
                            &AwsFailure::from_sdk(&e),
                        )
                    })?;
                Ok(format!(
                    "UpdateSecretVersionStage {id} {label} move-to={} remove-from={}",
                    to.as_deref().unwrap_or("-"),
                    from.as_deref().unwrap_or("-")
                ))
            }
        }
    }

    /// Drops `InsertVersion`s the ledger already has with the same value (retries of a
    /// committed change); refuses one whose id the ledger has with another value.
    async fn drop_replays(&self, mut change: Change) -> Result<Change, StoreError> {
        let mut kept = Vec::with_capacity(change.ops.len());
        for op in change.ops {
            if let Op::InsertVersion { version, .. } = &op
                && let Some(existing) = self
                    .ledger
                    .read_version(&version.secret, &version.id)
                    .await?
            {
                if existing.value.ct_eq(&version.value) {
                    tracing::debug!(secret = %version.secret, version = %version.id, "insert retried: already in the ledger");
                    continue;
                }
                return Err(StoreError::Backend(format!(
                    "secret {}: version {} already exists with a different value; version ids (AWS ClientRequestTokens) are never reused",
                    version.secret, version.id
                )));
            }
            kept.push(op);
        }
        change.ops = kept;
        Ok(change)
    }

    /// Returns the ledger's version after checking AWS serves it under its stage label.
    async fn verified(
        &self,
        secret: &SecretName,
        v: Versioned,
        stage: Option<Stage>,
    ) -> Result<Option<Versioned>, StoreError> {
        if self.settings.reads == ReadPolicy::LedgerOnly {
            return Ok(Some(v));
        }
        let stage = stage.or_else(|| {
            [Stage::Current, Stage::Pending, Stage::Previous]
                .into_iter()
                .find(|s| v.meta.has(*s))
        });
        // A version without a stage is retired: AWS may already have deleted it.
        let Some(stage) = stage else {
            return Ok(Some(v));
        };
        let label = aws_label(stage);
        let id = v.meta.id.as_str();
        let problem = match self
            .client
            .get_secret_value()
            .secret_id(self.aws_secret_id(secret))
            .version_id(id)
            .version_stage(label)
            .send()
            .await
        {
            Ok(out) => {
                let expected = self.format_of(secret).encode(secret, id, &v.value)?;
                let served = match (&expected, out.secret_string(), out.secret_binary()) {
                    (Payload::String(_), Some(s), _) => {
                        rotor_core::SecretValue::from_slice(s.as_bytes())
                    }
                    (Payload::Binary(_), _, Some(b)) => {
                        rotor_core::SecretValue::from_slice(b.as_ref())
                    }
                    _ => rotor_core::SecretValue::new(Vec::new()),
                };
                if served.ct_eq(expected.bytes()) {
                    return Ok(Some(v));
                }
                "AWS serves a different value under this version id (changed outside rotor?)"
                    .to_owned()
            }
            Err(e) => match AwsFailure::from_sdk(&e) {
                AwsFailure::Unavailable(d) => format!("AWS is unreachable: {d}"),
                f => format!(
                    "AWS does not have this version labelled {label} yet ({}); the next apply or `sync` uploads it",
                    f.detail()
                ),
            },
        };
        if self.settings.reads == ReadPolicy::RequireAws {
            return Err(StoreError::Backend(format!(
                "secret {secret}, version {id} ({stage}): {problem}"
            )));
        }
        tracing::warn!(secret = %secret, version = %id, stage = %stage, problem = %problem, "returning the ledger's copy of the value");
        Ok(Some(v))
    }
}

fn utf8(secret: &SecretName, v: &rotor_core::SecretValue) -> Result<String, StoreError> {
    v.expose_str()
        .map(str::to_owned)
        .map_err(|_| StoreError::Backend(format!("secret {secret}: value is not UTF-8")))
}

/// The secrets whose AWS mirror a change can affect (and which a resumed rotation repairs).
fn touched(change: &Change) -> BTreeSet<SecretName> {
    change
        .ops
        .iter()
        .filter_map(|op| match op {
            Op::InsertVersion { version, .. } => Some(version.secret.clone()),
            Op::Promote { secret, .. } | Op::ClearStage { secret, .. } => Some(secret.clone()),
            Op::BeginRotation(r) | Op::SaveRotation(r) => Some(r.secret.clone()),
            _ => None,
        })
        .collect()
}

#[async_trait]
impl Store for AwsStore {
    async fn apply(&self, change: Change) -> Result<Vec<AuditRecord>, StoreError> {
        let secrets = touched(&change);
        let begins = change
            .ops
            .iter()
            .any(|op| matches!(op, Op::BeginRotation(_)));
        let moves_stages = change
            .ops
            .iter()
            .any(|op| !matches!(op, Op::BeginRotation(_) | Op::SaveRotation(_)));
        if begins {
            // Do not start a rotation AWS cannot follow; repair an old gap first.
            for s in &secrets {
                self.sync(s).await?;
            }
        }
        let change = self.drop_replays(change).await?;
        // A fenced change goes to the ledger even when nothing is left to write: its fence
        // is still checked, so a writer that lost its lease hears so (store contract).
        let records = if change.ops.is_empty() && change.audit.is_empty() && change.fence.is_none()
        {
            Vec::new()
        } else {
            self.ledger.apply(change).await?
        };
        if begins && !moves_stages {
            // Synced just before, and the change moved no stage.
            return Ok(records);
        }
        let mut first_err = None;
        for s in &secrets {
            if let Err(e) = self.sync(s).await {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(records),
        }
    }

    async fn claim(
        &self,
        id: &RotationId,
        owner: &str,
        now: Timestamp,
        expires_at: Timestamp,
        takeover: Takeover,
    ) -> Result<Lease, StoreError> {
        self.ledger
            .claim(id, owner, now, expires_at, takeover)
            .await
    }

    async fn versions(&self, secret: &SecretName) -> Result<Vec<VersionMeta>, StoreError> {
        self.ledger.versions(secret).await
    }

    async fn read_stage(
        &self,
        secret: &SecretName,
        stage: Stage,
    ) -> Result<Option<Versioned>, StoreError> {
        match self.ledger.read_stage(secret, stage).await? {
            Some(v) => self.verified(secret, v, Some(stage)).await,
            None => Ok(None),
        }
    }

    async fn read_version(
        &self,
        secret: &SecretName,
        id: &VersionId,
    ) -> Result<Option<Versioned>, StoreError> {
        match self.ledger.read_version(secret, id).await? {
            Some(v) => self.verified(secret, v, None).await,
            None => Ok(None),
        }
    }

    async fn rotation(&self, id: &RotationId) -> Result<Option<Rotation>, StoreError> {
        self.ledger.rotation(id).await
    }

    async fn rotations(
        &self,
        secret: Option<&SecretName>,
        limit: usize,
    ) -> Result<Vec<Rotation>, StoreError> {
        self.ledger.rotations(secret, limit).await
    }

    async fn open_rotations(&self) -> Result<Vec<Rotation>, StoreError> {
        self.ledger.open_rotations().await
    }

    async fn owed_rollbacks(&self) -> Result<Vec<Rotation>, StoreError> {
        self.ledger.owed_rollbacks().await
    }

    async fn summaries(&self) -> Result<Vec<SecretSummary>, StoreError> {
        self.ledger.summaries().await
    }

    async fn audit_tail(&self, n: usize) -> Result<Vec<AuditRecord>, StoreError> {
        self.ledger.audit_tail(n).await
    }

    async fn audit_all(&self) -> Result<Vec<AuditRecord>, StoreError> {
        self.ledger.audit_all().await
    }

    /// The ledger writes and authenticates the audit log (its master key derives the key).
    async fn audit_verify(&self) -> Result<rotor_core::audit::Verified, StoreError> {
        self.ledger.audit_verify().await
    }

    /// The ledger holds every value (sealed), so an export needs no AWS call.
    async fn export(&self) -> Result<rotor_core::store::Dump, StoreError> {
        self.ledger.export().await
    }

    /// Imports into the ledger, then mirrors every secret's stages and values into AWS. If
    /// AWS fails part way, the ledger has everything and `sync_all` (or the next change of
    /// each secret) completes the mirror.
    async fn import(
        &self,
        dump: rotor_core::store::Dump,
        event: rotor_core::AuditEvent,
    ) -> Result<(), StoreError> {
        self.ledger.import(dump, event).await?;
        self.sync_all().await.map(drop)
    }
}
