//! PostgresRotator against real PostgreSQL 15 servers (one per test; never mocks).
//! Over 600 lines on purpose: every strategy's rotation steps against one server fixture.

mod common;

use std::time::Instant;

use common::*;
use rotor_core::Rotator;
use rotor_core::config::PgStrategy;
use rotor_rotate_postgres::PostgresRotator;
use rotor_test_support::{TcpProxy, free_port};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_full_rotation_with_admin() {
    let pg = server();
    pg.psql("CREATE ROLE app LOGIN PASSWORD 'initial-pw-1'")
        .unwrap();
    let spec = pg_spec(
        "app-db",
        &url(pg.port()),
        "app",
        PgStrategy::Single,
        Some(ADMIN),
    );
    let admin = admin_value(&pg);
    let current = versioned("app-db", "app", "initial-pw-1");
    let r = PostgresRotator::new();

    assert!(logs_in(&pg, "app", "initial-pw-1"), "old works before set");
    let pending = rotate(&r, &spec, Some(&current), Some(&admin)).await;
    let (user, new_pw) = parts(&pending);
    assert_eq!(user, "app");
    assert!(new_pw.len() >= 32 && new_pw.chars().all(|c| c.is_ascii_alphanumeric()));
    assert!(logs_in(&pg, "app", &new_pw), "new works after set");
    assert!(
        !logs_in(&pg, "app", "initial-pw-1"),
        "old rejected after set"
    );

    // Idempotent: set and test again, retire twice.
    let c = ctx(&spec, Some(&pending), Some(&admin));
    r.set(&ctx(&spec, Some(&current), Some(&admin)), &pending)
        .await
        .unwrap();
    r.test(&c, &pending).await.unwrap();
    r.retire(&c, &current).await.unwrap();
    r.retire(&c, &current).await.unwrap();
    assert!(logs_in(&pg, "app", &new_pw));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_self_managed_set_retry_and_rollback() {
    let pg = server();
    pg.psql("CREATE ROLE selfie LOGIN PASSWORD 'selfie-pw-0'")
        .unwrap();
    let spec = pg_spec(
        "selfie-db",
        &url(pg.port()),
        "selfie",
        PgStrategy::Single,
        None,
    );
    let current = versioned("selfie-db", "selfie", "selfie-pw-0");
    let c = ctx(&spec, Some(&current), None);

    let pending = rotate(&PostgresRotator::new(), &spec, Some(&current), None).await;
    let (_, new_pw) = parts(&pending);
    assert!(logs_in(&pg, "selfie", &new_pw));
    assert!(!logs_in(&pg, "selfie", "selfie-pw-0"));

    // A crash after set: a new process (no cached connection) runs set again with the same
    // arguments; the current value is already rejected, the pending one is used.
    let fresh = PostgresRotator::new();
    fresh.set(&c, &pending).await.unwrap();
    assert!(logs_in(&pg, "selfie", &new_pw));

    // Rollback puts the current password back (again from a fresh process), twice.
    PostgresRotator::new().rollback(&c, &pending).await.unwrap();
    PostgresRotator::new().rollback(&c, &pending).await.unwrap();
    assert!(logs_in(&pg, "selfie", "selfie-pw-0"));
    assert!(!logs_in(&pg, "selfie", &new_pw));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alternating_three_rotations_zero_downtime() {
    let pg = server();
    let spec = pg_spec(
        "orders-db",
        &url(pg.port()),
        "orders",
        PgStrategy::Alternating,
        Some(ADMIN),
    );
    let admin = admin_value(&pg);
    let r = PostgresRotator::new();
    let lines = r.setup(&ctx(&spec, None, Some(&admin))).await.unwrap();
    // Group, two login roles, their login defaults, what the DBA grants.
    assert_eq!(lines.len(), 6, "{lines:?}");
    // The group role holds the privileges.
    pg.psql("CREATE TABLE items (id int); INSERT INTO items VALUES (7); GRANT SELECT ON items TO orders")
        .unwrap();

    // Rotation 1: no current value yet → _a.
    let v1 = rotate(&r, &spec, None, Some(&admin)).await;
    let (u1, p1) = parts(&v1);
    assert_eq!(u1, "orders_a");
    assert_eq!(
        pg.psql_as(&u1, &p1, "postgres", "SELECT id FROM items")
            .unwrap(),
        "7"
    );

    // An application session opened with v1 before the next rotation.
    let app = app_session(pg.port(), &u1, &p1).await;

    // Rotation 2: → _b; v1 keeps working until retire.
    let v2 = rotate(&r, &spec, Some(&v1), Some(&admin)).await;
    let (u2, p2) = parts(&v2);
    assert_eq!(u2, "orders_b");
    assert_eq!(
        pg.psql_as(&u2, &p2, "postgres", "SELECT id FROM items")
            .unwrap(),
        "7"
    );
    assert!(logs_in(&pg, &u1, &p1), "previous still works during grace");
    app.simple_query("SELECT 1").await.unwrap();

    let c2 = ctx(&spec, Some(&v2), Some(&admin));
    r.retire(&c2, &v1).await.unwrap();
    r.retire(&c2, &v1).await.unwrap(); // idempotent
    assert!(
        !logs_in(&pg, &u1, &p1),
        "a new connection with the retired value fails"
    );
    // The session opened before retire stays alive (it is not evicted).
    let rows = app.simple_query("SELECT id FROM items").await.unwrap();
    assert!(!rows.is_empty());

    // Rotation 3: → _a again, with a new password.
    let v3 = rotate(&r, &spec, Some(&v2), Some(&admin)).await;
    let (u3, p3) = parts(&v3);
    assert_eq!(u3, "orders_a");
    assert_ne!(p3, p1);
    assert!(logs_in(&pg, &u3, &p3));
    assert!(!logs_in(&pg, &u1, &p1), "the old _a password stays dead");
    assert!(logs_in(&pg, &u2, &p2));
    r.retire(&ctx(&spec, Some(&v3), Some(&admin)), &v2)
        .await
        .unwrap();
    assert!(!logs_in(&pg, &u2, &p2));
    assert!(logs_in(&pg, &u3, &p3));

    // Retiring the login role the current value uses is refused.
    let err = r
        .retire(&ctx(&spec, Some(&v3), Some(&admin)), &v3)
        .await
        .unwrap_err();
    assert!(!err.transient && err.message.contains("lock out"), "{err}");
    assert!(logs_in(&pg, &u3, &p3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifier_is_scram_and_plaintext_never_reaches_the_server_log() {
    let pg = server();
    pg.psql("ALTER SYSTEM SET log_statement = 'all'").unwrap();
    pg.psql("SELECT pg_reload_conf()").unwrap();
    pg.psql("CREATE ROLE logged LOGIN PASSWORD 'logged-pw-0'")
        .unwrap();
    let admin = admin_value(&pg);
    let r = PostgresRotator::new();

    let single = pg_spec(
        "logged-db",
        &url(pg.port()),
        "logged",
        PgStrategy::Single,
        Some(ADMIN),
    );
    let cur = versioned("logged-db", "logged", "logged-pw-0");
    let v = rotate(&r, &single, Some(&cur), Some(&admin)).await;
    r.retire(&ctx(&single, Some(&v), Some(&admin)), &cur)
        .await
        .unwrap();
    r.rollback(&ctx(&single, Some(&v), Some(&admin)), &v)
        .await
        .unwrap();

    let alt = pg_spec(
        "alt-db",
        &url(pg.port()),
        "alt",
        PgStrategy::Alternating,
        Some(ADMIN),
    );
    r.setup(&ctx(&alt, None, Some(&admin))).await.unwrap();
    let a1 = rotate(&r, &alt, None, Some(&admin)).await;
    let a2 = rotate(&r, &alt, Some(&a1), Some(&admin)).await;
    r.retire(&ctx(&alt, Some(&a2), Some(&admin)), &a1)
        .await
        .unwrap();

    let stored = pg
        .psql("SELECT rolname || ' ' || rolpassword FROM pg_authid WHERE rolname IN ('logged', 'alt_a', 'alt_b') ORDER BY 1")
        .unwrap();
    let lines: Vec<&str> = stored.lines().collect();
    assert_eq!(lines.len(), 3, "{stored}");
    for l in lines {
        let (role, verifier) = l.split_once(' ').unwrap();
        // alt_a was retired: a random-key verifier (iteration count 1, no password behind it).
        let expected = if role == "alt_a" {
            "SCRAM-SHA-256$1:"
        } else {
            "SCRAM-SHA-256$4096:"
        };
        assert!(verifier.starts_with(expected), "{l}");
    }

    // Both kinds of verifier are stored as sent (not mistaken for a plaintext and hashed).
    use rotor_rotate_postgres::sql::{quote_literal, scram_verifier, unknown_verifier};
    for v in [
        scram_verifier(b"some password"),
        unknown_verifier().unwrap(),
    ] {
        pg.psql(&format!(
            "ALTER ROLE logged PASSWORD {}",
            quote_literal(&v).unwrap()
        ))
        .unwrap();
        let stored = pg
            .psql("SELECT rolpassword FROM pg_authid WHERE rolname = 'logged'")
            .unwrap();
        assert_eq!(stored, v);
    }

    let log = std::fs::read_to_string(pg.log_path()).unwrap();
    assert!(
        log.contains("ALTER ROLE \"alt_b\" WITH LOGIN PASSWORD"),
        "log_statement=all took effect"
    );
    for value in [&v, &a1, &a2] {
        let (_, pw) = parts(value);
        assert!(
            !log.contains(&pw),
            "a plaintext password reached the server log"
        );
    }
    // Nor the statistics view (pg_stat_statements is not installed; pg_stat_activity holds
    // the last statement of every session).
    let activity = pg
        .psql("SELECT string_agg(coalesce(query, ''), ' ') FROM pg_stat_activity")
        .unwrap();
    for value in [&v, &a1, &a2] {
        assert!(!activity.contains(&parts(value).1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_is_idempotent_and_adopts_existing_roles() {
    let pg = server();
    // A pre-existing login role that is not yet in the group.
    pg.psql("CREATE ROLE billing_b LOGIN").unwrap();
    let spec = pg_spec(
        "billing-db",
        &url(pg.port()),
        "billing",
        PgStrategy::Alternating,
        Some(ADMIN),
    );
    let admin = admin_value(&pg);
    let r = PostgresRotator::new();
    let c = ctx(&spec, None, Some(&admin));

    let first = r.setup(&c).await.unwrap();
    assert!(
        first[0].starts_with("created group role billing"),
        "{first:?}"
    );
    assert!(
        first[1].starts_with("created login role billing_a"),
        "{first:?}"
    );
    assert!(first[3].contains("granted billing"), "{first:?}");
    let second = PostgresRotator::new().setup(&c).await.unwrap();
    assert_eq!(second.len(), 4, "{second:?}");
    assert!(
        second[..3].iter().all(|l| l.contains("adopted")),
        "{second:?}"
    );
    assert!(second[3].starts_with("the DBA grants"), "{second:?}");
    let members = pg
        .psql("SELECT string_agg(r.rolname, ',' ORDER BY r.rolname) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member JOIN pg_roles g ON g.oid = m.roleid WHERE g.rolname = 'billing'")
        .unwrap();
    assert_eq!(members, "billing_a,billing_b");
    assert_eq!(
        pg.psql("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'billing'")
            .unwrap(),
        "f"
    );

    // Single strategy: setup checks the role exists.
    let single = pg_spec(
        "s-db",
        &url(pg.port()),
        "nobody_here",
        PgStrategy::Single,
        Some(ADMIN),
    );
    let err = r
        .setup(&ctx(&single, None, Some(&admin)))
        .await
        .unwrap_err();
    assert!(
        !err.transient && err.message.contains("does not exist"),
        "{err}"
    );
    pg.psql("CREATE ROLE nobody_here LOGIN").unwrap();
    let ok = r.setup(&ctx(&single, None, Some(&admin))).await.unwrap();
    assert!(ok[0].contains("exists"), "{ok:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evict_terminates_sessions_of_both_login_roles() {
    let pg = server();
    let spec = pg_spec(
        "ev-db",
        &url(pg.port()),
        "ev",
        PgStrategy::Alternating,
        Some(ADMIN),
    );
    let admin = admin_value(&pg);
    let r = PostgresRotator::new();
    r.setup(&ctx(&spec, None, Some(&admin))).await.unwrap();
    let v1 = rotate(&r, &spec, None, Some(&admin)).await;
    let (u1, p1) = parts(&v1);
    let leaked = app_session(pg.port(), &u1, &p1).await;
    leaked.simple_query("SELECT 1").await.unwrap();

    let v2 = rotate(&r, &spec, Some(&v1), Some(&admin)).await;
    let (u2, p2) = parts(&v2);
    let newer = app_session(pg.port(), &u2, &p2).await;
    let c = ctx(&spec, Some(&v2), Some(&admin));
    let ev = r.evict(&c, &v1).await.unwrap();
    // Both roles of the pair: the current role held an older password until `set`, and a
    // session cannot be told apart by the password it used (issue 9.7).
    assert_eq!((ev.ended, ev.surviving), (2, 0), "{ev:?}");
    assert!(
        leaked.simple_query("SELECT 1").await.is_err(),
        "the leaked session is gone"
    );
    assert!(
        newer.simple_query("SELECT 1").await.is_err(),
        "the current role's session is gone too"
    );
    // Applications reconnect with the current value.
    app_session(pg.port(), &u2, &p2)
        .await
        .simple_query("SELECT 1")
        .await
        .unwrap();
    r.retire(&c, &v1).await.unwrap();

    // Single strategy: every other session of the role ends.
    pg.psql("CREATE ROLE solo LOGIN PASSWORD 'solo-pw-0'")
        .unwrap();
    let single = pg_spec("solo-db", &url(pg.port()), "solo", PgStrategy::Single, None);
    let cur = versioned("solo-db", "solo", "solo-pw-0");
    let s1 = app_session(pg.port(), "solo", "solo-pw-0").await;
    let s2 = app_session(pg.port(), "solo", "solo-pw-0").await;
    let next = rotate(&r, &single, Some(&cur), None).await;
    let ev = r
        .evict(&ctx(&single, Some(&next), None), &cur)
        .await
        .unwrap();
    // Both app sessions, plus the rotator's own cached connection as `solo` (old value).
    assert!(ev.ended >= 2 && ev.surviving == 0, "{ev:?}");
    assert!(s1.simple_query("SELECT 1").await.is_err());
    assert!(s2.simple_query("SELECT 1").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_down_is_transient_and_fast() {
    let port = free_port().unwrap();
    let spec = pg_spec(
        "down-db",
        &url(port),
        "app",
        PgStrategy::Single,
        Some(ADMIN),
    );
    let admin = versioned(ADMIN, "postgres", "whatever");
    let current = versioned("down-db", "app", "pw");
    let pending = versioned("down-db", "app", "pw2");
    let r = PostgresRotator::new();
    let started = Instant::now();
    let err = r
        .set(&ctx(&spec, Some(&current), Some(&admin)), &pending)
        .await
        .unwrap_err();
    assert!(started.elapsed().as_secs() < 6);
    assert!(err.transient, "{err}");
    let text = err.to_string();
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(text.contains("down-db") && text.contains("set"), "{text}");
    assert!(text.contains("connection refused"), "{text}");
    assert!(
        !text.contains("whatever") && !text.contains("pw2"),
        "{text}"
    );
    let err = r
        .test(&ctx(&spec, Some(&current), Some(&admin)), &pending)
        .await
        .unwrap_err();
    assert!(err.transient, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_admin_password_is_permanent_with_fix() {
    let pg = server();
    pg.psql("CREATE ROLE app LOGIN PASSWORD 'app-pw-0'")
        .unwrap();
    let spec = pg_spec(
        "app-db",
        &url(pg.port()),
        "app",
        PgStrategy::Single,
        Some(ADMIN),
    );
    let admin = versioned(ADMIN, "postgres", "not-the-admin-password");
    let current = versioned("app-db", "app", "app-pw-0");
    let r = PostgresRotator::new();
    let c = ctx(&spec, Some(&current), Some(&admin));
    let pending = r.create(&c).await.unwrap();
    let pending = rotor_core::store::Versioned {
        meta: current.meta.clone(),
        value: pending.value,
    };
    let err = r.set(&c, &pending).await.unwrap_err();
    assert!(!err.transient, "{err}");
    assert!(
        err.message
            .contains(&format!("admin secret {ADMIN}'s current value is rejected")),
        "{err}"
    );
    assert_eq!(
        err.fix.as_deref(),
        Some(format!("`rotor put {ADMIN}` with the admin role's real password").as_str())
    );
    assert!(!err.to_string().contains("not-the-admin-password"));
    assert!(logs_in(&pg, "app", "app-pw-0"), "nothing changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_without_createrole_is_permanent_with_fix() {
    let pg = server();
    pg.psql(
        "CREATE ROLE app LOGIN PASSWORD 'app-pw-0'; CREATE ROLE weak LOGIN PASSWORD 'weak-pw-0'",
    )
    .unwrap();
    let spec = pg_spec(
        "app-db",
        &url(pg.port()),
        "app",
        PgStrategy::Single,
        Some("weak-admin"),
    );
    let admin = versioned("weak-admin", "weak", "weak-pw-0");
    let current = versioned("app-db", "app", "app-pw-0");
    let pending = versioned("app-db", "app", "app-pw-1");
    let r = PostgresRotator::new();
    let err = r
        .set(&ctx(&spec, Some(&current), Some(&admin)), &pending)
        .await
        .unwrap_err();
    assert!(!err.transient, "{err}");
    assert!(err.message.contains("42501"), "{err}");
    assert!(err.message.contains("weak-admin"), "{err}");
    assert!(
        err.fix
            .as_deref()
            .unwrap_or_default()
            .contains("CREATEROLE"),
        "{err}"
    );
    assert!(logs_in(&pg, "app", "app-pw-0"));

    // Alternating setup needs CREATEROLE too.
    let alt = pg_spec(
        "alt-db",
        &url(pg.port()),
        "grp",
        PgStrategy::Alternating,
        Some("weak-admin"),
    );
    let err = r.setup(&ctx(&alt, None, Some(&admin))).await.unwrap_err();
    assert!(
        !err.transient
            && err
                .fix
                .as_deref()
                .unwrap_or_default()
                .contains("CREATEROLE"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_role_says_run_setup() {
    let pg = server();
    let admin = admin_value(&pg);
    let r = PostgresRotator::new();
    // Alternating without setup.
    let alt = pg_spec(
        "ghost-db",
        &url(pg.port()),
        "ghost",
        PgStrategy::Alternating,
        Some(ADMIN),
    );
    let c = ctx(&alt, None, Some(&admin));
    let generated = r.create(&c).await.unwrap();
    let pending = rotor_core::store::Versioned {
        meta: admin.meta.clone(),
        value: generated.value,
    };
    let err = r.set(&c, &pending).await.unwrap_err();
    assert!(!err.transient, "{err}");
    assert!(
        err.message.contains("42704") && err.message.contains("ghost_a"),
        "{err}"
    );
    assert_eq!(err.fix.as_deref(), Some("run `rotor setup ghost-db`"));

    // Single with a role that does not exist.
    let single = pg_spec(
        "nobody-db",
        &url(pg.port()),
        "nobody",
        PgStrategy::Single,
        Some(ADMIN),
    );
    let pending = versioned("nobody-db", "nobody", "x-pw");
    let err = r
        .set(&ctx(&single, None, Some(&admin)), &pending)
        .await
        .unwrap_err();
    assert!(
        !err.transient && err.fix.as_deref() == Some("run `rotor setup nobody-db`"),
        "{err}"
    );

    // A value naming a role the secret does not manage is refused before any SQL.
    let other = versioned("ghost-db", "postgres", "x-pw");
    let err = r.set(&c, &other).await.unwrap_err();
    assert!(err.message.contains("only alters the roles"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_cut_before_set_is_transient_and_current_still_works() {
    let pg = server();
    pg.psql("CREATE ROLE app LOGIN PASSWORD 'app-pw-0'")
        .unwrap();
    let proxy = TcpProxy::start(pg.addr()).unwrap();
    let spec = pg_spec(
        "cut-db",
        &url(proxy.port()),
        "app",
        PgStrategy::Single,
        Some(ADMIN),
    );
    let admin = admin_value(&pg);
    let current = versioned("cut-db", "app", "app-pw-0");
    let r = PostgresRotator::new();
    let c = ctx(&spec, Some(&current), Some(&admin));
    // The admin connection is opened and cached through the proxy.
    r.setup(&c).await.unwrap();
    assert!(proxy.connections() >= 1);

    let generated = r.create(&c).await.unwrap();
    let pending = rotor_core::store::Versioned {
        meta: current.meta.clone(),
        value: generated.value,
    };
    let (_, new_pw) = parts(&pending);
    proxy.set_refusing(true);
    proxy.cut_all();
    let err = r.set(&c, &pending).await.unwrap_err();
    assert!(err.transient, "{err}");
    assert!(
        err.message.contains(&format!("127.0.0.1:{}", proxy.port())),
        "{err}"
    );
    assert!(
        logs_in(&pg, "app", "app-pw-0"),
        "the current credential still works"
    );
    assert!(!logs_in(&pg, "app", &new_pw));

    // The network is back: the retried step reconnects and succeeds.
    proxy.set_refusing(false);
    r.set(&c, &pending).await.unwrap();
    r.test(&c, &pending).await.unwrap();
    assert!(logs_in(&pg, "app", &new_pw));

    // A cached admin connection cut without refusing is replaced transparently.
    proxy.cut_all();
    r.rollback(&c, &pending).await.unwrap();
    assert!(logs_in(&pg, "app", "app-pw-0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retire_fails_when_previous_still_logs_in_and_rollback_disables_pending() {
    let pg = server();
    let spec = pg_spec(
        "rb-db",
        &url(pg.port()),
        "rb",
        PgStrategy::Alternating,
        Some(ADMIN),
    );
    let admin = admin_value(&pg);
    let r = PostgresRotator::new();
    r.setup(&ctx(&spec, None, Some(&admin))).await.unwrap();
    let v1 = rotate(&r, &spec, None, Some(&admin)).await;
    let v2 = rotate(&r, &spec, Some(&v1), Some(&admin)).await;
    let (u2, p2) = parts(&v2);
    // Abort: roll back v2; v1 stays current and working.
    let c = ctx(&spec, Some(&v1), Some(&admin));
    r.rollback(&c, &v2).await.unwrap();
    r.rollback(&c, &v2).await.unwrap();
    assert!(!logs_in(&pg, &u2, &p2));
    let (u1, p1) = parts(&v1);
    assert!(logs_in(&pg, &u1, &p1));
    assert_eq!(
        pg.psql(&format!(
            "SELECT rolcanlogin FROM pg_roles WHERE rolname = '{u2}'"
        ))
        .unwrap(),
        "f"
    );

    // Single: retire with a previous value that still works is an error.
    pg.psql("CREATE ROLE still LOGIN PASSWORD 'still-pw-0'")
        .unwrap();
    let single = pg_spec(
        "still-db",
        &url(pg.port()),
        "still",
        PgStrategy::Single,
        Some(ADMIN),
    );
    let cur = versioned("still-db", "still", "other-pw");
    let prev = versioned("still-db", "still", "still-pw-0");
    let err = r
        .retire(&ctx(&single, Some(&cur), Some(&admin)), &prev)
        .await
        .unwrap_err();
    assert!(
        !err.transient && err.message.contains("still logs in"),
        "{err}"
    );
}

#[test]
fn plan_names_roles_target_and_admin() {
    let s = pg_spec(
        "p-db",
        "postgres://127.0.0.1:5432/app",
        "app_user",
        PgStrategy::Alternating,
        Some("postgres-admin"),
    );
    let plan = PostgresRotator::new().plan(&s);
    let set = plan
        .iter()
        .find(|p| p.step == rotor_core::Step::Set)
        .unwrap();
    assert_eq!(
        set.touches,
        "ALTER ROLE app_user_a|app_user_b (the one not in use) LOGIN PASSWORD <scram> on 127.0.0.1:5432 (as admin secret postgres-admin)"
    );
    let s = pg_spec(
        "p-db",
        "postgres://db.internal:6543/app",
        "app_user",
        PgStrategy::Single,
        None,
    );
    let plan = PostgresRotator::new().plan(&s);
    assert!(
        plan.iter().any(|p| p.touches
            == "ALTER ROLE app_user PASSWORD <scram> on db.internal:6543 (as app_user itself)"),
        "{plan:?}"
    );
}
