//! PostgresRotator over TLS against real PostgreSQL 15 servers with `ssl = on` and a
//! TLS-only `pg_hba.conf` (a plaintext login is refused, so a rotation that works went over
//! TLS), certificates made at test time by a throwaway CA.

mod common;

use common::*;
use rotor_core::Rotator;
use rotor_core::config::PgStrategy;
use rotor_core::store::Versioned;
use rotor_rotate_postgres::PostgresRotator;
use rotor_test_support::{CertFiles, Postgres, TestCa};

fn tls_server(ca: &TestCa, names: &[&str], client_cert: bool) -> Postgres {
    let cert = ca.issue_server(names).expect("server certificate");
    let pg = Postgres::start_tls(ca, &cert, client_cert)
        .expect("starting PostgreSQL 15 with ssl=on (run scripts/install-deps)");
    pg.psql("CREATE ROLE app LOGIN PASSWORD 'app-pw-0'")
        .expect("psql CREATE ROLE app");
    pg
}

/// Runs `set` of a fresh pending value for role `app` through `url`; on success the new
/// password logs in (through psql, over TLS).
async fn set_through(pg: &Postgres, url: &str) -> Result<(), rotor_core::RotatorError> {
    let spec = pg_spec("app-db", url, "app", PgStrategy::Single, Some(ADMIN));
    let admin = admin_value(pg);
    let current = versioned("app-db", "app", "app-pw-0");
    let r = PostgresRotator::new();
    let c = ctx(&spec, Some(&current), Some(&admin));
    let generated = r.create(&c).await.expect("postgres rotator create");
    let pending = Versioned {
        meta: current.meta.clone(),
        value: generated.value,
    };
    r.set(&c, &pending).await?;
    r.test(&c, &pending).await?;
    let (_, pw) = parts(&pending);
    assert!(logs_in(pg, "app", &pw), "the new password logs in");
    Ok(())
}

fn query(ca: &TestCa) -> String {
    format!("sslrootcert={}", ca.cert_path().display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_rotation_over_verify_full_tls() {
    let ca = TestCa::new().unwrap();
    let pg = tls_server(&ca, &["localhost", "127.0.0.1"], false);
    let url = format!(
        "postgres://127.0.0.1:{}/postgres?sslmode=verify-full&{}",
        pg.port(),
        query(&ca)
    );
    let spec = pg_spec("app-db", &url, "app", PgStrategy::Single, Some(ADMIN));
    let admin = admin_value(&pg);
    let current = versioned("app-db", "app", "app-pw-0");
    let r = PostgresRotator::new();
    let pending = rotate(&r, &spec, Some(&current), Some(&admin)).await;
    let (_, new_pw) = parts(&pending);
    assert!(logs_in(&pg, "app", &new_pw), "new works after set");
    assert!(!logs_in(&pg, "app", "app-pw-0"), "old refused");
    let c = ctx(&spec, Some(&pending), Some(&admin));
    r.retire(&c, &current).await.unwrap();
    // The host name form of the same server, as a provider's console would print it.
    let by_name = format!(
        "postgresql://localhost:{}/postgres?{}&sslmode=verify-full",
        pg.port(),
        query(&ca)
    );
    set_through(&pg, &by_name).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_refuses_a_certificate_for_another_host_and_verify_ca_accepts_it() {
    let ca = TestCa::new().unwrap();
    let pg = tls_server(&ca, &["db.other.test"], false);
    let full = format!(
        "postgres://127.0.0.1:{}/postgres?sslmode=verify-full&{}",
        pg.port(),
        query(&ca)
    );
    let err = set_through(&pg, &full).await.unwrap_err();
    assert!(
        !err.transient,
        "a wrong certificate is not an outage: {err}"
    );
    assert!(
        err.message
            .contains("certificate is not valid for the host name 127.0.0.1"),
        "{err}"
    );
    assert!(
        err.message.contains("sslmode=verify-full from the url"),
        "{err}"
    );
    assert!(logs_in(&pg, "app", "app-pw-0"), "nothing changed");

    // verify-ca checks the chain only: the same certificate is accepted...
    let chain_only = full.replace("verify-full", "verify-ca");
    set_through(&pg, &chain_only).await.unwrap();
    // ...but not one from another CA.
    let stranger = TestCa::new().unwrap();
    let wrong_ca = format!(
        "postgres://127.0.0.1:{}/postgres?sslmode=verify-ca&{}",
        pg.port(),
        query(&stranger)
    );
    let err = set_through(&pg, &wrong_ca).await.unwrap_err();
    assert!(!err.transient, "{err}");
    assert!(
        err.message.contains("not signed by a trusted root"),
        "{err}"
    );
    assert!(
        err.fix
            .as_deref()
            .unwrap_or_default()
            .contains("sslrootcert"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_and_the_remote_default_refuse_a_server_without_tls() {
    let pg = server();
    pg.psql("CREATE ROLE app LOGIN PASSWORD 'app-pw-0'")
        .unwrap();
    let require = format!(
        "postgres://127.0.0.1:{}/postgres?sslmode=require",
        pg.port()
    );
    let err = set_through(&pg, &require).await.unwrap_err();
    assert!(!err.transient, "{err}");
    assert!(err.message.contains("does not offer TLS"), "{err}");
    assert!(
        err.message.contains("sslmode=require from the url"),
        "{err}"
    );

    // A host name that is not loopback (reached at 127.0.0.1 through libpq's hostaddr)
    // and no sslmode: verify-full, explained.
    let remote = format!(
        "postgres://db.example.test:{}/postgres?hostaddr=127.0.0.1",
        pg.port()
    );
    let err = set_through(&pg, &remote).await.unwrap_err();
    assert!(!err.transient, "{err}");
    assert!(
        err.message
            .contains("rotor's default for a host that is not loopback"),
        "{err}"
    );
    assert!(
        err.fix
            .as_deref()
            .unwrap_or_default()
            .contains("sslmode=disable"),
        "{err}"
    );
    assert!(logs_in(&pg, "app", "app-pw-0"), "nothing changed");

    // Said explicitly, plaintext is allowed; on loopback the default (prefer) falls back.
    set_through(&pg, &format!("{remote}&sslmode=disable"))
        .await
        .unwrap();
    set_through(&pg, &url(pg.port())).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_default_verifies_with_the_providers_ca_and_client_certificates_work() {
    let ca = TestCa::new().unwrap();
    let pg = tls_server(&ca, &["db.example.test"], true);
    let base = format!(
        "postgres://db.example.test:{}/postgres?hostaddr=127.0.0.1",
        pg.port()
    );
    // Without the provider's CA the default verify-full cannot trust the server.
    let client: CertFiles = ca.issue_client("rotor").unwrap();
    let cert = format!(
        "sslcert={}&sslkey={}",
        client.cert.display(),
        client.key.display()
    );
    let err = set_through(&pg, &format!("{base}&{cert}"))
        .await
        .unwrap_err();
    assert!(!err.transient, "{err}");
    assert!(
        err.message.contains("not signed by a trusted root"),
        "{err}"
    );
    assert!(err.message.contains("not loopback"), "{err}");

    // The server requires a client certificate: without one the login is refused.
    let err = set_through(&pg, &format!("{base}&{}", query(&ca)))
        .await
        .unwrap_err();
    assert!(!err.transient, "{err}");

    // With the CA and the client certificate, verify-full (the default) rotates.
    set_through(&pg, &format!("{base}&{}&{cert}", query(&ca)))
        .await
        .unwrap();
}
