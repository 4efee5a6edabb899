//! Alternating pairs keep the app's objects usable: what one login role creates (a
//! migration) the other can use after a rotation, because setup makes both act as the group
//! role on login; a pair set up before that is repaired by running setup again. Real
//! PostgreSQL 15 and the real psql client.

mod common;

use common::*;
use rotor_core::Rotator;
use rotor_core::config::PgStrategy;
use rotor_rotate_postgres::PostgresRotator;

/// A migration as a tool runs it: a fresh connection, DDL for a table (with its own
/// sequence), a sequence and a view.
const MIGRATION: &str = "CREATE TABLE orders (id serial PRIMARY KEY, n int NOT NULL); \
     CREATE SEQUENCE invoice_no; \
     CREATE VIEW big_orders AS SELECT id, n FROM orders WHERE n > 10; \
     INSERT INTO orders (n) VALUES (42);";

/// What the app does with every object, and what the next migration does (ALTER needs the
/// owner's rights).
fn use_everything(pg: &rotor_test_support::Postgres, user: &str, password: &str, column: &str) {
    let out = pg
        .psql_as(
            user,
            password,
            "postgres",
            &format!(
                "INSERT INTO orders (n) VALUES (50); \
                 SELECT nextval('invoice_no') > 0; \
                 SELECT count(*) > 0 FROM big_orders; \
                 ALTER TABLE orders ADD COLUMN {column} text; \
                 SELECT current_user;"
            ),
        )
        .unwrap_or_else(|e| panic!("{user} cannot use the objects: {e:#}"));
    assert_eq!(out, "t\nt\napp_user", "as {user}");
}

fn owner(pg: &rotor_test_support::Postgres, relation: &str) -> String {
    pg.psql(&format!(
        "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = '{relation}'"
    ))
    .expect("psql: owner of a relation from pg_class")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_a_migration_creates_as_one_login_role_work_for_the_other_after_rotations() {
    let pg = server();
    let spec = pg_spec(
        "database",
        &url(pg.port()),
        "app_user",
        PgStrategy::Alternating,
        Some(ADMIN),
    );
    let admin = admin_value(&pg);
    let r = PostgresRotator::new();
    let lines = r.setup(&ctx(&spec, None, Some(&admin))).await.unwrap();
    for login in ["app_user_a", "app_user_b"] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("login role {login} acts as app_user on login"))),
            "setup says what it did: {lines:#?}"
        );
    }
    let dba = lines.last().unwrap();
    assert!(
        dba.contains("GRANT USAGE, CREATE ON SCHEMA public TO \"app_user\""),
        "setup says what the DBA still grants: {lines:#?}"
    );
    // The grant (to the group role, as setup says).
    pg.psql("GRANT CREATE ON SCHEMA public TO app_user")
        .unwrap();

    let v1 = rotate(&r, &spec, None, Some(&admin)).await;
    let (u1, p1) = parts(&v1);
    assert_eq!(u1, "app_user_a");
    pg.psql_as(&u1, &p1, "postgres", MIGRATION).unwrap();
    for rel in ["orders", "orders_id_seq", "invoice_no", "big_orders"] {
        assert_eq!(owner(&pg, rel), "app_user", "{rel} is owned by the group");
    }

    // Rotation 1 of 2: the app moves to app_user_b; app_user_a is retired.
    let v2 = rotate(&r, &spec, Some(&v1), Some(&admin)).await;
    let (u2, p2) = parts(&v2);
    assert_eq!(u2, "app_user_b");
    r.retire(&ctx(&spec, Some(&v2), Some(&admin)), &v1)
        .await
        .unwrap();
    use_everything(&pg, &u2, &p2, "note_b");

    // Rotation 2 of 2: back to app_user_a (new password); it uses what app_user_b changed.
    let v3 = rotate(&r, &spec, Some(&v2), Some(&admin)).await;
    let (u3, p3) = parts(&v3);
    assert_eq!(u3, "app_user_a");
    r.retire(&ctx(&spec, Some(&v3), Some(&admin)), &v2)
        .await
        .unwrap();
    use_everything(&pg, &u3, &p3, "note_a");
    assert_eq!(
        pg.psql("SELECT count(*) FROM orders").unwrap(),
        "3",
        "every insert landed in the one table"
    );

    // Setup again changes nothing and says so.
    let again = r.setup(&ctx(&spec, Some(&v3), Some(&admin))).await.unwrap();
    assert!(!again.iter().any(|l| l.contains(" acts as ")), "{again:#?}");
    assert!(
        again[..3].iter().all(|l| l.contains("adopted")),
        "{again:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_again_repairs_a_pair_whose_login_role_owns_objects() {
    let pg = server();
    // A pair as an older setup left it: no login defaults, and a migration already ran as
    // shop_a, so its table and view belong to shop_a.
    pg.psql(
        "CREATE ROLE shop NOLOGIN; \
         CREATE ROLE shop_a LOGIN PASSWORD 'shop-a-pw-0' IN ROLE shop; \
         CREATE ROLE shop_b NOLOGIN IN ROLE shop; \
         GRANT CREATE ON SCHEMA public TO shop;",
    )
    .unwrap();
    pg.psql_as(
        "shop_a",
        "shop-a-pw-0",
        "postgres",
        "CREATE TABLE carts (id int); CREATE VIEW carts_v AS SELECT id FROM carts;",
    )
    .unwrap();
    assert_eq!(owner(&pg, "carts"), "shop_a");

    let spec = pg_spec(
        "shop-db",
        &url(pg.port()),
        "shop",
        PgStrategy::Alternating,
        Some(ADMIN),
    );
    let admin = admin_value(&pg);
    let current = versioned("shop-db", "shop_a", "shop-a-pw-0");
    let r = PostgresRotator::new();
    let lines = r
        .setup(&ctx(&spec, Some(&current), Some(&admin)))
        .await
        .unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("handed 2 object(s) owned by shop_a") && l.contains("to shop")),
        "{lines:#?}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains(" acts as shop "))
            .count(),
        2,
        "{lines:#?}"
    );
    assert_eq!(owner(&pg, "carts"), "shop");
    assert_eq!(owner(&pg, "carts_v"), "shop");

    let v = rotate(&r, &spec, Some(&current), Some(&admin)).await;
    let (u, p) = parts(&v);
    assert_eq!(u, "shop_b");
    r.retire(&ctx(&spec, Some(&v), Some(&admin)), &current)
        .await
        .unwrap();
    assert_eq!(
        pg.psql_as(
            &u,
            &p,
            "postgres",
            "INSERT INTO carts VALUES (1); ALTER TABLE carts ADD COLUMN n int; \
             CREATE TABLE lines (id int); SELECT count(*) FROM carts_v; \
             SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'lines';"
        )
        .unwrap(),
        "1\nshop"
    );
}
