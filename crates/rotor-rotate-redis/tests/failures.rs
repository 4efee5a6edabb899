//! The redis rotator against a real redis-server (rotor_test_support): what goes wrong.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rotor_core::{Rotator, RotatorError, Stage};
use rotor_rotate_redis::RedisRotator;
use rotor_test_support::{Redis, TcpProxy, free_port, random_password};
use support::*;

/// Asserts that no password shows anywhere in an error.
fn assert_clean(e: &RotatorError, secrets: &[&str]) {
    let text = format!("{e} {e:?}");
    eprintln!("error as shown: {e}");
    for s in secrets {
        assert!(!text.contains(s), "a secret leaked into: {text}");
    }
}

#[tokio::test]
async fn server_down_is_transient_and_fast() {
    let port = free_port().unwrap();
    let spec = spec(&url(port), "app", Some(ADMIN_SECRET));
    let admin = versioned(
        ADMIN_SECRET,
        value("default", "adminpw-xyz"),
        Stage::Current,
    );
    let current = cred("app", "oldpw-abc", Stage::Current);
    let rot = RedisRotator::new();
    let c = ctx(&spec, Some(&current), Some(&admin));
    let pending = pending_from(rot.create(&c).await.unwrap());

    let started = Instant::now();
    let e = rot.set(&c, &pending).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(4));
    assert!(e.transient, "{e}");
    assert!(e.message.contains(&format!("127.0.0.1:{port}")), "{e}");
    assert!(
        e.message.contains("app-redis") && e.message.contains("set"),
        "{e}"
    );
    assert!(
        e.fix
            .as_deref()
            .unwrap()
            .contains("redis-server is running"),
        "{e}"
    );
    assert_clean(&e, &["adminpw-xyz", "oldpw-abc", &password(&pending)]);

    let e = rot.test(&c, &pending).await.unwrap_err();
    assert!(e.transient, "{e}");
}

#[tokio::test]
async fn wrong_admin_password_is_permanent() {
    let redis = Redis::start().unwrap();
    let old_pw = random_password().unwrap();
    create_user(&redis, "app", &old_pw);
    let spec = spec(&url(redis.port()), "app", Some(ADMIN_SECRET));
    let bad_admin = versioned(
        ADMIN_SECRET,
        value("default", "not-the-admin-password-123"),
        Stage::Current,
    );
    let current = cred("app", &old_pw, Stage::Current);
    let rot = RedisRotator::new();
    let c = ctx(&spec, Some(&current), Some(&bad_admin));
    let pending = pending_from(rot.create(&c).await.unwrap());

    let e = rot.set(&c, &pending).await.unwrap_err();
    assert!(!e.transient, "{e}");
    assert!(e.message.contains("WRONGPASS"), "{e}");
    assert!(
        e.fix.as_deref().unwrap().contains("rotor put redis-admin"),
        "{e}"
    );
    assert_clean(
        &e,
        &["not-the-admin-password-123", &old_pw, &password(&pending)],
    );
    assert_eq!(password_hashes(&redis, "app"), vec![sha256_hex(&old_pw)]);

    // The right password afterwards works (the refused connection was not cached).
    let good = admin_of(&redis);
    rot.set(&ctx(&spec, Some(&current), Some(&good)), &pending)
        .await
        .unwrap();
}

