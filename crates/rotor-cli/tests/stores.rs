//! The same commands on every store kind: PostgreSQL (a real server) and AWS Secrets Manager
//! (moto's server, read back with boto3), each with the CLI doing init, put, rotate, status,
//! history and audit verify.

mod common;

use common::Env;
use rotor_test_support::{Moto, Postgres};

const SECRETS: &str = r#"
[secrets.session]
kind = "random"
tier = "high"
grace = "0s"

[secrets.api]
kind = "manual"
tier = "medium"
grace = "1h"
"#;

fn exercise(env: &Env, extra_env: &[(&str, String)]) {
    let run = |args: &[&str], stdin: Option<&[u8]>| {
        let mut c = env.command(args);
        for (k, v) in extra_env {
            c.env(k, v);
        }
        c.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().expect("spawn");
        {
            use std::io::Write;
            let mut pipe = child.stdin.take().expect("stdin");
            if let Some(d) = stdin {
                pipe.write_all(d).expect("stdin");
            }
        }
        let r = common::run_of(child.wait_with_output().expect("wait"));
        assert_eq!(r.code, 0, "{args:?}: {}\n{}", r.stdout, r.stderr);
        r
    };
    let init = run(&["init"], None);
    assert!(init.stdout.contains("created"), "{}", init.stdout);
    run(&["put", "api"], Some(b"first-api-key-value"));
    run(&["put", "api"], Some(b"second-api-key-value"));
    run(&["rotate", "session"], None);
    run(&["rotate", "session"], None);
    let current = run(&["get", "api", "--reveal"], None);
    assert_eq!(current.stdout.trim(), "second-api-key-value");
    let previous = run(&["get", "api", "--stage", "previous", "--reveal"], None);
    assert_eq!(previous.stdout.trim(), "first-api-key-value");
    let status = run(&["--format", "json", "status"], None).json();
    let state = |name: &str| {
        status
            .as_array()
            .expect("rows")
            .iter()
            .find(|r| r["name"] == name)
            .map(|r| r["state"].clone())
    };
    // The second put keeps the first value valid for its grace: every store says so.
    assert_eq!(state("session"), Some("ok".into()), "{status}");
    assert_eq!(state("api"), Some("in-grace".into()), "{status}");
    run(&["audit", "verify"], None);
}

#[test]
fn postgres_store() {
    let pg = Postgres::start().expect("start PostgreSQL");
    pg.create_db("rotor").expect("create db");
    let config = format!(
        "[store]\nkind = \"postgres\"\nurl = \"postgres://postgres:${{PGPW}}@127.0.0.1:{}/rotor\"\n{SECRETS}",
        pg.port()
    );
    let env = Env::uninit(&config);
    exercise(&env, &[("PGPW", pg.admin_password().to_owned())]);
    // The values are sealed in the database: no plaintext in any table.
    let dump = pg
        .psql_db(
            "rotor",
            "SELECT string_agg(t::text, ' ') FROM rotor_versions t",
        )
        .expect("psql");
    assert!(!dump.contains("second-api-key-value"));
}

