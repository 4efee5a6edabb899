//! Making AWS match the ledger: [`AwsStore::sync`] reads the ledger's stages and AWS's
//! labels and issues the next call that closes the gap, until they match (see the crate
//! docs for why AWS is a pure function of the ledger).

use std::collections::BTreeMap;

use aws_sdk_secretsmanager::error::SdkError;
use aws_sdk_secretsmanager::primitives::Blob;
use rotor_core::{SecretName, Stage, StoreError, VersionId};

use crate::failure::AwsFailure;
use crate::format::Payload;
use crate::plan::{self, Action, Actual, Desired};
use crate::{AwsStore, MAX_SYNC_CALLS, SyncReport};

impl AwsStore {
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
}

fn utf8(secret: &SecretName, v: &rotor_core::SecretValue) -> Result<String, StoreError> {
    v.expose_str()
        .map(str::to_owned)
        .map_err(|_| StoreError::Backend(format!("secret {secret}: value is not UTF-8")))
}
