//! The redis rotator against a real redis-server (rotor_test_support): happy paths.

mod support;

use rotor_core::{Rotator, Stage};
use rotor_rotate_redis::RedisRotator;
use rotor_test_support::{Redis, random_password};
use support::*;

#[tokio::test]
async fn full_rotation_with_an_admin() {
    let redis = Redis::start().unwrap();
    let old_pw = random_password().unwrap();
    create_user(&redis, "app", &old_pw);
    let spec = spec(&url(redis.port()), "app", Some(ADMIN_SECRET));
    let admin = admin_of(&redis);
    let current = cred("app", &old_pw, Stage::Current);
    let rot = RedisRotator::new();
    let c = ctx(&spec, Some(&current), Some(&admin));

    let generated = rot.create(&c).await.unwrap();
    assert_eq!(generated.metadata, serde_json::json!({"username": "app"}));
    let pending = pending_from(generated);
    let new_pw = password(&pending);
    assert!(new_pw.len() >= 32 && new_pw.chars().all(|c| c.is_ascii_alphanumeric()));

    rot.set(&c, &pending).await.unwrap();
    rot.set(&c, &pending).await.unwrap(); // idempotent
    assert_eq!(auth(&redis, "app", &old_pw), "OK", "old works after set");
    assert_eq!(auth(&redis, "app", &new_pw), "OK", "new works after set");
    let hashes = password_hashes(&redis, "app");
    assert_eq!(hashes.len(), 2, "{hashes:?}");
    assert!(hashes.contains(&sha256_hex(&new_pw)));

    rot.test(&c, &pending).await.unwrap();
    rot.test(&c, &pending).await.unwrap();

    // finish: pending becomes current, current becomes previous.
    let mut new = pending.clone();
    new.meta.stages = vec![Stage::Current];
    let mut previous = current.clone();
    previous.meta.stages = vec![Stage::Previous];
    let after = ctx(&spec, Some(&new), Some(&admin));
    rot.retire(&after, &previous).await.unwrap();
    rot.retire(&after, &previous).await.unwrap(); // idempotent: already gone is success

    assert!(
        auth(&redis, "app", &old_pw).starts_with("WRONGPASS"),
        "old is refused after retire"
    );
    assert_eq!(auth(&redis, "app", &new_pw), "OK", "new still works");
    assert_eq!(password_hashes(&redis, "app"), vec![sha256_hex(&new_pw)]);
    // The plaintext never reached the server's slowlog.
    let slowlog = redis.cli(&["SLOWLOG", "GET", "1000"]).unwrap();
    assert!(!slowlog.contains(&new_pw));
}

#[tokio::test]
async fn three_rotations_in_a_row() {
    let redis = Redis::start().unwrap();
    let first = random_password().unwrap();
    create_user(&redis, "app", &first);
    let spec = spec(&url(redis.port()), "app", Some(ADMIN_SECRET));
    let admin = admin_of(&redis);
    let rot = RedisRotator::new();

    let mut current = cred("app", &first, Stage::Current);
    let mut seen = vec![first];
    for _ in 0..3 {
        current = rotate(&rot, &spec, &current, Some(&admin)).await;
        seen.push(password(&current));
    }
    let (last, older) = seen.split_last().unwrap();
    assert_eq!(auth(&redis, "app", last), "OK");
    for old in older {
        assert!(auth(&redis, "app", old).starts_with("WRONGPASS"));
    }
    assert_eq!(password_hashes(&redis, "app"), vec![sha256_hex(last)]);
}

/// The `default` user, managing itself (no `admin`): the rotator authenticates with the
/// current value, and reconnects with the new one once it is current.
#[tokio::test]
async fn default_user_manages_itself() {
    let redis = Redis::start().unwrap();
    let original = redis.admin_password().to_owned();
    let spec = spec(&url(redis.port()), "default", None);
    let rot = RedisRotator::new();

    let mut current = cred("default", &original, Stage::Current);
    for _ in 0..2 {
        current = rotate(&rot, &spec, &current, None).await;
    }
    let new_pw = password(&current);
    assert!(auth(&redis, "default", &original).starts_with("WRONGPASS"));
    assert_eq!(auth(&redis, "default", &new_pw), "OK");

    // Give the server its original password back so its Drop can shut it down.
    let mut conn = RawConn::connect(redis.port()).await;
    assert_eq!(
        conn.cmd(&["AUTH", "default", &new_pw]).await.unwrap(),
        "+OK"
    );
    let rule = format!(">{original}");
    assert_eq!(
        conn.cmd(&["ACL", "SETUSER", "default", &rule])
            .await
            .unwrap(),
        "+OK"
    );
}

