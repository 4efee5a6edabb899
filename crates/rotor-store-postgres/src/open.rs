//! Creating and connecting to a store: the URL (TLS included), validation before anything
//! is written (schema, edited migrations, master-key check), and the migrations themselves
//! under the migration lock.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use rotor_core::StoreError;
use rotor_core::audit::AuditEvent;
use rotor_seal::{AuditKey, KeyCheck, MasterKey};
use rotor_tls::postgres::PgTls;
use sha2::{Digest, Sha256};
use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config};

use crate::pool::{PgConn, Pool};
use crate::{
    Ctx, FORMAT, Inner, KEYED_SCHEMA, MIGRATION_LOCK, MIGRATIONS, PgStore, SCHEMA_VERSION,
    Settings, connect_error, db, fail, pg_error, retry_backoff, seal_error,
};

/// Parses `url` (libpq's TLS parameters included) and names it without its password.
fn parse_url(url: &str) -> Result<(Config, PgTls, String), StoreError> {
    let (config, tls) = rotor_tls::postgres::parse_url(url).map_err(|e| match e {
        rotor_tls::TlsError::Url(_) => StoreError::Backend(
            "the PostgreSQL store URL does not parse (expected postgres://USER:PASSWORD@HOST:PORT/DB)"
                .to_owned(),
        ),
        other => StoreError::Backend(format!("the PostgreSQL store URL's TLS settings: {other}")),
    })?;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let target = format!(
        "postgres://{}@{host}:{port}/{}",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or("")
    );
    Ok((config, tls, target))
}

fn checksum(sql: &str) -> String {
    hex::encode(Sha256::digest(sql.as_bytes()))
}

/// Session settings for every connection.
fn setup_sql(settings: &Settings) -> String {
    format!(
        "SET lock_timeout = {}; SET default_transaction_isolation = 'read committed'; \
         SET idle_in_transaction_session_timeout = {}; SET statement_timeout = {}",
        settings.lock_timeout.as_millis().max(1),
        settings.idle_in_transaction_timeout.as_millis().max(1),
        settings.statement_timeout.as_millis().max(1)
    )
}

/// Reads and validates everything `connect` needs before it may write. Writes nothing.
/// Returns the schema version found.
async fn validate(
    client: &Client,
    target: &str,
    master: &MasterKey,
    old: Option<&MasterKey>,
) -> Result<i64, StoreError> {
    let pg = |e: tokio_postgres::Error| pg_error(target, &e);
    let corrupt = |detail: String| StoreError::Corrupt {
        path: target.to_owned(),
        detail,
    };
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('rotor_schema_migrations') IS NOT NULL",
            &[],
        )
        .await
        .map_err(pg)?
        .get(0);
    if !exists {
        return Err(StoreError::NotInitialized {
            path: target.to_owned(),
        });
    }
    let applied = client
        .query(
            "SELECT version::bigint, checksum FROM rotor_schema_migrations ORDER BY version",
            &[],
        )
        .await
        .map_err(pg)?;
    let mut found = 0i64;
    let mut sums = Vec::new();
    for row in &applied {
        let v: i64 = row.try_get(0).map_err(pg)?;
        let sum: String = row.try_get(1).map_err(pg)?;
        found = found.max(v);
        sums.push((v, sum));
    }
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: target.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found < 1 {
        return Err(corrupt(
            "it has no applied rotor migration (not a rotor store)".into(),
        ));
    }
    for (v, sum) in &sums {
        let known = usize::try_from(*v - 1).ok().and_then(|i| MIGRATIONS.get(i));
        match known {
            Some((name, sql)) if checksum(sql) == *sum => {}
            Some((name, _)) => {
                return Err(corrupt(format!(
                    "migration {name} was applied from different SQL than this rotor embeds (edited migration)"
                )));
            }
            None => return Err(corrupt(format!("unknown migration number {v}"))),
        }
    }
    let meta = |rows: &[tokio_postgres::Row], key: &str| -> Option<Vec<u8>> {
        rows.iter()
            .find(|r| r.get::<_, String>(0) == key)
            .map(|r| r.get::<_, Vec<u8>>(1))
    };
    let rows = client
        .query(
            "SELECT key, value FROM rotor_meta WHERE key IN ('format', 'key_check')",
            &[],
        )
        .await
        .map_err(|e| corrupt(format!("cannot read its meta table: {}", pg(e))))?;
    if meta(&rows, "format").as_deref() != Some(FORMAT.as_bytes()) {
        return Err(corrupt(
            "its meta table does not mark it as a rotor store".into(),
        ));
    }
    let check = meta(&rows, "key_check")
        .ok_or_else(|| corrupt("it has no master-key check record".into()))?;
    let check = KeyCheck::from_bytes(&check)
        .map_err(|err| corrupt(format!("its master-key check record is damaged: {err}")))?;
    match (check.verify(master), old) {
        (Ok(()), _) => {}
        (Err(_), Some(old)) if check.verify(old).is_ok() => {}
        (Err(e), _) => return Err(seal_error(e)),
    }
    Ok(found)
}

