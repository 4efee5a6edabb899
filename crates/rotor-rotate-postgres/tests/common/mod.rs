//! Helpers shared by the integration tests: specs and values built by hand, a real server.
#![allow(dead_code)]

use std::path::Path;

use rotor_core::config::PgStrategy;
use rotor_core::rotator::StepContext;
use rotor_core::store::Versioned;
use rotor_core::{
    Kind, Rotator, SecretName, SecretSpec, SecretValue, Stage, VersionId, VersionMeta,
};
use rotor_rotate_postgres::PostgresRotator;
use rotor_test_support::Postgres;

pub const ADMIN: &str = "pg-admin";

/// A real server; a test that cannot start one fails.
pub fn server() -> Postgres {
    Postgres::start().expect("starting PostgreSQL 15 (run scripts/install-deps)")
}

pub fn url(port: u16) -> String {
    format!("postgres://127.0.0.1:{port}/postgres")
}

/// A postgres secret as the inventory parser builds it (plus its admin secret, which the
/// parser requires to be in the same inventory).
pub fn pg_spec(
    name: &str,
    url: &str,
    role: &str,
    strategy: PgStrategy,
    admin: Option<&str>,
) -> SecretSpec {
    let strategy = match strategy {
        PgStrategy::Single => "single",
        PgStrategy::Alternating => "alternating",
    };
    let mut toml = format!(
        "[secrets.{name}]\nkind = \"postgres\"\ntier = \"medium\"\nurl = \"{url}\"\nrole = \"{role}\"\nstrategy = \"{strategy}\"\n"
    );
    if let Some(admin) = admin {
        toml.push_str(&format!(
            "admin = \"{admin}\"\n\n[secrets.{admin}]\nkind = \"postgres\"\ntier = \"low\"\nurl = \"{url}\"\nrole = \"postgres\"\n"
        ));
    }
    let config = rotor_core::config::parse(&toml, Path::new("/tmp/rotor-test.toml"), &|_| None)
        .unwrap_or_else(|e| panic!("{e}\n{toml}"));
    let spec = config
        .secret(name)
        .expect("parsed test inventory has the secret")
        .clone();
    assert_eq!(spec.kind, Kind::Postgres);
    spec
}

pub fn versioned(secret: &str, user: &str, password: &str) -> Versioned {
    let value = serde_json::to_vec(&serde_json::json!({"username": user, "password": password}))
        .expect("encode username/password value as JSON");
    Versioned {
        meta: VersionMeta {
            id: VersionId::generate(),
            secret: SecretName::new(secret).expect("version's secret name"),
            created_at: jiff::Timestamp::now(),
            created_by: "test".to_owned(),
            metadata: serde_json::json!({"username": user}),
            stages: vec![Stage::Current],
        },
        value: SecretValue::new(value),
    }
}

/// The admin secret for the server's superuser.
pub fn admin_value(pg: &Postgres) -> Versioned {
    versioned(ADMIN, pg.admin_user(), pg.admin_password())
}

pub fn ctx<'a>(
    spec: &'a SecretSpec,
    current: Option<&'a Versioned>,
    admin: Option<&'a Versioned>,
) -> StepContext<'a> {
    StepContext {
        spec,
        current,
        admin,
        emergency: false,
    }
}

/// (username, password) of a stored value.
pub fn parts(v: &Versioned) -> (String, String) {
    let j: serde_json::Value =
        serde_json::from_slice(v.value.expose()).expect("parse credential value as JSON");
    (
        j["username"]
            .as_str()
            .expect("credential value has a string \"username\"")
            .to_owned(),
        j["password"]
            .as_str()
            .expect("credential value has a string \"password\"")
            .to_owned(),
    )
}

/// create → (stored as pending) → set → test, as the engine does; returns the pending
/// version, which the engine would then promote to current.
pub async fn rotate(
    r: &PostgresRotator,
    spec: &SecretSpec,
    current: Option<&Versioned>,
    admin: Option<&Versioned>,
) -> Versioned {
    let c = ctx(spec, current, admin);
    let generated = r.create(&c).await.expect("postgres rotator create");
    let pending = Versioned {
        meta: VersionMeta {
            id: VersionId::generate(),
            secret: spec.name.clone(),
            created_at: jiff::Timestamp::now(),
            created_by: "rotor".to_owned(),
            metadata: generated.metadata.clone(),
            stages: vec![Stage::Pending],
        },
        value: generated.value,
    };
    let (user, _) = parts(&pending);
    assert_eq!(generated.metadata, serde_json::json!({"username": user}));
    r.set(&c, &pending)
        .await
        .expect("postgres rotator set pending");
    r.test(&c, &pending)
        .await
        .expect("postgres rotator test pending");
    pending
}

/// Whether `user`/`password` can log in now (the real psql client, fresh connection).
pub fn logs_in(pg: &Postgres, user: &str, password: &str) -> bool {
    pg.psql_as(user, password, "postgres", "SELECT 1").is_ok()
}

/// An application's connection, held open by the test.
pub async fn app_session(port: u16, user: &str, password: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::Config::new()
        .host("127.0.0.1")
        .port(port)
        .dbname("postgres")
        .user(user)
        .password(password)
        .connect(tokio_postgres::NoTls)
        .await
        .expect("open app session to PostgreSQL");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}
