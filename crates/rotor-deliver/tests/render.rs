//! The renderer against a real SqliteStore: values staged with `Engine::put` (which also
//! drives delivery, as after a rotation), files read back by bash and serde_json.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rotor_core::{Config, SecretName, SecretValue, Store};
use rotor_deliver::{DeliverError, OnChangeOutcome, Renderer};
use rotor_engine::{Deliver, Engine, EngineOptions, Rotators, StageChange, SystemClock};
use rotor_seal::MasterKey;
use rotor_store_sqlite::SqliteStore;

const SECRETS: &str = r#"
[secrets.jwt-signing]
kind = "manual"
tier = "high"
grace = "1h"

[secrets.database]
kind = "manual"
tier = "medium"
grace = "1h"

[secrets.other]
kind = "manual"
tier = "low"
grace = "1h"
"#;

/// A config (with `render` appended to the secrets above), a fresh store and an engine that
/// delivers to a renderer over them.
struct Fixture {
    dir: tempfile::TempDir,
    engine: Engine,
    renderer: Arc<Renderer>,
}

impl Fixture {
    fn new(render: &str) -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir for the fixture");
        let text = format!("{SECRETS}\n{render}");
        let path = dir.path().join("rotor.toml");
        std::fs::write(&path, &text).expect("write fixture rotor.toml");
        let config: Arc<Config> = Arc::new(
            rotor_core::config::parse(&text, &path, &|_| None)
                .unwrap_or_else(|e| panic!("{e}\n{text}")),
        );
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::create(
                &dir.path().join("rotor.db"),
                MasterKey::generate().expect("generate master key"),
                "test",
            )
            .expect("create SqliteStore rotor.db"),
        );
        let renderer = Arc::new(Renderer::new(config.clone(), store.clone()));
        let engine = Engine::new(
            store,
            config,
            Rotators::new(),
            Arc::new(SystemClock),
            EngineOptions::new("test"),
        )
        .with_delivery(renderer.clone());
        Fixture {
            dir,
            engine,
            renderer,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    async fn put(&self, name: &str, value: &str) {
        self.engine
            .put(
                name,
                SecretValue::from_slice(value.as_bytes()),
                serde_json::json!({}),
                None,
            )
            .await
            .expect("engine put");
    }

    /// Audit records of failed deliveries.
    async fn delivery_failures(&self) -> Vec<String> {
        self.engine
            .store()
            .audit_tail(1000)
            .await
            .expect("read audit tail")
            .into_iter()
            .filter(|r| r.event.action == "delivery.failed")
            .map(|r| serde_json::to_string(&r.event).expect("encode audit event as JSON"))
            .collect()
    }
}

fn db_value(user: &str, password: &str) -> String {
    serde_json::json!({"username": user, "password": password}).to_string()
}

/// `$NAME` after `set -a; . FILE` in bash.
fn bash_read(file: &Path, name: &str) -> String {
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("set -a; . \"$1\"; printf %s \"${name}\""))
        .arg("bash")
        .arg(file)
        .output()
        .expect("run bash to source the dotenv file");
    assert!(
        out.status.success(),
        "bash failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("bash printed UTF-8")
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata of a rendered file")
        .permissions()
        .mode()
        & 0o7777
}