#[tokio::test]
async fn admin_without_acl_permission_gets_noperm() {
    let redis = Redis::start().unwrap();
    let old_pw = random_password().unwrap();
    create_user(&redis, "app", &old_pw);
    let weak_pw = random_password().unwrap();
    redis
        .cli(&[
            "ACL",
            "SETUSER",
            "weak",
            "on",
            &format!(">{weak_pw}"),
            "~*",
            "+@all",
            "-acl",
        ])
        .unwrap();
    let spec = spec(&url(redis.port()), "app", Some(ADMIN_SECRET));
    let admin = versioned(ADMIN_SECRET, value("weak", &weak_pw), Stage::Current);
    let current = cred("app", &old_pw, Stage::Current);
    let rot = RedisRotator::new();
    let c = ctx(&spec, Some(&current), Some(&admin));
    let pending = pending_from(rot.create(&c).await.unwrap());

    let e = rot.set(&c, &pending).await.unwrap_err();
    assert!(!e.transient, "{e}");
    assert!(e.message.contains("NOPERM"), "{e}");
    assert!(e.message.contains("`weak`"), "{e}");
    assert!(
        e.fix.as_deref().unwrap().contains("ACL SETUSER weak +acl"),
        "{e}"
    );
    assert_clean(&e, &[&weak_pw, &old_pw, &password(&pending)]);

    let e = rot.setup(&c).await.unwrap_err();
    assert!(e.message.contains("NOPERM"), "{e}");

    // A user managing itself without +acl: the fix also suggests an admin secret.
    redis.cli(&["ACL", "SETUSER", "app", "-acl"]).unwrap();
    let self_spec = support::spec(&url(redis.port()), "app", None);
    let e = rot
        .set(&ctx(&self_spec, Some(&current), None), &pending)
        .await
        .unwrap_err();
    assert!(e.message.contains("NOPERM"), "{e}");
    assert!(e.fix.as_deref().unwrap().contains("set `admin`"), "{e}");
}

#[tokio::test]
async fn missing_user_is_permanent_with_how_to_create_it() {
    let redis = Redis::start().unwrap();
    let spec = spec(&url(redis.port()), "ghost", Some(ADMIN_SECRET));
    let admin = admin_of(&redis);
    let rot = RedisRotator::new();
    let c = ctx(&spec, None, Some(&admin));
    let pending = pending_from(rot.create(&c).await.unwrap());

    let e = rot.set(&c, &pending).await.unwrap_err();
    assert!(!e.transient, "{e}");
    assert!(e.message.contains("ACL user `ghost` does not exist"), "{e}");
    assert!(
        e.fix.as_deref().unwrap().contains("ACL SETUSER ghost on"),
        "{e}"
    );
    // set did not create the user as a side effect.
    assert_eq!(redis.cli(&["ACL", "GETUSER", "ghost"]).unwrap(), "");

    let e = rot.setup(&c).await.unwrap_err();
    assert!(e.message.contains("does not exist"), "{e}");
}

/// The pending value was never set: `test` gets WRONGPASS, a permanent error.
#[tokio::test]
async fn test_step_wrongpass_is_permanent() {
    let redis = Redis::start().unwrap();
    create_user(&redis, "app", &random_password().unwrap());
    let spec = spec(&url(redis.port()), "app", Some(ADMIN_SECRET));
    let admin = admin_of(&redis);
    let rot = RedisRotator::new();
    let c = ctx(&spec, None, Some(&admin));
    let pending = pending_from(rot.create(&c).await.unwrap());
    let e = rot.test(&c, &pending).await.unwrap_err();
    assert!(!e.transient, "{e}");
    assert!(
        e.message.contains("pending password of `app` is refused"),
        "{e}"
    );
    assert_clean(&e, &[&password(&pending)]);
}

/// Retire refuses to remove the previous password while the current one is missing
/// on the server (it would lock the user out).
#[tokio::test]
async fn retire_never_locks_the_user_out() {
    let redis = Redis::start().unwrap();
    let old_pw = random_password().unwrap();
    create_user(&redis, "app", &old_pw);
    let spec = spec(&url(redis.port()), "app", Some(ADMIN_SECRET));
    let admin = admin_of(&redis);
    let rot = RedisRotator::new();
    let mut previous = cred("app", &old_pw, Stage::Previous);
    previous.meta.stages = vec![Stage::Previous];
    let never_set = cred("app", "never-set-on-the-server-1", Stage::Current);
    let e = rot
        .retire(&ctx(&spec, Some(&never_set), Some(&admin)), &previous)
        .await
        .unwrap_err();
    assert!(e.message.contains("would lock the user out"), "{e}");
    assert_eq!(auth(&redis, "app", &old_pw), "OK");
}

