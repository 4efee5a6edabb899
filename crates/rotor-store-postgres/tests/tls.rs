//! The PostgreSQL store over TLS on a real PostgreSQL 15 with `ssl = on` and a TLS-only
//! `pg_hba.conf`: two replicas (separate pools) write one audit chain through verify-full
//! connections; a certificate for another host and a server without TLS are refused with
//! the reason.

mod common;

use std::sync::Arc;

use common::*;
use rotor_core::audit::{AuditEvent, verify_chain};
use rotor_core::store::Change;
use rotor_core::{Store, StoreError};
use rotor_store_postgres::{PgStore, Settings};
use rotor_test_support::{Postgres, TestCa};

fn tls_db(ca: &TestCa, names: &[&str]) -> Postgres {
    let cert = ca.issue_server(names).expect("server certificate");
    let pg = Postgres::start_tls(ca, &cert, false)
        .expect("PostgreSQL 15 with ssl=on (run scripts/install-deps)");
    pg.create_db("rotor").expect("create database");
    pg
}

fn backend(e: StoreError) -> String {
    match e {
        StoreError::Backend(m) => m,
        other => panic!("expected a backend error, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_over_verify_full_tls_form_one_chain() {
    let ca = TestCa::new().expect("CA");
    let pg = tls_db(&ca, &["localhost", "127.0.0.1"]);
    let url = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        pg.url("rotor"),
        ca.cert_path().display()
    );
    let mut keys = key_copies(3);
    drop(
        PgStore::init(&url, keys.pop().expect("key"), "init")
            .await
            .expect("init over TLS"),
    );
    let mut stores = Vec::new();
    for _ in 0..2 {
        let s = PgStore::connect_with(&url, keys.pop().expect("key"), Settings::default())
            .await
            .expect("connect over TLS");
        stores.push(Arc::new(s));
    }
    let mut tasks = Vec::new();
    for (r, store) in stores.iter().enumerate() {
        for t in 0..3 {
            let store = Arc::clone(store);
            tasks.push(tokio::spawn(async move {
                let s = name(&format!("tls-{r}-{t}"));
                for i in 0..6 {
                    let change = if i % 2 == 0 {
                        put_change(&s, b"v").1
                    } else {
                        Change::new()
                            .audit(AuditEvent::new(format!("r{r}"), "test.note").secret(&s))
                    };
                    store.apply(change).await.expect("apply over TLS");
                }
            }));
        }
    }
    for t in tasks {
        t.await.expect("task");
    }
    let audit = stores[1].audit_all().await.expect("audit");
    // store.init + 6 tasks x (3 puts + 3 notes)
    assert_eq!(verify_chain(&audit), Ok(1 + 6 * 6));
    assert_eq!(stores[0].summaries().await.expect("summaries").len(), 6);
    // Every connection the store holds is TLS (pg_hba.conf refuses any other, too).
    let plain = pg
        .psql(
            "SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
             WHERE a.datname = 'rotor' AND NOT s.ssl",
        )
        .expect("psql");
    assert_eq!(plain, "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_refuses_another_hosts_certificate_and_a_server_without_tls() {
    let ca = TestCa::new().expect("CA");
    let pg = tls_db(&ca, &["db.other.test"]);
    let url = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        pg.url("rotor"),
        ca.cert_path().display()
    );
    let key = || rotor_seal::MasterKey::generate().expect("key");
    let msg = backend(
        PgStore::init(&url, key(), "init")
            .await
            .expect_err("refused"),
    );
    assert!(
        msg.contains("not valid for the host name 127.0.0.1"),
        "{msg}"
    );
    assert!(!msg.contains(pg.admin_password()), "{msg}");

    let plain = db();
    let url = format!("{}?sslmode=require", plain.url);
    let msg = backend(
        PgStore::init(&url, key(), "init")
            .await
            .expect_err("refused"),
    );
    assert!(msg.contains("does not offer TLS"), "{msg}");
    assert_eq!(
        plain.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"),
        "0",
        "nothing was written"
    );
}