/// Files left over from atomic writes.
fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("read the fixture dir")
        .map(|e| {
            e.expect("entry of the fixture dir")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

const DOTENV: &str = r#"
[[render]]
kind = "dotenv"
path = "app.env"
[render.vars]
SECRET_KEY = "{{ jwt-signing.current }}"
SECRET_KEY_PREVIOUS = "{{ jwt-signing.previous }}"
DATABASE_URL = "postgres://{{ database.current.username }}:{{ database.current.password }}@db:5432/app"
"#;

#[tokio::test]
async fn dotenv_has_current_previous_and_fields_after_each_put() {
    let f = Fixture::new(DOTENV);
    let env = f.path("app.env");
    f.put("jwt-signing", "key-one").await;
    // `database` has no current value yet: the target is not written (issue 10.6).
    assert!(!env.exists());
    assert_eq!(f.delivery_failures().await.len(), 1);
    f.put("database", &db_value("app_a", "pw1")).await;
    assert_eq!(bash_read(&env, "SECRET_KEY"), "key-one");
    // No previous yet: the empty string tells the app there is none.
    assert_eq!(bash_read(&env, "SECRET_KEY_PREVIOUS"), "");
    assert_eq!(
        bash_read(&env, "DATABASE_URL"),
        "postgres://app_a:pw1@db:5432/app"
    );

    f.put("jwt-signing", "key-two").await;
    assert_eq!(bash_read(&env, "SECRET_KEY"), "key-two");
    assert_eq!(bash_read(&env, "SECRET_KEY_PREVIOUS"), "key-one");
    assert_eq!(mode(&env), 0o600);
    assert!(temp_files(f.dir.path()).is_empty());
    assert_eq!(f.delivery_failures().await.len(), 1, "only the first put's");

    let text = std::fs::read_to_string(&env).unwrap();
    assert!(text.starts_with('#'), "{text}");
    assert!(text.contains("SECRET_KEY=\"key-two\"\n"), "{text}");
}

#[tokio::test]
async fn dotenv_values_round_trip_through_bash() {
    let f = Fixture::new(DOTENV);
    let env = f.path("app.env");
    let nasty = [
        "plain",
        "with \"double\" and 'single' quotes",
        "dollar $HOME ${HOME} $(id) `id` \\$ $",
        "back\\slash \\\\ \\n \\\" trailing\\",
        "two\nlines\n\nand a blank one\n",
        "tab\tcarriage\rreturn",
        "unicode é ü 日本 🙂",
        "#not a comment = equals",
        "\\",
        "",
    ];
    // The target also references database: it is written only once both have a current.
    f.put("database", &db_value("app_a", "pw1")).await;
    for value in nasty {
        if value.is_empty() {
            continue; // put refuses an empty value; empty is covered by SECRET_KEY_PREVIOUS
        }
        f.put("jwt-signing", value).await;
        assert_eq!(bash_read(&env, "SECRET_KEY"), value, "value {value:?}");
    }
    assert_eq!(
        f.delivery_failures().await.len(),
        1,
        "only the first put's (no jwt-signing current yet)"
    );
}

#[tokio::test]
async fn json_and_template_targets() {
    let template = "url: postgres://{{ database.current.username }}:{{database.current.password}}@db/app\nkey: {{ jwt-signing.current }}\nold: [{{ jwt-signing.previous }}]\n";
    let f = Fixture::new(
        r#"
[[render]]
kind = "json"
path = "app.json"
[render.vars]
KEY = "{{ jwt-signing.current }}"
DB_PASSWORD = "{{ database.current.password }}"

[[render]]
kind = "template"
path = "app.yaml"
template = "app.yaml.tpl"
"#,
    );
    std::fs::write(f.path("app.yaml.tpl"), template).unwrap();
    f.put("jwt-signing", "k\"1\n").await;
    f.put("database", &db_value("app_b", "p\\w")).await;

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(f.path("app.json")).unwrap()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"KEY": "k\"1\n", "DB_PASSWORD": "p\\w"})
    );
    assert_eq!(
        std::fs::read_to_string(f.path("app.yaml")).unwrap(),
        "url: postgres://app_b:p\\w@db/app\nkey: k\"1\n\nold: []\n"
    );
    for p in ["app.json", "app.yaml"] {
        assert_eq!(mode(&f.path(p)), 0o600, "{p}");
    }

    // The template is parsed at render time: a new reference is picked up without a restart.
    std::fs::write(f.path("app.yaml.tpl"), "only: {{ other.current }}\n").unwrap();
    f.put("jwt-signing", "k2").await;
    // The template no longer references jwt-signing: the file is not re-rendered.
    assert!(
        std::fs::read_to_string(f.path("app.yaml"))
            .unwrap()
            .starts_with("url:")
    );
    f.put("other", "o1").await;
    assert_eq!(
        std::fs::read_to_string(f.path("app.yaml")).unwrap(),
        "only: o1\n"
    );
    assert!(temp_files(f.dir.path()).is_empty());
}