#[tokio::test]
async fn aclfile_is_saved_after_each_change() {
    let redis = Redis::start_with_aclfile().unwrap();
    let aclfile = redis.aclfile().unwrap().to_owned();
    let old_pw = random_password().unwrap();
    create_user(&redis, "app", &old_pw);
    let spec = spec(&url(redis.port()), "app", Some(ADMIN_SECRET));
    let admin = admin_of(&redis);
    let current = cred("app", &old_pw, Stage::Current);
    let rot = RedisRotator::new();
    let c = ctx(&spec, Some(&current), Some(&admin));

    let lines = rot.setup(&c).await.unwrap();
    let all = lines.join("\n");
    assert!(all.contains("ACL SAVE applies"), "{all}");
    assert!(!all.contains("WARNING"), "{all}");
    let plan = rot.plan(&spec);
    assert!(
        plan.iter()
            .any(|p| p.touches.contains("ACL SAVE") && p.touches.contains("has an aclfile")),
        "{plan:?}"
    );

    let pending = start_rotation(&rot, &spec, Some(&current), Some(&admin)).await;
    let new_hash = sha256_hex(&password(&pending));
    let old_hash = sha256_hex(&old_pw);
    let on_disk = std::fs::read_to_string(&aclfile).unwrap();
    assert!(on_disk.contains(&format!("#{new_hash}")), "{on_disk}");
    assert!(on_disk.contains(&format!("#{old_hash}")), "{on_disk}");
    assert!(!on_disk.contains(&password(&pending)), "plaintext on disk");

    let mut new = pending.clone();
    new.meta.stages = vec![Stage::Current];
    rot.retire(&ctx(&spec, Some(&new), Some(&admin)), &current)
        .await
        .unwrap();
    let on_disk = std::fs::read_to_string(&aclfile).unwrap();
    assert!(on_disk.contains(&format!("#{new_hash}")), "{on_disk}");
    assert!(!on_disk.contains(&old_hash), "{on_disk}");
}

#[tokio::test]
async fn without_aclfile_the_rotator_warns() {
    let captured = Captured::default();
    let _guard = captured.install();
    let redis = Redis::start().unwrap();
    let old_pw = random_password().unwrap();
    create_user(&redis, "app", &old_pw);
    let spec = spec(&url(redis.port()), "app", Some(ADMIN_SECRET));
    let admin = admin_of(&redis);
    let current = cred("app", &old_pw, Stage::Current);
    let rot = RedisRotator::new();

    // Before anything touched the server, the plan says it depends.
    let plan = rot.plan(&spec);
    assert!(
        plan.iter()
            .any(|p| p.touches.contains("a restart would lose the change")),
        "{plan:?}"
    );

    let lines = rot
        .setup(&ctx(&spec, Some(&current), Some(&admin)))
        .await
        .unwrap();
    let all = lines.join("\n");
    assert!(
        all.contains("ACL user `app` exists (on, 1 password)"),
        "{all}"
    );
    assert!(
        all.contains("the current value of `app-redis` is one of"),
        "{all}"
    );
    assert!(
        all.contains("WARNING") && all.contains("no aclfile"),
        "{all}"
    );
    assert!(
        all.contains("restart of redis-server would lose it"),
        "{all}"
    );
    assert!(all.contains("may end sessions (CLIENT KILL)"), "{all}");

    let plan = rot.plan(&spec);
    assert!(
        plan.iter()
            .any(|p| p.touches.starts_with("WARNING") && p.touches.contains("no aclfile")),
        "{plan:?}"
    );
    assert!(
        plan.iter().any(|p| p.touches
            == format!(
                "ACL SETUSER app #<sha256 of new> on 127.0.0.1:{} (as redis-admin)",
                redis.port()
            )),
        "{plan:?}"
    );

    let pending = start_rotation(&rot, &spec, Some(&current), Some(&admin)).await;
    let logged = captured.text();
    assert!(
        logged.contains("WARN") && logged.contains("no aclfile"),
        "{logged}"
    );
    assert!(!logged.contains(&password(&pending)), "{logged}");
    assert!(!logged.contains(&old_pw), "{logged}");
    assert!(
        !logged.contains(&sha256_hex(&password(&pending))),
        "{logged}"
    );
}

