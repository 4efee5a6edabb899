//! Unit tests of the pure parts: urls, generated passwords, redaction, versions, and that
//! credential errors never quote a value.

use rotor_core::{Credential, SecretValue};

use crate::credential::{PASSWORD_LEN, random_password};
use crate::redact::redact;
use crate::url::parse_url;
use crate::version::{major_version, parse_redis_version};

#[test]
fn urls() {
    let t = |u: &str| parse_url(u).map(|t| t.to_string());
    assert_eq!(t("redis://127.0.0.1:6380").unwrap(), "127.0.0.1:6380");
    assert_eq!(t("redis://cache").unwrap(), "cache:6379");
    assert_eq!(t("redis://cache:7000/0").unwrap(), "cache:7000");
    assert_eq!(t("redis://[::1]:7000").unwrap(), "[::1]:7000");
    assert!(
        t("redis://u:pw@cache:6379")
            .unwrap_err()
            .contains("credentials")
    );
    assert_eq!(
        t("rediss://127.0.0.1:6380?sslmode=require").unwrap(),
        "127.0.0.1:6380 (TLS)"
    );
    assert!(
        t("rediss://cache:6379?sslmode=disable")
            .unwrap_err()
            .contains("always uses TLS")
    );
    assert!(
        t("rediss://cache?sslcert=/c.pem")
            .unwrap_err()
            .contains("sslkey")
    );
    assert!(
        t("rediss://cache?db=1")
            .unwrap_err()
            .contains("unknown url parameter")
    );
    assert!(
        t("redis://cache?sslmode=require")
            .unwrap_err()
            .contains("rediss://")
    );
    let remote = parse_url("rediss://cache.example.com").unwrap();
    let opts = &remote.tls.unwrap().opts;
    assert_eq!(opts.mode, rotor_tls::SslMode::VerifyFull);
    let local = parse_url("rediss://127.0.0.1:6380").unwrap();
    assert_eq!(local.tls.unwrap().opts.mode, rotor_tls::SslMode::Require);
    assert!(t("http://cache").is_err());
    assert!(t("redis://cache:0").is_err());
    assert!(t("redis://:6379").is_err());
}

#[test]
fn passwords_are_long_alnum_and_differ() {
    let a = random_password().unwrap();
    let b = random_password().unwrap();
    assert_eq!(a.len(), PASSWORD_LEN);
    assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
    assert_ne!(*a, *b);
}

#[test]
fn redacts_echoed_secrets() {
    let e = "ERR Error in ACL SETUSER modifier '<Zk3lq9XbYc81mPq0aaaaaaaa2': The password you are trying to remove from the user does not exist";
    let r = redact(e);
    assert!(!r.contains("Zk3lq9"), "{r}");
    assert!(r.contains("'<<redacted>'"), "{r}");
    assert!(r.contains("The password you are trying"), "{r}");
}

#[test]
fn versions() {
    let info = "# Server\r\nredis_version:5.0.14\r\nredis_git_sha1:0\r\n";
    let v = parse_redis_version(info).unwrap();
    assert_eq!(v, "5.0.14");
    assert_eq!(major_version(&v), Some(5));
    assert_eq!(major_version("7.0.15"), Some(7));
}

#[test]
fn cred_errors_never_quote_the_value() {
    let v = SecretValue::from_slice(br#"{"username": "app", "pasword": "s3cr3t-value"}"#);
    let e = Credential::parse(&v).err().unwrap().to_string();
    assert!(!e.contains("s3cr3t"), "{e}");
    let v = SecretValue::from_slice(b"s3cr3t-value");
    let e = Credential::parse(&v).err().unwrap().to_string();
    assert!(!e.contains("s3cr3t"), "{e}");
}