#[tokio::test]
async fn unchanged_content_is_not_rewritten_and_on_change_does_not_run() {
    let f = Fixture::new(
        r#"
[[render]]
kind = "dotenv"
path = "app.env"
on_change = "echo ran >> on_change.log"
[render.vars]
SECRET_KEY = "{{ jwt-signing.current }}"
"#,
    );
    let env = f.path("app.env");
    let log = f.path("on_change.log");
    f.put("jwt-signing", "key-one").await;
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "ran\n");
    let before = std::fs::metadata(&env).unwrap();

    // A secret the target does not reference: nothing happens.
    f.put("other", "x").await;
    // A put of the same value: the rendered bytes are identical.
    f.put("jwt-signing", "key-one").await;
    let results = f.renderer.render_all().await.unwrap();
    assert_eq!(results.len(), 1);
    assert!(!results[0].changed);
    assert_eq!(results[0].on_change, OnChangeOutcome::NotRun);
    let after = std::fs::metadata(&env).unwrap();
    assert_eq!(
        (before.ino(), before.mtime(), before.mtime_nsec()),
        (after.ino(), after.mtime(), after.mtime_nsec())
    );
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "ran\n");

    // A real change: rewritten, and on_change runs once more, after the write.
    f.put("jwt-signing", "key-two").await;
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "ran\nran\n");
    assert_ne!(std::fs::metadata(&env).unwrap().ino(), before.ino());
    assert!(f.delivery_failures().await.is_empty());
}

#[tokio::test]
async fn on_change_sees_the_new_file_and_its_failure_is_reported_and_audited() {
    let f = Fixture::new(
        r#"
[[render]]
kind = "dotenv"
path = "app.env"
on_change = "cp app.env seen.env; echo 'leaky output s3cret-key' ; echo oops >&2; exit 3"
[render.vars]
SECRET_KEY = "{{ jwt-signing.current }}"
"#,
    );
    f.put("jwt-signing", "s3cret-key").await;
    // The command ran in the config's directory, after the file was in place.
    assert_eq!(bash_read(&f.path("seen.env"), "SECRET_KEY"), "s3cret-key");

    let failures = f.delivery_failures().await;
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].contains("app.env"), "{}", failures[0]);
    assert!(failures[0].contains("exit status: 3"), "{}", failures[0]);
    assert!(!failures[0].contains("s3cret"), "{}", failures[0]);

    // Called directly, the same failure is an Err naming the target and the status.
    f.put("jwt-signing", "s3cret-key-2").await;
    std::fs::remove_file(f.path("app.env")).unwrap();
    let err = f
        .renderer
        .deliver(&SecretName::new("jwt-signing").unwrap(), StageChange::Put)
        .await
        .unwrap_err();
    assert!(
        err.contains("app.env") && err.contains("exit status: 3"),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");
    // render_all reports it per target.
    std::fs::remove_file(f.path("app.env")).unwrap();
    let results = f.renderer.render_all().await.unwrap();
    assert!(
        matches!(&results[0].on_change, OnChangeOutcome::Failed(m) if m.contains("exit status: 3"))
    );
    assert!(!results[0].is_ok());
}

#[tokio::test]
async fn on_change_timeout_kills_the_command_and_what_it_started() {
    let f = Fixture::new(
        r#"
[[render]]
kind = "dotenv"
path = "app.env"
on_change = "(sleep 3; touch child-survived) & sleep 3; touch shell-survived"
timeout = "1s"
[render.vars]
SECRET_KEY = "{{ jwt-signing.current }}"
"#,
    );
    let start = Instant::now();
    f.put("jwt-signing", "k").await;
    let took = start.elapsed();
    assert!(took < Duration::from_millis(2500), "took {took:?}");
    let failures = f.delivery_failures().await;
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].contains("timed out after 1s"),
        "{}",
        failures[0]
    );
    assert!(failures[0].contains("app.env"), "{}", failures[0]);
    // The file itself was written before the command ran.
    assert_eq!(bash_read(&f.path("app.env"), "SECRET_KEY"), "k");
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert!(!f.path("shell-survived").exists());
    assert!(!f.path("child-survived").exists());
}

