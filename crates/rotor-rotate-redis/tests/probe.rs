//! `probe` of the redis rotator against a real redis-server: one test per cause that would
//! block a rotation, and the all-clear. Nothing on the server changes.

mod support;

use rotor_core::{Rotator, Stage};
use rotor_rotate_redis::RedisRotator;
use rotor_test_support::{Redis, free_port};
use support::*;

fn app_user(redis: &Redis, password: &str) {
    redis
        .cli(&[
            "ACL",
            "SETUSER",
            "app",
            "on",
            &format!(">{password}"),
            "~*",
            "+@all",
        ])
        .expect("redis-cli ACL SETUSER app");
}

#[tokio::test]
async fn probe_passes_and_changes_nothing() {
    let redis = Redis::start().unwrap();
    app_user(&redis, "app-pw-1");
    let before = redis.cli(&["ACL", "LIST"]).unwrap();
    let spec = spec(&url(redis.port()), "app", Some(ADMIN_SECRET));
    let admin = admin_of(&redis);
    let current = cred("app", "app-pw-1", Stage::Current);
    let checks = RedisRotator::new()
        .probe(&ctx(&spec, Some(&current), Some(&admin)))
        .await
        .unwrap();
    let all = checks.join("\n");
    assert!(
        all.contains("reachable; admin `default` authenticated"),
        "{all}"
    );
    assert!(all.contains("ACL user `app` exists and is on"), "{all}");
    assert!(all.contains("admin `default` may run ACL SETUSER"), "{all}");
    assert!(all.contains("the current value of `app` logs in"), "{all}");
    assert_eq!(
        redis.cli(&["ACL", "LIST"]).unwrap(),
        before,
        "probe changed ACLs"
    );
}

#[tokio::test]
async fn unreachable_server_is_reported() {
    let spec = spec(&url(free_port().unwrap()), "app", Some(ADMIN_SECRET));
    let admin = versioned(ADMIN_SECRET, value("default", "x"), Stage::Current);
    let e = RedisRotator::new()
        .probe(&ctx(&spec, None, Some(&admin)))
        .await
        .unwrap_err();
    assert!(e.transient, "{e}");
    assert!(e.to_string().contains("connecting"), "{e}");
}

#[tokio::test]
async fn refused_admin_missing_user_off_user_and_missing_acl_permission() {
    let redis = Redis::start().unwrap();
    let spec_app = spec(&url(redis.port()), "app", Some(ADMIN_SECRET));
    let rot = RedisRotator::new();

    // The admin's stored password is wrong.
    let wrong = versioned(ADMIN_SECRET, value("default", "not-it"), Stage::Current);
    let e = rot
        .probe(&ctx(&spec_app, None, Some(&wrong)))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("admin credential for `default` was refused"),
        "{e}"
    );
    assert!(!e.to_string().contains("not-it"), "{e}");

    // The user does not exist.
    let admin = admin_of(&redis);
    let e = rot
        .probe(&ctx(&spec_app, None, Some(&admin)))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("ACL user `app` does not exist"),
        "{e}"
    );

    // The user exists but is off.
    redis
        .cli(&["ACL", "SETUSER", "app", "off", ">app-pw", "~*", "+@all"])
        .unwrap();
    let e = rot
        .probe(&ctx(&spec_app, None, Some(&admin)))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("ACL user `app` is off"), "{e}");
    redis.cli(&["ACL", "SETUSER", "app", "on"]).unwrap();

    // An admin user without +acl.
    redis
        .cli(&[
            "ACL", "SETUSER", "weak", "on", ">weak-pw", "~*", "+@all", "-acl",
        ])
        .unwrap();
    let weak = versioned(ADMIN_SECRET, value("weak", "weak-pw"), Stage::Current);
    let e = rot
        .probe(&ctx(&spec_app, None, Some(&weak)))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("user `weak` may not run ACL GETUSER"),
        "{e}"
    );
    assert!(e.fix.as_deref().unwrap_or("").contains("+acl"), "{e}");

    // An admin that may read ACLs but not change them (ACL DRYRUN says so).
    redis
        .cli(&[
            "ACL",
            "SETUSER",
            "reader",
            "on",
            ">reader-pw",
            "~*",
            "+@all",
            "-acl",
            "+acl|getuser",
            "+acl|dryrun",
        ])
        .unwrap();
    let reader = versioned(ADMIN_SECRET, value("reader", "reader-pw"), Stage::Current);
    let e = rot
        .probe(&ctx(&spec_app, None, Some(&reader)))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("admin `reader` may not run ACL SETUSER"),
        "{e}"
    );

    // The current value no longer logs in (changed outside rotor).
    let stale = cred("app", "old-pw", Stage::Current);
    let e = rot
        .probe(&ctx(&spec_app, Some(&stale), Some(&admin)))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("the current value of `app` is refused"),
        "{e}"
    );
    assert!(!e.to_string().contains("old-pw"), "{e}");
}
