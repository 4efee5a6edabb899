//! The redis rotator over `rediss://` against real redis-servers that speak only TLS
//! (`--port 0 --tls-port P`), certificates made at test time by a throwaway CA.

mod support;

use rotor_core::{Rotator, RotatorError, Stage};
use rotor_rotate_redis::RedisRotator;
use rotor_test_support::{CertFiles, Redis, TestCa, random_password};
use support::*;

fn tls_server(ca: &TestCa, names: &[&str], client_cert: bool) -> (Redis, String) {
    let cert = ca
        .issue_server(names)
        .expect("issue redis server certificate");
    let redis = Redis::start_tls(ca, &cert, client_cert).expect("redis-server with TLS");
    let old = random_password().expect("random password for user app");
    create_user(&redis, "app", &old);
    (redis, old)
}

fn client_params(c: &CertFiles) -> String {
    format!("sslcert={}&sslkey={}", c.cert.display(), c.key.display())
}

/// create + set through `url`, as the admin.
async fn set_through(redis: &Redis, url: &str, old: &str) -> Result<String, RotatorError> {
    let spec = spec(url, "app", Some(ADMIN_SECRET));
    let admin = admin_of(redis);
    let current = cred("app", old, Stage::Current);
    let rot = RedisRotator::new();
    let c = ctx(&spec, Some(&current), Some(&admin));
    let pending = pending_from(rot.create(&c).await.expect("redis rotator create"));
    rot.set(&c, &pending).await?;
    Ok(password(&pending))
}

#[tokio::test]
async fn full_rotation_over_verify_full_tls_with_a_client_certificate() {
    let ca = TestCa::new().unwrap();
    let (redis, old) = tls_server(&ca, &["localhost", "127.0.0.1"], true);
    let client = ca.issue_client("rotor").unwrap();
    let url = format!(
        "rediss://localhost:{}?sslmode=verify-full&sslrootcert={}&{}",
        redis.port(),
        ca.cert_path().display(),
        client_params(&client)
    );
    let spec = spec(&url, "app", Some(ADMIN_SECRET));
    let admin = admin_of(&redis);
    let current = cred("app", &old, Stage::Current);
    let rot = RedisRotator::new();
    let new = rotate(&rot, &spec, &current, Some(&admin)).await;
    let new_pw = password(&new);
    assert_eq!(
        auth(&redis, "app", &new_pw),
        "OK",
        "new works (redis-cli --tls)"
    );
    assert!(
        auth(&redis, "app", &old).starts_with("WRONGPASS"),
        "old retired"
    );

    // Without the client certificate the server refuses the session: permanent, explained.
    let bare = format!(
        "rediss://127.0.0.1:{}?sslrootcert={}",
        redis.port(),
        ca.cert_path().display()
    );
    let err = set_through(&redis, &bare, &new_pw).await.unwrap_err();
    assert!(!err.transient, "{err}");
    assert!(
        err.message.contains("requires a client certificate"),
        "{err}"
    );
}

#[tokio::test]
async fn verify_full_refuses_a_certificate_for_another_host() {
    let ca = TestCa::new().unwrap();
    let (redis, old) = tls_server(&ca, &["cache.other.test"], false);
    let url = format!(
        "rediss://127.0.0.1:{}?sslmode=verify-full&sslrootcert={}",
        redis.port(),
        ca.cert_path().display()
    );
    let err = set_through(&redis, &url, &old).await.unwrap_err();
    assert!(!err.transient, "{err}");
    assert!(
        err.message
            .contains("certificate is not valid for the host name 127.0.0.1"),
        "{err}"
    );
    assert_eq!(auth(&redis, "app", &old), "OK", "nothing changed");
    assert_eq!(password_hashes(&redis, "app").len(), 1);
    // verify-ca accepts the chain whatever the name.
    let new_pw = set_through(&redis, &url.replace("verify-full", "verify-ca"), &old)
        .await
        .unwrap();
    assert_eq!(auth(&redis, "app", &new_pw), "OK");
}

#[tokio::test]
async fn rediss_refuses_a_server_without_tls() {
    let redis = Redis::start().unwrap();
    let old = random_password().unwrap();
    create_user(&redis, "app", &old);
    let url = format!("rediss://127.0.0.1:{}?sslmode=require", redis.port());
    let err = set_through(&redis, &url, &old).await.unwrap_err();
    // A plaintext redis-server never answers a ClientHello; an overloaded TLS one may be
    // slow, so this stays transient, with the likely cause named.
    assert!(err.message.contains("answers TCP but not TLS"), "{err}");
    assert!(
        err.fix
            .as_deref()
            .unwrap_or_default()
            .contains("--tls-port"),
        "{err}"
    );
    assert_eq!(password_hashes(&redis, "app").len(), 1, "nothing changed");
}
