//! `probe` of the postgres rotator on a real PostgreSQL 15: one case per cause that would
//! block a rotation, and the all-clear for both strategies.

mod common;

use common::*;
use rotor_core::Rotator;
use rotor_core::config::PgStrategy;
use rotor_rotate_postgres::PostgresRotator;
use rotor_test_support::free_port;

#[tokio::test]
async fn each_cause_that_blocks_a_rotation_is_named() {
    let pg = server();
    let url = url(pg.port());
    let r = PostgresRotator::new();
    let admin = admin_value(&pg);
    let single = pg_spec("app", &url, "app_user", PgStrategy::Single, Some(ADMIN));

    // The role does not exist.
    let e = r
        .probe(&ctx(&single, None, Some(&admin)))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("role app_user does not exist"),
        "{e}"
    );
    assert!(
        e.fix.as_deref().unwrap_or("").contains("CREATE ROLE"),
        "{e}"
    );

    // All clear, as the superuser admin; the current value logs in.
    pg.psql("CREATE ROLE app_user LOGIN PASSWORD 'app-pw-1'")
        .unwrap();
    let current = versioned("app", "app_user", "app-pw-1");
    let checks = r
        .probe(&ctx(&single, Some(&current), Some(&admin)))
        .await
        .unwrap()
        .join("\n");
    assert!(
        checks.contains("reachable; logged in as postgres"),
        "{checks}"
    );
    assert!(
        checks.contains("admin role postgres has SUPERUSER"),
        "{checks}"
    );
    assert!(
        checks.contains("the current value of app_user logs in"),
        "{checks}"
    );

    // The current value was changed outside rotor.
    let stale = versioned("app", "app_user", "not-the-password");
    let e = r
        .probe(&ctx(&single, Some(&stale), Some(&admin)))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("current value of app is rejected"),
        "{e}"
    );
    assert!(!e.to_string().contains("not-the-password"), "{e}");

    // The admin's stored password is wrong.
    let wrong = versioned(ADMIN, pg.admin_user(), "wrong-admin-pw");
    let e = r
        .probe(&ctx(&single, None, Some(&wrong)))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("admin secret pg-admin's current value is rejected"),
        "{e}"
    );

    // An admin without CREATEROLE.
    pg.psql("CREATE ROLE weak LOGIN PASSWORD 'weak-pw'")
        .unwrap();
    let weak = versioned(ADMIN, "weak", "weak-pw");
    let e = r.probe(&ctx(&single, None, Some(&weak))).await.unwrap_err();
    assert!(
        e.to_string().contains("neither CREATEROLE nor SUPERUSER"),
        "{e}"
    );
    assert!(e.fix.as_deref().unwrap_or("").contains("CREATEROLE"), "{e}");

    // CREATEROLE, but the target role is a superuser.
    pg.psql("ALTER ROLE weak CREATEROLE").unwrap();
    pg.psql("ALTER ROLE app_user SUPERUSER").unwrap();
    let e = r.probe(&ctx(&single, None, Some(&weak))).await.unwrap_err();
    assert!(
        e.to_string().contains("role app_user is a superuser"),
        "{e}"
    );
    pg.psql("ALTER ROLE app_user NOSUPERUSER").unwrap();
    let ok = r
        .probe(&ctx(&single, None, Some(&weak)))
        .await
        .unwrap()
        .join("\n");
    assert!(ok.contains("admin role weak has CREATEROLE"), "{ok}");

    // Alternating: the login roles are missing until `rotor setup`, then all clear.
    let alt = pg_spec("alt", &url, "svc", PgStrategy::Alternating, Some(ADMIN));
    let e = r.probe(&ctx(&alt, None, Some(&admin))).await.unwrap_err();
    assert!(e.to_string().contains("role svc does not exist"), "{e}");
    assert!(
        e.fix.as_deref().unwrap_or("").contains("rotor setup alt"),
        "{e}"
    );
    r.setup(&ctx(&alt, None, Some(&admin))).await.unwrap();
    let ok = r
        .probe(&ctx(&alt, None, Some(&admin)))
        .await
        .unwrap()
        .join("\n");
    assert!(ok.contains("role(s) svc, svc_a, svc_b exist"), "{ok}");
    pg.psql("REVOKE svc FROM svc_b").unwrap();
    let e = r.probe(&ctx(&alt, None, Some(&admin))).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("svc_b is not a member of group role svc"),
        "{e}"
    );
}

#[tokio::test]
async fn an_unreachable_server_is_transient() {
    let spec = pg_spec(
        "app",
        &url(free_port().unwrap()),
        "app_user",
        PgStrategy::Single,
        Some(ADMIN),
    );
    let admin = versioned(ADMIN, "postgres", "x");
    let e = PostgresRotator::new()
        .probe(&ctx(&spec, None, Some(&admin)))
        .await
        .unwrap_err();
    assert!(e.transient, "{e}");
    assert!(e.to_string().contains("cannot reach the server"), "{e}");
}
