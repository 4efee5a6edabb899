//! Helpers for the redis rotator's tests: specs and versions built by hand, an engine-like
//! rotation driver, and a raw RESP connection that stays open (to watch sessions survive).
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use rotor_core::config::{KindSettings, RedisSettings};
use rotor_core::rotator::{Generated, StepContext};
use rotor_core::store::Versioned;
use rotor_core::{
    Automation, Duration, Kind, Policy, Rotator, SecretName, SecretSpec, SecretValue, Stage,
    VersionId, VersionMeta,
};
use rotor_rotate_redis::RedisRotator;
use rotor_test_support::Redis;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const SECRET: &str = "app-redis";
pub const ADMIN_SECRET: &str = "redis-admin";

pub fn spec(url: &str, user: &str, admin: Option<&str>) -> SecretSpec {
    SecretSpec {
        name: SecretName::new(SECRET).expect("secret name app-redis"),
        kind: Kind::Redis,
        description: None,
        owner: None,
        policy: Policy::new(
            None,
            Duration::from_days(30),
            Duration::from_hours(1),
            Automation::Automatic,
            false,
        )
        .expect("policy: rotate every 30 days, overlap 1 hour"),
        settings: KindSettings::Redis(RedisSettings {
            url: url.to_owned(),
            user: user.to_owned(),
            admin: admin.map(|a| SecretName::new(a).expect("admin secret name")),
        }),
        window: None,
        jitter: Duration::ZERO,
        on_emergency: None,
        last_rotated: None,
    }
}

pub fn url(port: u16) -> String {
    format!("redis://127.0.0.1:{port}")
}

pub fn value(username: &str, password: &str) -> SecretValue {
    SecretValue::new(
        serde_json::to_vec(&serde_json::json!({"username": username, "password": password}))
            .expect("encode username/password value as JSON"),
    )
}

pub fn versioned(secret: &str, value: SecretValue, stage: Stage) -> Versioned {
    Versioned {
        meta: VersionMeta {
            id: VersionId::generate(),
            secret: SecretName::new(secret).expect("version's secret name"),
            created_at: jiff::Timestamp::now(),
            created_by: "test".to_owned(),
            metadata: serde_json::json!({}),
            stages: vec![stage],
        },
        value,
    }
}

pub fn cred(username: &str, password: &str, stage: Stage) -> Versioned {
    versioned(SECRET, value(username, password), stage)
}

/// The `default` user of a test server as an admin secret.
pub fn admin_of(redis: &Redis) -> Versioned {
    versioned(
        ADMIN_SECRET,
        value(redis.admin_user(), redis.admin_password()),
        Stage::Current,
    )
}

pub fn pending_from(generated: Generated) -> Versioned {
    let mut v = versioned(SECRET, generated.value, Stage::Pending);
    v.meta.metadata = generated.metadata;
    v
}

/// The password inside a value.
pub fn password(v: &Versioned) -> String {
    let json: serde_json::Value =
        serde_json::from_slice(v.value.expose()).expect("parse credential value as JSON");
    json["password"]
        .as_str()
        .expect("credential value has a string \"password\"")
        .to_owned()
}

pub fn ctx<'a>(
    spec: &'a SecretSpec,
    current: Option<&'a Versioned>,
    admin: Option<&'a Versioned>,
) -> StepContext<'a> {
    StepContext {
        spec,
        current,
        admin,
        emergency: false,
    }
}

/// create + set + test, as the engine runs them; returns the pending version.
pub async fn start_rotation(
    rot: &RedisRotator,
    spec: &SecretSpec,
    current: Option<&Versioned>,
    admin: Option<&Versioned>,
) -> Versioned {
    let c = ctx(spec, current, admin);
    let pending = pending_from(rot.create(&c).await.expect("redis rotator create"));
    rot.set(&c, &pending)
        .await
        .expect("redis rotator set pending");
    rot.test(&c, &pending)
        .await
        .expect("redis rotator test pending");
    pending
}

/// A full rotation: create, set, test, finish (stage move), retire. Returns the new current.
pub async fn rotate(
    rot: &RedisRotator,
    spec: &SecretSpec,
    current: &Versioned,
    admin: Option<&Versioned>,
) -> Versioned {
    let mut new = start_rotation(rot, spec, Some(current), admin).await;
    new.meta.stages = vec![Stage::Current];
    let mut previous = current.clone();
    previous.meta.stages = vec![Stage::Previous];
    rot.retire(&ctx(spec, Some(&new), admin), &previous)
        .await
        .expect("redis rotator retire previous");
    new
}

/// `AUTH user password` on a fresh redis-cli session: the reply's first line (`OK`,
/// `WRONGPASS ...`).
pub fn auth(redis: &Redis, user: &str, password: &str) -> String {
    let out = redis
        .cli_session(&format!("AUTH {user} {password}\nPING\n"))
        .expect("redis-cli session AUTH + PING");
    out.lines().next().unwrap_or_default().to_owned()
}

/// The lowercase hex SHA-256 of a password.
pub fn sha256_hex(password: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(password.as_bytes()))
}

/// The password hashes of an ACL user, read as the admin.
pub fn password_hashes(redis: &Redis, user: &str) -> Vec<String> {
    let out = redis
        .cli(&["ACL", "GETUSER", user])
        .expect("redis-cli ACL GETUSER");
    let lines: Vec<&str> = out.lines().collect();
    let start = lines
        .iter()
        .position(|l| *l == "passwords")
        .expect("ACL GETUSER reply has a \"passwords\" field")
        + 1;
    lines[start..]
        .iter()
        .take_while(|l| **l != "commands")
        .filter(|l| l.len() == 64)
        .map(|l| (*l).to_owned())
        .collect()
}

/// Creates an ACL user with one password and every permission.
pub fn create_user(redis: &Redis, user: &str, password: &str) {
    redis
        .cli(&[
            "ACL",
            "SETUSER",
            user,
            "on",
            &format!(">{password}"),
            "~*",
            "&*",
            "+@all",
        ])
        .expect("redis-cli ACL SETUSER");
}

/// A raw RESP connection that stays open between commands.
pub struct RawConn(TcpStream);

impl RawConn {
    pub async fn connect(port: u16) -> RawConn {
        RawConn(
            TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect raw RESP session to redis"),
        )
    }

    /// Sends a command; returns the first reply line (e.g. `+OK`), or an error when the
    /// connection is gone.
    pub async fn cmd(&mut self, args: &[&str]) -> std::io::Result<String> {
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        self.0.write_all(out.as_bytes()).await?;
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            let n = tokio::time::timeout(std::time::Duration::from_secs(5), self.0.read(&mut byte))
                .await
                .map_err(|_| std::io::Error::other("timeout"))??;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "closed",
                ));
            }
            line.push(byte[0]);
            if line.ends_with(b"\r\n") {
                line.truncate(line.len() - 2);
                return Ok(String::from_utf8_lossy(&line).into_owned());
            }
        }
    }
}

/// Collects what `tracing` writes, to check warnings.
#[derive(Clone, Default)]
pub struct Captured(pub Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .expect("lock tracing capture buffer")
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Installs a subscriber for the current thread that writes into this buffer.
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        let me = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || me.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock tracing capture buffer")).into_owned()
    }
}