#[tokio::test]
async fn old_sessions_survive_retire_and_evict_ends_them() {
    let redis = Redis::start().unwrap();
    let old_pw = random_password().unwrap();
    create_user(&redis, "app", &old_pw);
    let spec = spec(&url(redis.port()), "app", Some(ADMIN_SECRET));
    let admin = admin_of(&redis);
    let current = cred("app", &old_pw, Stage::Current);
    let rot = RedisRotator::new();

    let mut old_session = RawConn::connect(redis.port()).await;
    assert_eq!(
        old_session.cmd(&["AUTH", "app", &old_pw]).await.unwrap(),
        "+OK"
    );

    let new = rotate(&rot, &spec, &current, Some(&admin)).await;
    assert!(auth(&redis, "app", &old_pw).starts_with("WRONGPASS"));
    assert_eq!(
        old_session.cmd(&["PING"]).await.unwrap(),
        "+PONG",
        "a session authenticated before retire stays authenticated"
    );

    let mut previous = current.clone();
    previous.meta.stages = vec![Stage::Previous];
    let mut emergency = ctx(&spec, Some(&new), Some(&admin));
    emergency.emergency = true;
    let ev = rot.evict(&emergency, &previous).await.unwrap();
    assert!(ev.ended >= 1 && ev.surviving == 0, "{ev:?}");
    assert!(
        old_session.cmd(&["PING"]).await.is_err(),
        "the old session is gone after evict"
    );
    // Clients reconnect with the current password; the admin session was not touched.
    assert_eq!(auth(&redis, "app", &password(&new)), "OK");
    let again = rot.evict(&emergency, &previous).await.unwrap();
    assert_eq!((again.ended, again.surviving), (0, 0));
}

#[tokio::test]
async fn rollback_removes_pending_only() {
    let redis = Redis::start_with_aclfile().unwrap();
    let old_pw = random_password().unwrap();
    create_user(&redis, "app", &old_pw);
    let spec = spec(&url(redis.port()), "app", Some(ADMIN_SECRET));
    let admin = admin_of(&redis);
    let current = cred("app", &old_pw, Stage::Current);
    let rot = RedisRotator::new();
    let c = ctx(&spec, Some(&current), Some(&admin));

    let pending = start_rotation(&rot, &spec, Some(&current), Some(&admin)).await;
    rot.rollback(&c, &pending).await.unwrap();
    rot.rollback(&c, &pending).await.unwrap(); // idempotent
    assert!(auth(&redis, "app", &password(&pending)).starts_with("WRONGPASS"));
    assert_eq!(auth(&redis, "app", &old_pw), "OK");
    assert_eq!(password_hashes(&redis, "app"), vec![sha256_hex(&old_pw)]);
    let on_disk = std::fs::read_to_string(redis.aclfile().unwrap()).unwrap();
    assert!(!on_disk.contains(&sha256_hex(&password(&pending))));
}

/// Saves are group-committed: many concurrent `set`s on one server, and every new hash is in
/// the aclfile once its `set` returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sets_are_all_saved() {
    let redis = Redis::start_with_aclfile().unwrap();
    let rot = std::sync::Arc::new(RedisRotator::new());
    let admin = std::sync::Arc::new(admin_of(&redis));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..12 {
        let user = format!("u{i}");
        create_user(&redis, &user, &random_password().unwrap());
        let spec = spec(&url(redis.port()), &user, Some(ADMIN_SECRET));
        let (rot, admin) = (rot.clone(), admin.clone());
        tasks.spawn(async move {
            let c = ctx(&spec, None, Some(&admin));
            let mut pending = pending_from(rot.create(&c).await.unwrap());
            pending.meta.secret = spec.name.clone();
            rot.set(&c, &pending).await.unwrap();
            sha256_hex(&password(&pending))
        });
    }
    let hashes = tasks.join_all().await;
    let on_disk = std::fs::read_to_string(redis.aclfile().unwrap()).unwrap();
    for h in &hashes {
        assert!(
            on_disk.contains(&format!("#{h}")),
            "{h} missing from the aclfile"
        );
    }
}