/// Applies the migrations this build has and the database lacks, under the migration
/// advisory lock, and returns the still-open transaction (the caller commits, after adding
/// its own rows when it creates the store) and the schema version it migrated from. With
/// `fresh`, refuses a database that has any.
async fn migrate<'c>(
    client: &'c mut Client,
    target: &str,
    fresh: bool,
) -> Result<(tokio_postgres::Transaction<'c>, i64), StoreError> {
    let pg = |e: tokio_postgres::Error| pg_error(target, &e);
    let tx = client.transaction().await.map_err(pg)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS rotor_schema_migrations (
             version    INTEGER PRIMARY KEY,
             name       TEXT NOT NULL,
             checksum   TEXT NOT NULL,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(pg)?;
    // Re-read under the lock: another process may have migrated meanwhile.
    let now: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::bigint FROM rotor_schema_migrations",
            &[],
        )
        .await
        .map_err(pg)?
        .get(0);
    if fresh && now > 0 {
        return Err(StoreError::AlreadyExists {
            path: target.to_owned(),
        });
    }
    if now > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: target.to_owned(),
            found: now,
            supported: SCHEMA_VERSION,
        });
    }
    for (i, (name, sql)) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(now).unwrap_or(0))
    {
        tx.batch_execute(sql).await.map_err(pg)?;
        let version = i32::try_from(i + 1).unwrap_or(i32::MAX);
        tx.execute(
            "INSERT INTO rotor_schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            &[&version, name, &checksum(sql)],
        )
        .await
        .map_err(pg)?;
    }
    Ok((tx, now))
}

impl PgStore {
    /// Creates the schema in the (empty) database at `url` with default [`Settings`],
    /// records the master-key check and appends `store.init` to the audit log, all in one
    /// transaction. Refuses a database that already holds a rotor store
    /// ([`StoreError::AlreadyExists`]).
    pub async fn init(url: &str, master: MasterKey, actor: &str) -> Result<Self, StoreError> {
        Self::init_with(url, master, actor, Settings::default()).await
    }