#[test]
fn aws_store_with_a_sqlite_ledger() {
    let moto = Moto::start().expect("start moto");
    let config = format!(
        "[store]\nkind = \"aws\"\nregion = \"{}\"\nendpoint_url = \"{}\"\nprefix = \"divan/test/\"\nledger = \"sqlite\"\npath = \"ledger.db\"\n{SECRETS}",
        moto.region(),
        moto.endpoint_url()
    );
    let env = Env::uninit(&config);
    let aws_env: Vec<(&str, String)> = moto.aws_env();
    exercise(&env, &aws_env);
    // boto3, a client nobody here wrote, sees the stages where AWS documents them.
    let py = r#"
import boto3, json
c = boto3.client("secretsmanager")
cur = c.get_secret_value(SecretId="divan/test/api", VersionStage="AWSCURRENT")["SecretString"]
prev = c.get_secret_value(SecretId="divan/test/api", VersionStage="AWSPREVIOUS")["SecretString"]
print(json.dumps([cur, prev]))
"#;
    let mut c = std::process::Command::new(rotor_test_support::python().expect("python"));
    c.arg("-c").arg(py);
    for (k, v) in &aws_env {
        c.env(k, v);
    }
    let out = c.output().expect("python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Vec<String> = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(got, vec!["second-api-key-value", "first-api-key-value"]);
}

#[test]
fn master_key_rotation_keeps_every_value() {
    let env = Env::new(SECRETS);
    env.rotor_stdin(&["put", "api"], Some(b"api-key-before-rotation"))
        .ok();
    env.rotor(&["rotate", "session"]).ok();
    let session = env.reveal("session", "current");
    let old_key = std::fs::read(env.path("rotor.key")).expect("key");
    let r = env.rotor(&["master-key", "rotate"]).ok();
    assert!(r.stdout.contains("rewrapped 2 values"), "{}", r.stdout);
    assert!(
        !env.path("rotor.key.new").exists(),
        "the new key moved over the old file"
    );
    assert_ne!(std::fs::read(env.path("rotor.key")).expect("key"), old_key);
    env.audit_verifies();
    assert_eq!(env.reveal("api", "current"), "api-key-before-rotation");
    assert_eq!(env.reveal("session", "current"), session);
    // The old key no longer opens the store.
    std::fs::write(env.path("old.key"), &old_key).expect("write");
    let mut c = env.command(&["status"]);
    c.env(
        "ROTOR_MASTER_KEY",
        String::from_utf8(old_key).expect("utf8").trim(),
    );
    let refused = common::run_of(c.output().expect("run"));
    assert_eq!(refused.code, 5, "{}", refused.stderr);
    env.audit_verifies();
    let audit = env
        .rotor(&["--format", "json", "audit", "tail", "-n", "10"])
        .ok()
        .json();
    let last_change = audit
        .as_array()
        .expect("records")
        .iter()
        .rev()
        .find(|r| r["action"] != "secret.read")
        .expect("a change");
    assert_eq!(last_change["action"], "store.master_key.rotate");
}

#[test]
fn migrate_sqlite_to_postgres_and_verify() {
    let source = Env::new(SECRETS);
    source
        .rotor_stdin(&["put", "api"], Some(b"value-one-for-migration"))
        .ok();
    source
        .rotor_stdin(&["put", "api"], Some(b"value-two-for-migration"))
        .ok();
    source.rotor(&["rotate", "session"]).ok();
    let pg = Postgres::start().expect("start PostgreSQL");
    pg.create_db("rotor").expect("create db");
    let target_config = format!(
        "[store]\nkind = \"postgres\"\nurl = \"postgres://postgres:${{PGPW}}@127.0.0.1:{}/rotor\"\nmaster_key_file = \"target.key\"\n{SECRETS}",
        pg.port()
    );
    std::fs::write(source.path("target.toml"), target_config).expect("write");
    let mut c = source.command(&["store", "migrate", "--to", "target.toml"]);
    c.env("PGPW", pg.admin_password());
    let r = common::run_of(c.output().expect("run"));
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("verified"), "{}", r.stdout);
    // The target answers like the source.
    let mut c = source.command(&[
        "--config",
        "target.toml",
        "get",
        "api",
        "--stage",
        "previous",
        "--reveal",
    ]);
    c.env("PGPW", pg.admin_password());
    let got = common::run_of(c.output().expect("run"));
    assert_eq!(
        got.stdout.trim(),
        "value-one-for-migration",
        "{}",
        got.stderr
    );
    let mut c = source.command(&["--config", "target.toml", "audit", "verify"]);
    c.env("PGPW", pg.admin_password());
    assert_eq!(common::run_of(c.output().expect("run")).code, 0);
    // A second migration into the same (now non-empty) target is refused.
    let mut c = source.command(&["store", "migrate", "--to", "target.toml"]);
    c.env("PGPW", pg.admin_password());
    let again = common::run_of(c.output().expect("run"));
    assert_eq!(again.code, 1);
    assert!(again.stderr.contains("not empty"), "{}", again.stderr);
}

#[test]
fn render_writes_the_dotenv_after_rotations() {
    use std::os::unix::fs::PermissionsExt;
    let config = format!(
        "{SECRETS}\n[[render]]\nkind = \"dotenv\"\npath = \"app.env\"\n[render.vars]\nSESSION = \"{{{{ session.current }}}}\"\nAPI = \"{{{{ api.current }}}}\"\nAPI_PREVIOUS = \"{{{{ api.previous }}}}\"\n"
    );
    let env = Env::new(&config);
    env.rotor_stdin(&["put", "api"], Some(b"api-value-1")).ok();
    env.rotor_stdin(&["put", "api"], Some(b"api-value-2")).ok();
    env.rotor(&["rotate", "session"]).ok();
    let text = std::fs::read_to_string(env.path("app.env")).expect("rendered");
    assert!(text.contains("API=\"api-value-2\""), "{text}");
    assert!(text.contains("API_PREVIOUS=\"api-value-1\""), "{text}");
    assert!(text.contains(&format!("SESSION=\"{}\"", env.reveal("session", "current"))));
    let mode = std::fs::metadata(env.path("app.env"))
        .expect("meta")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let r = env.rotor(&["render"]).ok();
    assert!(r.stdout.contains("unchanged"), "{}", r.stdout);
}

#[test]
fn migrate_sqlite_to_aws_mirrors_every_value() {
    let source = Env::new(SECRETS);
    source
        .rotor_stdin(&["put", "api"], Some(b"aws-migrated-one"))
        .ok();
    source
        .rotor_stdin(&["put", "api"], Some(b"aws-migrated-two"))
        .ok();
    source.rotor(&["rotate", "session"]).ok();
    let moto = Moto::start().expect("start moto");
    let target_config = format!(
        "[store]\nkind = \"aws\"\nregion = \"{}\"\nendpoint_url = \"{}\"\nprefix = \"divan/migrated/\"\nledger = \"sqlite\"\npath = \"ledger.db\"\nmaster_key_file = \"ledger.key\"\n{SECRETS}",
        moto.region(),
        moto.endpoint_url()
    );
    std::fs::write(source.path("aws.toml"), target_config).expect("write");
    let aws_env = moto.aws_env();
    let mut c = source.command(&["store", "migrate", "--to", "aws.toml"]);
    for (k, v) in &aws_env {
        c.env(k, v);
    }
    let r = common::run_of(c.output().expect("run"));
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("verified"), "{}", r.stdout);
    // boto3 reads the migrated stages from AWS itself.
    let py = r#"
