//! `store migrate`, `store sync` and `master-key rotate`.

use std::path::Path;

use anyhow::Context as _;
use rotor_core::AuditEvent;
use rotor_core::config::StoreConfig;

use crate::context::{self, Context};
use crate::stores;

/// `rotor store sync`: makes AWS match the ledger for every secret (labels, values) and
/// brings each AWS secret's description, KMS key and `rotor:` tags in line with the
/// inventory. Prints the calls made, one line each.
pub async fn sync(config_path: &Path) -> anyhow::Result<()> {
    let config = context::load_config(config_path)?;
    if !matches!(config.store, StoreConfig::Aws { .. }) {
        anyhow::bail!(
            "`rotor store sync` is for kind = \"aws\" stores (it mirrors the ledger into AWS Secrets Manager); this store has nothing to sync"
        );
    }
    let store = stores::aws::open(
        &config.store,
        &config.secrets,
        rotor_store_sqlite::IntegrityCheck::BeforeFirstWrite,
    )
    .await?;
    let reports = store.sync_all_with_metadata().await?;
    let mut calls = 0;
    for (secret, report) in &reports {
        for call in &report.calls {
            println!("{secret}: {call}");
            calls += 1;
        }
    }
    println!(
        "{} secrets in line with the ledger and the inventory ({calls} AWS changes)",
        reports.len()
    );
    Ok(())
}

/// Copies the whole store into the store of `to`, then reads the copy back and compares it.
pub async fn migrate(config_path: &Path, to: &Path) -> anyhow::Result<()> {
    let source = Context::open_checked(config_path).await?;
    let target_config = context::load_config(to)?;
    // The source's log must verify, MACs included, before it is copied: the copy's MACs
    // start again at its `store.migrate` record under the target's key, so a forged record
    // copied across would come out looking authentic.
    if let Err(e) = source.store().audit_verify().await?.outcome {
        anyhow::bail!(
            "the source's audit log does not verify ({e}); nothing was copied or created. Run `rotor audit verify` on the source and investigate before migrating"
        );
    }
    let actor = context::actor();
    // Create the target when it does not exist yet (a new file, an empty database).
    if let Ok(lines) = stores::init(&target_config.store, &actor).await {
        for line in lines {
            println!("target: {line}");
        }
    }
    let target = stores::open(
        &target_config.store,
        &target_config.secrets,
        rotor_store_sqlite::IntegrityCheck::OnOpen,
    )
    .await?;
    let dump = source.store().export().await?;
    let (versions, rotations, records) =
        (dump.versions.len(), dump.rotations.len(), dump.audit.len());
    let event = AuditEvent::new(actor, "store.migrate").reason(Some(&format!(
        "copied {versions} versions, {rotations} rotations and {records} audit records from {}",
        config_path.display()
    )));
    target.import(dump, event).await?;

    // Verify: everything that went in comes back out, values equal, the chain intact.
    let original = source.store().export().await?;
    let copy = target.export().await?;
    anyhow::ensure!(
        copy.versions.len() == original.versions.len()
            && copy.rotations.len() == original.rotations.len(),
        "the copy has {} versions and {} rotations, the source {} and {}",
        copy.versions.len(),
        copy.rotations.len(),
        original.versions.len(),
        original.rotations.len()
    );
    for v in &original.versions {
        let c = copy
            .versions
            .iter()
            .find(|c| c.meta.id == v.meta.id && c.meta.secret == v.meta.secret)
            .with_context(|| {
                format!(
                    "version {} of {} is missing in the copy",
                    v.meta.id, v.meta.secret
                )
            })?;
        anyhow::ensure!(
            c.value.ct_eq(&v.value) && c.meta.stages == v.meta.stages,
            "version {} of {} differs in the copy",
            v.meta.id,
            v.meta.secret
        );
    }
    let n = match target.audit_verify().await?.outcome {
        Ok(k) => k.records,
        Err(e) => anyhow::bail!("the copy's audit log does not verify: {e}"),
    };
    println!(
        "migrated {versions} versions, {rotations} rotations and {records} audit records to {}; verified: values and stages equal, audit chain and MACs intact ({n} records)",
        to.display()
    );
    Ok(())
}

/// Rewraps every value under a new master key. The new key is written to `KEYFILE.new`
/// before anything is rewrapped, so an interruption leaves both keys on disk, and running
/// the command again resumes.
pub async fn rotate_master_key(config_path: &Path) -> anyhow::Result<()> {
    let config = context::load_config(config_path)?;
    let store_config = match &config.store {
        StoreConfig::Aws { ledger, .. } => ledger.as_ref(),
        other => other,
    };
    if let StoreConfig::Sqlite {
        passphrase_env: Some(_),
        ..
    } = store_config
    {
        anyhow::bail!(
            "this store's key comes from a passphrase; master-key rotate works with key files"
        );
    }
    let key_file = store_config.master_key_file();
    let from_env = std::env::var_os(rotor_seal::MASTER_KEY_ENV).is_some();
    let new_path = stores::pending_key_path(key_file);
    if new_path.exists() {
        println!("resuming: the new key {} exists", new_path.display());
    } else {
        rotor_seal::write_key_file(&new_path, &rotor_seal::MasterKey::generate()?)
            .with_context(|| format!("cannot write {}", new_path.display()))?;
        println!(
            "created the new master key {} (mode 0600)",
            new_path.display()
        );
    }
    let load_new = || stores::master_key_file_only(&new_path);
    let load_old = || stores::master_key(key_file);
    let actor = context::actor();
    let n = match store_config {
        StoreConfig::Sqlite { path, .. } => {
            let store = rotor_store_sqlite::SqliteStore::open_rotating(
                path,
                load_new()?,
                load_old()?,
                Default::default(),
            )?;
            store.rewrap_all(&load_old()?, &load_new()?, &actor).await?
        }
        StoreConfig::Postgres { url, .. } => {
            let store = rotor_store_postgres::PgStore::connect_rotating(
                url.expose(),
                load_new()?,
                load_old()?,
                Default::default(),
            )
            .await?;
            store.rewrap_all(&load_old()?, &load_new()?, &actor).await?
        }
        StoreConfig::Aws { .. } => anyhow::bail!("an aws ledger cannot itself be an aws store"),
    };
    println!(
        "rewrapped {n} values under the new master key; the old key no longer opens the store"
    );
    if from_env {
        println!(
            "ROTOR_MASTER_KEY holds the OLD key: replace it with the content of {} now, then delete that file, then run `rotor audit anchor` (the audit anchor is tagged under the master key)",
            new_path.display()
        );
    } else {
        std::fs::rename(&new_path, key_file).with_context(|| {
            format!(
                "cannot move {} over {}",
                new_path.display(),
                key_file.display()
            )
        })?;
        if let Some(dir) = key_file.parent() {
            std::fs::File::open(dir).and_then(|d| d.sync_all()).ok();
        }
        println!(
            "{} now holds the new key (the old one is gone)",
            key_file.display()
        );
        // The anchor is tagged with a key derived from the master key: re-anchor under the
        // new one (the chain was verified by the rewrap's own record just now).
        let ctx = crate::context::Context::open(config_path).await?;
        let head = crate::anchor::anchor_now(ctx.store(), ctx.config()).await?;
        println!("re-anchored the audit head {head} under the new key");
    }
    Ok(())
}