    /// [`PgStore::init`] with explicit settings.
    pub async fn init_with(
        url: &str,
        master: MasterKey,
        actor: &str,
        settings: Settings,
    ) -> Result<Self, StoreError> {
        let store = Self::build(url, master, None, &settings)?;
        let inner = &store.inner;
        let ctx = &inner.ctx;
        let pg = |e: tokio_postgres::Error| pg_error(&ctx.target, &e);
        let check = KeyCheck::new(&ctx.master).map_err(seal_error)?;
        let PgConn {
            mut client,
            mut stmts,
        } = inner
            .pool
            .connect()
            .await
            .map_err(|e| connect_error(&ctx.target, &e))?;
        let (tx, _) = migrate(&mut client, &ctx.target, true).await?;
        let created_at = Timestamp::now();
        for (key, value) in [
            ("format", FORMAT.as_bytes().to_vec()),
            ("key_check", check.to_bytes()),
            ("created_at", created_at.to_string().into_bytes()),
        ] {
            tx.execute(
                "INSERT INTO rotor_meta (key, value) VALUES ($1, $2)",
                &[&key, &value],
            )
            .await
            .map_err(pg)?;
        }
        db::append_audit(
            ctx,
            &ctx.records,
            &tx,
            &mut stmts,
            Some(created_at),
            &[AuditEvent::new(actor, "store.init")],
        )
        .await
        .map_err(fail)?;
        tx.commit().await.map_err(pg)?;
        Ok(store)
    }

    /// Opens the store at `url` with default [`Settings`]. Refuses, without writing
    /// anything: no rotor schema (`NotInitialized`), a newer schema (`TooNew`), a damaged
    /// one or an edited migration (`Corrupt`), and a master key other than the store's
    /// (`WrongMasterKey`). Then applies pending migrations (under the migration lock).
    pub async fn connect(url: &str, master: MasterKey) -> Result<Self, StoreError> {
        Self::connect_with(url, master, Settings::default()).await
    }

    /// [`PgStore::connect`] with explicit settings.
    pub async fn connect_with(
        url: &str,
        master: MasterKey,
        settings: Settings,
    ) -> Result<Self, StoreError> {
        Self::open(url, master, None, &settings).await
    }

    /// Opens the store during a master-key rotation: `new` seals every new value, and
    /// values open with whichever of `new` and `old` wrapped them (`rotor_seal::open_any`).
    /// The store's key check may be under either key (before, during or after
    /// [`PgStore::rewrap_all`]). Every replica should run with both keys until the rewrap
    /// finished; a replica still on `old` alone keeps sealing under `old`, and its rows
    /// are rewrapped only by a later `rewrap_all`.
    pub async fn connect_rotating(
        url: &str,
        new: MasterKey,
        old: MasterKey,
        settings: Settings,
    ) -> Result<Self, StoreError> {
        Self::open(url, new, Some(old), &settings).await
    }

    fn build(
        url: &str,
        master: MasterKey,
        old: Option<MasterKey>,
        settings: &Settings,
    ) -> Result<Self, StoreError> {
        let (mut config, tls, target) = parse_url(url)?;
        config.application_name(&settings.application_name);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                ctx: Ctx {
                    target,
                    records: AuditKey::for_records(&master),
                    master,
                    old,
                },
                pool: Pool::new(config, tls, setup_sql(settings), settings.pool_size),
                retry: retry_backoff(settings.retries),
            }),
        })
    }

    async fn open(
        url: &str,
        master: MasterKey,
        old: Option<MasterKey>,
        settings: &Settings,
    ) -> Result<Self, StoreError> {
        let store = Self::build(url, master, old, settings)?;
        let inner = &store.inner;
        let ctx = &inner.ctx;
        let PgConn {
            mut client,
            mut stmts,
        } = inner
            .pool
            .connect()
            .await
            .map_err(|e| connect_error(&ctx.target, &e))?;
        let found = validate(&client, &ctx.target, &ctx.master, ctx.old.as_ref()).await?;
        // Validated: from here on writing is allowed.
        if found < SCHEMA_VERSION {
            let (tx, from) = migrate(&mut client, &ctx.target, false).await?;
            if from < KEYED_SCHEMA {
                let keyed = db::keyed_event(
                    "records before this one were written without a MAC (store schema 1)",
                );
                db::append_audit(ctx, &ctx.records, &tx, &mut stmts, None, &[keyed])
                    .await
                    .map_err(fail)?;
            }
            tx.commit().await.map_err(|e| pg_error(&ctx.target, &e))?;
        }
        drop((client, stmts));
        Ok(store)
    }
}