import boto3, json
c = boto3.client("secretsmanager")
cur = c.get_secret_value(SecretId="divan/migrated/api", VersionStage="AWSCURRENT")["SecretString"]
prev = c.get_secret_value(SecretId="divan/migrated/api", VersionStage="AWSPREVIOUS")["SecretString"]
print(json.dumps([cur, prev]))
"#;
    let mut c = std::process::Command::new(rotor_test_support::python().expect("python"));
    c.arg("-c").arg(py);
    for (k, v) in &aws_env {
        c.env(k, v);
    }
    let out = c.output().expect("python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Vec<String> = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(got, vec!["aws-migrated-two", "aws-migrated-one"]);
}

/// `rotor store sync` brings secrets created before the inventory said anything about
/// them in line: description, KMS key, rotor tags (boto3's describe_secret is the judge).
#[test]
fn store_sync_brings_aws_secrets_in_line_with_the_inventory() {
    let moto = Moto::start().expect("start moto");
    let aws_env = moto.aws_env();
    let store = format!(
        "[store]\nkind = \"aws\"\nregion = \"{}\"\nendpoint_url = \"{}\"\nprefix = \"divan/sync/\"\nledger = \"sqlite\"\npath = \"ledger.db\"\n",
        moto.region(),
        moto.endpoint_url()
    );
    let env = Env::uninit(&format!("{store}{SECRETS}"));
    let run = |args: &[&str], stdin: Option<&[u8]>| {
        let mut c = env.command(args);
        for (k, v) in &aws_env {
            c.env(k, v);
        }
        c.stdin(std::process::Stdio::piped());
        let mut child = c
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        {
            use std::io::Write;
            let mut pipe = child.stdin.take().expect("stdin");
            if let Some(d) = stdin {
                pipe.write_all(d).expect("stdin");
            }
        }
        common::run_of(child.wait_with_output().expect("wait"))
    };
    assert_eq!(run(&["init"], None).code, 0);
    assert_eq!(run(&["put", "api"], Some(b"api-value")).code, 0);

    let key_py = "import boto3; print(boto3.client('kms').create_key()['KeyMetadata']['KeyId'])";
    let python = |script: &str| {
        let mut c = std::process::Command::new(rotor_test_support::python().expect("python"));
        c.arg("-c").arg(script);
        for (k, v) in &aws_env {
            c.env(k, v);
        }
        let out = c.output().expect("python");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf-8")
            .trim()
            .to_owned()
    };
    let key = python(key_py);
    let inventory = SECRETS.replace(
        "[secrets.api]\nkind = \"manual\"\n",
        "[secrets.api]\nkind = \"manual\"\nowner = \"team-api\"\ndescription = \"the partner API key\"\n",
    );
    let store = store.replace(
        "path = \"ledger.db\"\n",
        &format!("path = \"ledger.db\"\nkms_key_id = \"{key}\"\n"),
    );
    std::fs::write(env.path("rotor.toml"), format!("{store}{inventory}")).expect("write config");
    let sync = run(&["store", "sync"], None);
    assert_eq!(sync.code, 0, "{}\n{}", sync.stdout, sync.stderr);
    assert!(sync.stdout.contains("api: UpdateSecret"), "{}", sync.stdout);
    assert!(sync.stdout.contains("api: TagResource"), "{}", sync.stdout);
    let d: serde_json::Value = serde_json::from_str(&python(
        "import boto3, json; d = boto3.client('secretsmanager').describe_secret(SecretId='divan/sync/api'); \
         print(json.dumps({'kms': d.get('KmsKeyId'), 'description': d.get('Description'), \
         'tags': {t['Key']: t['Value'] for t in d.get('Tags', [])}}))",
    ))
    .expect("json");
    assert_eq!(d["kms"], key.as_str());
    assert_eq!(d["description"], "the partner API key");
    assert_eq!(d["tags"]["rotor:owner"], "team-api");
    assert_eq!(d["tags"]["rotor:tier"], "medium");
    assert_eq!(d["tags"]["rotor:kind"], "manual");
    assert_eq!(d["tags"]["rotor:rotated-by"], "rotor");
    // In line: a second sync changes nothing.
    let again = run(&["store", "sync"], None);
    assert!(again.stdout.contains("(0 AWS changes)"), "{}", again.stdout);
    // Not an aws store: a clear refusal.
    let sqlite = Env::new(SECRETS);
    let r = sqlite.rotor(&["store", "sync"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("kind = \"aws\""), "{}", r.stderr);
}
