//! What an AWS secret carries besides its values: description, KMS key and tags, taken
//! from the inventory, set at `CreateSecret` and brought back in line by [`AwsStore::align`]
//! (`rotor store sync`, and once per process for each secret a change touches).
//!
//! Tags rotor writes all start with `rotor:`; tags with other keys belong to someone else
//! and are never removed. `rotor:rotated-by = rotor` marks the secret as rotated by rotor,
//! so nobody enables AWS's own rotation (a second rotator) on it unnoticed.

use std::collections::BTreeMap;

use aws_sdk_secretsmanager::types::Tag;
use rotor_core::{SecretName, SecretSpec, StoreError};

use crate::AwsStore;
use crate::failure::AwsFailure;

/// The prefix of every tag key rotor owns.
pub const TAG_PREFIX: &str = "rotor:";
/// The tag that says rotor rotates this secret.
pub const ROTATED_BY_TAG: &str = "rotor:rotated-by";

/// The description of a secret whose inventory entry has none.
pub const DEFAULT_DESCRIPTION: &str =
    "managed by rotor; rotation state and audit log are in rotor's ledger";

/// Description, KMS key and tags of one secret, from the inventory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsSecretMeta {
    /// `None`: [`DEFAULT_DESCRIPTION`].
    pub description: Option<String>,
    /// `None`: the store's `kms_key_id`, else AWS's default key.
    pub kms_key_id: Option<String>,
    /// Tags besides [`ROTATED_BY_TAG`] (which is always added), keys starting with `rotor:`.
    pub tags: BTreeMap<String, String>,
}

impl AwsSecretMeta {
    /// The metadata of `spec` as the inventory describes it: its description and the tags
    /// `rotor:owner`, `rotor:tier` (or `rotor:rotate-every` without a tier) and `rotor:kind`.
    pub fn from_spec(spec: &SecretSpec, kms_key_id: Option<String>) -> Self {
        let mut tags = BTreeMap::new();
        if let Some(owner) = &spec.owner {
            tags.insert(format!("{TAG_PREFIX}owner"), owner.clone());
        }
        match spec.policy.tier {
            Some(tier) => tags.insert(format!("{TAG_PREFIX}tier"), tier.as_str().to_owned()),
            None => tags.insert(
                format!("{TAG_PREFIX}rotate-every"),
                spec.policy.rotate_every.to_string(),
            ),
        };
        tags.insert(format!("{TAG_PREFIX}kind"), spec.kind.to_string());
        Self {
            description: spec.description.clone(),
            kms_key_id,
            tags,
        }
    }
}

/// The metadata rotor wants on one AWS secret, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Wanted {
    pub(crate) description: String,
    pub(crate) kms_key_id: Option<String>,
    pub(crate) tags: BTreeMap<String, String>,
}

impl Wanted {
    pub(crate) fn aws_tags(&self) -> Vec<Tag> {
        self.tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect()
    }
}

/// Whether AWS's `KmsKeyId` is the key configured. AWS may answer with the key's ARN where
/// the config names an id or alias, so an ARN ending in the configured name matches.
fn same_key(actual: Option<&str>, wanted: &str) -> bool {
    actual.is_some_and(|a| {
        a == wanted || a.ends_with(&format!(":{wanted}")) || a.ends_with(&format!("/{wanted}"))
    })
}

impl AwsStore {
    pub(crate) fn wanted(&self, secret: &SecretName) -> Wanted {
        let meta = self.settings.secrets.get(secret.as_str());
        let mut tags = meta.map(|m| m.tags.clone()).unwrap_or_default();
        tags.insert(ROTATED_BY_TAG.to_owned(), "rotor".to_owned());
        Wanted {
            description: meta
                .and_then(|m| m.description.clone())
                .unwrap_or_else(|| DEFAULT_DESCRIPTION.to_owned()),
            kms_key_id: meta
                .and_then(|m| m.kms_key_id.clone())
                .or_else(|| self.settings.kms_key_id.clone()),
            tags,
        }
    }

    /// Brings the AWS secret's description, KMS key and `rotor:` tags in line with the
    /// inventory, and returns the calls it made (none when they match; nothing when the
    /// secret does not exist yet: `CreateSecret` sets them). Tags with other keys are kept.
    pub async fn align(&self, secret: &SecretName) -> Result<Vec<String>, StoreError> {
        let id = self.aws_secret_id(secret);
        let wanted = self.wanted(secret);
        let d = match self.client.describe_secret().secret_id(&id).send().await {
            Ok(d) => d,
            Err(e) => {
                return match AwsFailure::from_sdk(&e) {
                    AwsFailure::NotFound => Ok(Vec::new()),
                    f => Err(self.aws_error(secret, "DescribeSecret", &f)),
                };
            }
        };
        let mut calls = Vec::new();
        let description_differs = d.description() != Some(wanted.description.as_str());
        let key_differs = wanted
            .kms_key_id
            .as_deref()
            .is_some_and(|k| !same_key(d.kms_key_id(), k));
        if description_differs || key_differs {
            let mut req = self
                .client
                .update_secret()
                .secret_id(&id)
                .description(&wanted.description);
            if key_differs {
                req = req.set_kms_key_id(wanted.kms_key_id.clone());
            }
            req.send()
                .await
                .map_err(|e| self.aws_error(secret, "UpdateSecret", &AwsFailure::from_sdk(&e)))?;
            calls.push(format!(
                "UpdateSecret {id}{}{}",
                if description_differs {
                    " description"
                } else {
                    ""
                },
                if key_differs { " kms_key_id" } else { "" }
            ));
        }
        let actual: BTreeMap<&str, &str> = d
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?, t.value().unwrap_or(""))))
            .collect();
        let missing: Vec<Tag> = wanted
            .tags
            .iter()
            .filter(|(k, v)| actual.get(k.as_str()) != Some(&v.as_str()))
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        if !missing.is_empty() {
            let keys: Vec<String> = missing
                .iter()
                .filter_map(|t| t.key().map(str::to_owned))
                .collect();
            self.client
                .tag_resource()
                .secret_id(&id)
                .set_tags(Some(missing))
                .send()
                .await
                .map_err(|e| self.aws_error(secret, "TagResource", &AwsFailure::from_sdk(&e)))?;
            calls.push(format!("TagResource {id} {}", keys.join(",")));
        }
        let stale: Vec<String> = actual
            .keys()
            .filter(|k| k.starts_with(TAG_PREFIX) && !wanted.tags.contains_key(**k))
            .map(|k| (*k).to_owned())
            .collect();
        if !stale.is_empty() {
            self.client
                .untag_resource()
                .secret_id(&id)
                .set_tag_keys(Some(stale.clone()))
                .send()
                .await
                .map_err(|e| self.aws_error(secret, "UntagResource", &AwsFailure::from_sdk(&e)))?;
            calls.push(format!("UntagResource {id} {}", stale.join(",")));
        }
        Ok(calls)
    }
}

#[cfg(test)]
mod tests {
    use super::same_key;

    #[test]
    fn key_names_match_their_arns() {
        assert!(same_key(Some("alias/rotor"), "alias/rotor"));
        assert!(same_key(
            Some("arn:aws:kms:eu-west-1:1:alias/rotor"),
            "alias/rotor"
        ));
        assert!(same_key(Some("arn:aws:kms:eu-west-1:1:key/abc"), "abc"));
        assert!(!same_key(None, "alias/rotor"));
        assert!(!same_key(Some("alias/other"), "alias/rotor"));
    }
}