#[tokio::test]
async fn missing_field_or_non_json_value_is_an_error_naming_secret_and_field() {
    let f = Fixture::new(
        r#"
[[render]]
kind = "dotenv"
path = "app.env"
[render.vars]
DB_USER = "{{ database.current.user }}"
"#,
    );
    f.put("database", &db_value("app_a", "hunter2-secret"))
        .await;
    let err = f.renderer.render_all().await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("database") && msg.contains("\"user\""),
        "{msg}"
    );
    assert!(msg.contains("app.env"), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");
    let DeliverError::Incomplete { errors, results } = err else {
        panic!("{msg}")
    };
    assert!(results.is_empty());
    assert!(matches!(errors[0], DeliverError::Value { .. }));
    assert!(!f.path("app.env").exists());
    assert!(temp_files(f.dir.path()).is_empty());
    // The engine audited the same failure when the put delivered.
    assert_eq!(f.delivery_failures().await.len(), 1);

    f.put("database", "not json: hunter2-secret").await;
    let msg = f.renderer.render_all().await.unwrap_err().to_string();
    assert!(
        msg.contains("database") && msg.contains("not JSON") && msg.contains("\"user\""),
        "{msg}"
    );
    assert!(!msg.contains("hunter2"), "{msg}");
}

#[tokio::test]
async fn bad_variable_names_and_broken_templates_are_errors() {
    let f = Fixture::new(
        r#"
[[render]]
kind = "dotenv"
path = "app.env"
[render.vars]
"BAD-NAME" = "{{ jwt-signing.current }}"

[[render]]
kind = "template"
path = "app.txt"
template = "missing.tpl"
"#,
    );
    f.put("jwt-signing", "k").await;
    let err = f.renderer.render_all().await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("BAD-NAME"), "{msg}");
    assert!(msg.contains("missing.tpl"), "{msg}");
    assert!(msg.contains("2 of 2"), "{msg}");

    std::fs::write(f.path("missing.tpl"), "{{ nosuch.current }}").unwrap();
    let msg = f.renderer.render_all().await.unwrap_err().to_string();
    assert!(msg.contains("names no secret"), "{msg}");
}

/// Issue 10.6: an empty previous is the seed's convention (`SECRET_KEY_PREVIOUS=""`); an
/// empty current is an error naming the secret and the fix, and the target stays as it was.
#[tokio::test]
async fn an_empty_current_is_an_error_and_the_target_is_untouched() {
    let f = Fixture::new(DOTENV);
    let env = f.path("app.env");
    let old = "# written by hand\nSECRET_KEY=\"keep-me\"\n";
    std::fs::write(&env, old).unwrap();

    // Never rotated nor put: no current value.
    f.put("jwt-signing", "key-one").await;
    assert_eq!(
        std::fs::read_to_string(&env).unwrap(),
        old,
        "target untouched"
    );
    let msg = f.renderer.render_all().await.unwrap_err().to_string();
    assert!(
        msg.contains("secret database has no current value")
            && msg.contains("rotor put database")
            && msg.contains("app.env"),
        "{msg}"
    );
    assert!(!msg.contains("key-one"), "{msg}");
    assert_eq!(
        std::fs::read_to_string(&env).unwrap(),
        old,
        "target untouched"
    );
    let failures = f.delivery_failures().await;
    assert_eq!(failures.len(), 1);
    assert!(failures[0].contains("database"), "{failures:?}");

    // A current whose referenced field is empty renders nothing usable either.
    f.put("database", &db_value("app_a", "")).await;
    let msg = f.renderer.render_all().await.unwrap_err().to_string();
    assert!(
        msg.contains("current value of secret database renders as the empty string"),
        "{msg}"
    );
    assert_eq!(
        std::fs::read_to_string(&env).unwrap(),
        old,
        "target untouched"
    );
    assert!(temp_files(f.dir.path()).is_empty());

    // With a value, the target is written, and the empty previous stays empty.
    f.put("database", &db_value("app_a", "pw1")).await;
    assert_eq!(bash_read(&env, "SECRET_KEY"), "key-one");
    assert_eq!(bash_read(&env, "SECRET_KEY_PREVIOUS"), "");
}
