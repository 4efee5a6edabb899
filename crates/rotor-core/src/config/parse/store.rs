//! `[store]` (and an aws store's ledger) and `[tiers]`.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use toml_edit::{Item, TableLike};

use super::Walker;
use crate::config::StoreConfig;
use crate::policy::Tiers;

pub(super) const STORE_KEYS: &[&str] = &[
    "kind",
    "path",
    "master_key_file",
    "passphrase_env",
    "url",
    "region",
    "endpoint_url",
    "prefix",
    "ledger",
    "kms_key_id",
    "kms_key_ids",
];
pub(super) const TIER_KEYS: &[&str] = &["high", "medium", "low"];

impl Walker<'_> {
    pub(super) fn store(&mut self, item: Option<&Item>, dir: &Path) -> Option<StoreConfig> {
        let default = || StoreConfig::Sqlite {
            path: dir.join("rotor.db"),
            master_key_file: dir.join("rotor.key"),
            passphrase_env: None,
        };
        let Some(item) = item else {
            return Some(default());
        };
        let Some(t) = item.as_table_like() else {
            self.error(
                item.span().unwrap_or(0..0),
                "`store` must be a table".into(),
                Some("write a [store] section".into()),
            );
            return None;
        };
        self.unknown_keys(t, STORE_KEYS, "[store]");
        let kind = match self.string(t, "kind") {
            None => "sqlite".to_owned(),
            Some((kind, span)) => {
                if !["sqlite", "postgres", "aws"].contains(&kind.as_str()) {
                    self.error(
                        span,
                        format!("unknown store kind `{kind}`"),
                        Some("use kind = \"sqlite\" (embedded), \"postgres\" or \"aws\"".into()),
                    );
                    return None;
                }
                kind
            }
        };
        let header = item.span().unwrap_or(0..0);
        match kind.as_str() {
            "aws" => {
                let region = self.string(t, "region").map(|(s, _)| s);
                let endpoint_url = self.string(t, "endpoint_url").map(|(s, _)| s);
                let prefix = self.string(t, "prefix").map(|(s, _)| s).unwrap_or_default();
                let ledger = match self.string(t, "ledger") {
                    None => {
                        self.error(
                            header,
                            "an aws store needs a `ledger` for rotation state and the audit log".into(),
                            Some("add ledger = \"sqlite\" (with path) or ledger = \"postgres\" (with url)".into()),
                        );
                        return None;
                    }
                    Some((l, span)) => match l.as_str() {
                        "sqlite" | "postgres" => self.ledger_store(t, &l, dir, &header)?,
                        other => {
                            self.error(
                                span,
                                format!("unknown ledger `{other}`"),
                                Some("use \"sqlite\" or \"postgres\"".into()),
                            );
                            return None;
                        }
                    },
                };
                let kms_key_id = self.string(t, "kms_key_id").map(|(s, _)| s);
                let kms_key_ids = self.kms_key_ids(t);
                Some(StoreConfig::Aws {
                    region,
                    endpoint_url,
                    prefix,
                    kms_key_id,
                    kms_key_ids,
                    ledger: Box::new(ledger),
                })
            }
            other => self.ledger_store(t, other, dir, &header),
        }
    }

    /// `[store.kms_key_ids]`: secret name → KMS key id, ARN or alias.
    pub(super) fn kms_key_ids(&mut self, t: &dyn TableLike) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let Some(item) = t.get("kms_key_ids") else {
            return out;
        };
        let Some(table) = item.as_table_like() else {
            self.error(
                item.span().unwrap_or(0..0),
                "`kms_key_ids` must be a table of secret name = KMS key".into(),
                Some(
                    "write [store.kms_key_ids] with lines like jwt-signing = \"alias/rotor\""
                        .into(),
                ),
            );
            return out;
        };
        for (name, value) in table.iter() {
            match value.as_str() {
                Some(v) if !v.is_empty() => {
                    out.insert(name.to_owned(), v.to_owned());
                }
                _ => self.error(
                    value.span().unwrap_or(0..0),
                    format!("kms_key_ids.{name} must be a non-empty string"),
                    Some("give a KMS key id, key ARN or alias (alias/NAME)".into()),
                ),
            }
        }
        out
    }

    /// The `sqlite` or `postgres` part of a `[store]` (also an aws store's ledger).
    pub(super) fn ledger_store(
        &mut self,
        t: &dyn TableLike,
        kind: &str,
        dir: &Path,
        header: &Range<usize>,
    ) -> Option<StoreConfig> {
        let master_key_file = self
            .string(t, "master_key_file")
            .map_or_else(|| dir.join("rotor.key"), |(p, _)| dir.join(p));
        let passphrase_env = self.string(t, "passphrase_env").map(|(s, _)| s);
        if kind == "postgres" {
            let url =
                self.required_string(t, "url", header, "url = \"postgres://rotor@db:5432/rotor\"")?;
            if passphrase_env.is_some() {
                self.error(
                    t.get("passphrase_env").and_then(Item::span).unwrap_or(0..0),
                    "a postgres store takes its master key from ROTOR_MASTER_KEY or master_key_file".into(),
                    Some("remove passphrase_env".into()),
                );
            }
            return Some(StoreConfig::Postgres {
                url: crate::SecretUrl::new(url),
                master_key_file,
            });
        }
        let path = self
            .string(t, "path")
            .map_or_else(|| dir.join("rotor.db"), |(p, _)| dir.join(p));
        Some(StoreConfig::Sqlite {
            path,
            master_key_file,
            passphrase_env,
        })
    }

    pub(super) fn tiers(&mut self, item: Option<&Item>) -> Tiers {
        let mut tiers = Tiers::default();
        let Some(item) = item else { return tiers };
        let Some(t) = item.as_table_like() else {
            self.error(
                item.span().unwrap_or(0..0),
                "`tiers` must be a table".into(),
                Some("write a [tiers] section with high, medium and low".into()),
            );
            return tiers;
        };
        self.unknown_keys(t, TIER_KEYS, "[tiers]");
        for (tier, slot) in [
            ("high", &mut tiers.high),
            ("medium", &mut tiers.medium),
            ("low", &mut tiers.low),
        ] {
            if let Some(d) = self.duration(t, tier) {
                if d.is_zero() {
                    self.error(
                        t.get(tier).and_then(Item::span).unwrap_or(0..0),
                        format!("tier `{tier}` cannot be 0s"),
                        None,
                    );
                } else {
                    *slot = d;
                }
            }
        }
        tiers
    }
}