/// The network is cut while a step runs: the error is transient, the current password
/// still works, and rerunning the step completes the rotation.
#[tokio::test]
async fn network_cut_mid_step_is_transient() {
    let redis = Redis::start().unwrap();
    let old_pw = random_password().unwrap();
    create_user(&redis, "app", &old_pw);
    let proxy = TcpProxy::start(redis.addr()).unwrap();
    let spec = spec(&url(proxy.port()), "app", Some(ADMIN_SECRET));
    let admin = admin_of(&redis);
    let current = cred("app", &old_pw, Stage::Current);
    let rot = RedisRotator::with_timeouts(Duration::from_secs(2), Duration::from_secs(2));
    let c = ctx(&spec, Some(&current), Some(&admin));
    rot.setup(&c).await.unwrap(); // the admin connection is now open and cached
    let pending = pending_from(rot.create(&c).await.unwrap());

    proxy.set_stalled(true);
    let (result, ()) = tokio::join!(rot.set(&c, &pending), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        proxy.set_refusing(true);
        assert!(proxy.cut_all() >= 1);
        proxy.set_stalled(false);
    });
    let e = result.unwrap_err();
    assert!(e.transient, "{e}");
    assert!(
        e.message.contains(&format!("127.0.0.1:{}", proxy.port())),
        "{e}"
    );
    assert_clean(&e, &[&old_pw, &password(&pending)]);
    assert_eq!(auth(&redis, "app", &old_pw), "OK", "current still works");

    // The network is back: the same step succeeds and the rotation completes.
    proxy.set_refusing(false);
    rot.set(&c, &pending).await.unwrap();
    rot.test(&c, &pending).await.unwrap();
    let mut new = pending.clone();
    new.meta.stages = vec![Stage::Current];
    // Cut the cached admin connection between steps: retire reconnects by itself.
    proxy.cut_all();
    rot.retire(&ctx(&spec, Some(&new), Some(&admin)), &current)
        .await
        .unwrap();
    assert!(auth(&redis, "app", &old_pw).starts_with("WRONGPASS"));
    assert_eq!(auth(&redis, "app", &password(&new)), "OK");
}

/// A server whose ACL command is disabled (`rename-command ACL ""`): only `requirepass`
/// protects it, as on Redis < 6. The rotator says how to migrate.
#[tokio::test]
async fn requirepass_only_server_gets_the_migration_error() {
    let server = NoAclRedis::start();
    let spec = spec(&url(server.port), "default", None);
    let current = cred("default", &server.password, Stage::Current);
    let rot = RedisRotator::new();
    let c = ctx(&spec, Some(&current), None);
    let pending = pending_from(rot.create(&c).await.unwrap());
    let e = rot.set(&c, &pending).await.unwrap_err();
    assert!(!e.transient, "{e}");
    assert!(e.message.contains("no usable ACL commands"), "{e}");
    assert!(e.message.contains("ACL disabled or renamed"), "{e}");
    let fix = e.fix.as_deref().unwrap();
    assert!(fix.contains("ACL SETUSER app on >... ~* +@all"), "{e}");
    assert!(fix.contains("Redis >= 6"), "{e}");
    assert_clean(&e, &[&server.password, &password(&pending)]);
}

/// A real redis-server started by hand: rotor_test_support cannot rename commands.
struct NoAclRedis {
    child: Child,
    port: u16,
    password: String,
    _dir: tempfile::TempDir,
}

impl NoAclRedis {
    fn start() -> NoAclRedis {
        let password = random_password().expect("random password for requirepass");
        let port = free_port().expect("free port for redis-server (no ACL)");
        let dir = tempfile::tempdir().expect("temp dir for redis-server (no ACL)");
        let conf = dir.path().join("redis.conf");
        std::fs::write(
            &conf,
            format!("requirepass {password}\nrename-command ACL \"\"\n"),
        )
        .expect("write redis.conf (no ACL)");
        let child = Command::new("redis-server")
            .arg(&conf)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/install-deps)");
        rotor_test_support::wait_for_port(
            std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_secs(20),
        )
        .expect("redis-server (no ACL) did not start");
        NoAclRedis {
            child,
            port,
            password,
            _dir: dir,
        }
    }
}

impl Drop for NoAclRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
