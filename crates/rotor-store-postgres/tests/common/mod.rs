//! Helpers shared by the PostgreSQL store tests: a real throwaway server per test, and the
//! values and changes the tests write.
#![allow(dead_code)]

pub mod rotate;

use jiff::Timestamp;
use rotor_core::audit::AuditEvent;
use rotor_core::store::{Change, NewVersion, Op};
use rotor_core::{
    Rotation, RotationId, RotationStatus, SecretName, SecretValue, Step, VersionId,
    rotation::Trigger,
};
use rotor_seal::MasterKey;
use rotor_store_postgres::PgStore;
use rotor_test_support::Postgres;
use secrecy::ExposeSecret;

/// A real PostgreSQL 15 with an empty database `rotor`. Fails (never skips) without one.
pub struct Db {
    pub pg: Postgres,
    pub url: String,
}

pub fn db() -> Db {
    let pg = Postgres::start().expect("PostgreSQL 15 (run scripts/install-deps)");
    pg.create_db("rotor").expect("create database");
    let url = pg.url("rotor");
    Db { pg, url }
}

impl Db {
    pub fn psql(&self, sql: &str) -> String {
        self.pg.psql_db("rotor", sql).expect("psql")
    }

    /// Every row of every rotor table, as text (bytea as hex): a full dump for "was
    /// anything written" and "is a value in there" checks.
    pub fn dump(&self) -> String {
        let tables = self
            .psql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename");
        let mut out = String::new();
        for t in tables.lines().filter(|t| !t.is_empty()) {
            out.push_str(&format!("== {t}\n"));
            out.push_str(&self.psql(&format!("SELECT t::text FROM \"{t}\" t ORDER BY 1")));
            out.push('\n');
        }
        out
    }
}

/// `n` handles on one fresh master key (`MasterKey` is deliberately not `Clone`).
pub fn key_copies(n: usize) -> Vec<MasterKey> {
    let k = MasterKey::generate().expect("key");
    let encoded = k.encode();
    (0..n)
        .map(|_| MasterKey::from_encoded(encoded.expose_secret()).expect("same key"))
        .collect()
}

pub fn key_pair() -> (MasterKey, MasterKey) {
    let mut keys = key_copies(2);
    let b = keys.pop().expect("two");
    let a = keys.pop().expect("two");
    (a, b)
}

pub fn name(s: &str) -> SecretName {
    SecretName::new(s).expect("valid name")
}

pub async fn new_store(db: &Db) -> PgStore {
    PgStore::init(&db.url, MasterKey::generate().expect("key"), "alice@host")
        .await
        .expect("init")
}

pub fn new_version(secret: &SecretName, value: &[u8]) -> NewVersion {
    NewVersion {
        secret: secret.clone(),
        id: VersionId::generate(),
        created_by: "alice@host".into(),
        created_at: Timestamp::now(),
        metadata: serde_json::json!({"kid": "k1"}),
        value: SecretValue::from_slice(value),
    }
}

/// `rotor put`: insert and promote in one change.
pub fn put_change(secret: &SecretName, value: &[u8]) -> (VersionId, Change) {
    let v = new_version(secret, value);
    let id = v.id.clone();
    let change = Change::new()
        .op(Op::InsertVersion {
            version: v,
            stage: None,
        })
        .op(Op::Promote {
            secret: secret.clone(),
            version: id.clone(),
        })
        .audit(
            AuditEvent::new("alice@host", "secret.put")
                .secret(secret)
                .version(&id),
        );
    (id, change)
}

pub fn rotation(secret: &SecretName) -> Rotation {
    let now = Timestamp::now();
    Rotation {
        id: RotationId::generate(),
        secret: secret.clone(),
        trigger: Trigger::Manual,
        actor: "alice@host".into(),
        reason: None,
        emergency: false,
        evict: true,
        status: RotationStatus::Running,
        step: Step::Create,
        step_done: false,
        attempts: 0,
        error: None,
        pending_version: None,
        previous_version: None,
        started_at: now,
        updated_at: now,
        activate_after: None,
        rollback_owed: false,
        retire_after: None,
        lease: None,
    }
}
