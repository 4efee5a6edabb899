//! The GitHub target against a loopback server that follows GitHub's documented endpoints
//! (rotor-test-support's `GithubApi`, fixtures/github_api.py) and decrypts every value with PyNaCl, plus the sealed box
//! checked directly by PyNaCl with a test key pair.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use rotor_core::SecretValue;
use rotor_deliver_github::{GithubClient, GithubTarget, Item, RepoKey, Scope};
use secrecy::SecretString;

const TOKEN: &str = "ghp_test_token_for_the_fixture";

fn python() -> std::path::PathBuf {
    rotor_test_support::python()
        .expect("the test venv's python with PyNaCl (run scripts/install-deps)")
}

/// The fixture server (rotor-test-support's `GithubApi`, `fixtures/github_api.py`).
struct Fixture(rotor_test_support::GithubApi);

impl Fixture {
    fn start() -> Fixture {
        Fixture(rotor_test_support::GithubApi::start(TOKEN).expect("the GitHub API fixture"))
    }

    fn api(&self) -> String {
        self.0.api()
    }

    fn state(&self) -> serde_json::Value {
        self.0.state().expect("fixture state")
    }

    fn client(&self, token: &str, scope: Scope) -> GithubClient {
        GithubClient::new(&self.api(), SecretString::from(token.to_owned()), scope)
            .expect("GithubClient for the fixture API")
    }
}

fn repo(owner: &str, repo: &str) -> Scope {
    Scope::Repository {
        owner: owner.into(),
        repo: repo.into(),
    }
}

#[test]
fn pynacl_opens_what_rotor_sealed() {
    // A test key pair made by PyNaCl; rotor seals for its public key; PyNaCl opens it.
    let script = r#"
import base64, sys
from nacl.public import PrivateKey, SealedBox
k = PrivateKey.generate()
print(base64.b64encode(bytes(k.public_key)).decode(), flush=True)
for line in sys.stdin:
    print(SealedBox(k).decrypt(base64.b64decode(line.strip())).decode(), flush=True)
"#;
    let mut py = Command::new(python())
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python");
    let mut out = BufReader::new(py.stdout.take().unwrap());
    let mut public = String::new();
    out.read_line(&mut public).unwrap();
    let key = RepoKey::new("kid", public.trim()).unwrap();
    let value = SecretValue::from_slice("s3cr3t ünïcode value".as_bytes());
    let a = key.seal(&value).unwrap();
    let b = key.seal(&value).unwrap();
    assert_ne!(a, b, "each seal uses a fresh ephemeral key");
    let mut stdin = py.stdin.take().unwrap();
    writeln!(stdin, "{a}\n{b}").unwrap();
    drop(stdin);
    let mut opened = String::new();
    for _ in 0..2 {
        opened.clear();
        out.read_line(&mut opened).unwrap();
        assert_eq!(opened.trim_end(), "s3cr3t ünïcode value");
    }
    assert!(py.wait().unwrap().success());
    assert!(
        RepoKey::new("kid", "bm90IDMyIGJ5dGVz").is_err(),
        "a key of the wrong size"
    );
}

#[tokio::test]
async fn writes_only_changed_values_to_repository_and_environment_secrets() {
    let f = Fixture::start();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("github-state.json");
    let target = GithubTarget::new(f.client(TOKEN, repo("divan", "app")), &state);
    let (jwt, db) = (
        SecretValue::from_slice(b"jwt-v1"),
        SecretValue::from_slice(b"db-v1"),
    );
    let items = |jwt_fp: &str, jwt_value| {
        vec![
            Item {
                name: "JWT_KEY".into(),
                value: jwt_value,
                fingerprint: jwt_fp.into(),
            },
            Item {
                name: "DB_URL".into(),
                value: &db,
                fingerprint: "db@1".into(),
            },
        ]
    };
    let r = target.write(&items("jwt@1", &jwt)).await.unwrap();
    assert_eq!(r.written, ["JWT_KEY", "DB_URL"]);
    let s = f.state();
    assert_eq!(s["stored"]["divan/app"]["JWT_KEY"], "jwt-v1");
    assert_eq!(s["stored"]["divan/app"]["DB_URL"], "db-v1");
    assert_eq!(
        s["problems"],
        serde_json::json!([]),
        "documented headers sent"
    );
    let text = std::fs::read_to_string(&state).unwrap();
    assert!(
        !text.contains("jwt-v1") && !text.contains("db-v1"),
        "no value in the state file"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&state).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Nothing changed: nothing sent, not even the key read.
    let r = target.write(&items("jwt@1", &jwt)).await.unwrap();
    assert!(r.written.is_empty() && r.unchanged.len() == 2, "{r:?}");
    assert_eq!(
        f.state()["counts"],
        serde_json::json!({"public_key": 1, "put": 2})
    );

    // One rotated: only it is written (an update, 204).
    let jwt2 = SecretValue::from_slice(b"jwt-v2");
    let r = target.write(&items("jwt@2", &jwt2)).await.unwrap();
    assert_eq!(
        (r.written, r.unchanged),
        (vec!["JWT_KEY".to_owned()], vec!["DB_URL".to_owned()])
    );
    let s = f.state();
    assert_eq!(s["stored"]["divan/app"]["JWT_KEY"], "jwt-v2");
    assert_eq!(s["counts"]["put"], 3);

    // An environment's secrets, recorded apart from the repository's.
    let env = Scope::Environment {
        owner: "divan".into(),
        repo: "app".into(),
        environment: "staging".into(),
    };
    let staging = GithubTarget::new(f.client(TOKEN, env), dir.path().join("staging.json"));
    staging.write(&items("jwt@2", &jwt2)).await.unwrap();
    assert_eq!(
        f.state()["stored"]["divan/app/staging"]["JWT_KEY"],
        "jwt-v2"
    );
}

/// The error of reading the key (or, if that works, of writing `X`).
async fn put(client: GithubClient) -> rotor_deliver_github::GithubError {
    let key = RepoKey::new(
        "568250167242549743",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    )
    .expect("RepoKey from a fixed all-zero public key");
    match client.public_key().await {
        Err(e) => e,
        Ok(_) => client
            .put("X", &key, &SecretValue::from_slice(b"value"))
            .await
            .expect_err("refused"),
    }
}

#[tokio::test]
async fn errors_say_what_to_do_and_whether_to_retry() {
    let f = Fixture::start();
    let v = SecretValue::from_slice(b"value");
    let e = put(f.client("wrong-token", repo("divan", "app"))).await;
    assert!(
        !e.transient && e.message.contains("rejected the token"),
        "{e}"
    );
    assert!(
        !e.to_string().contains("wrong-token"),
        "the token is never shown: {e}"
    );

    let e = put(f.client(TOKEN, repo("limited", "app"))).await;
    assert!(e.transient && e.message.contains("rate limit"), "{e}");
    let wait = e.retry_after.expect("reset time").as_secs();
    assert!((60..=121).contains(&wait), "{wait}");

    let e = put(f.client(TOKEN, repo("secondary", "app"))).await;
    assert!(
        e.transient && e.message.contains("secondary rate limit"),
        "{e}"
    );
    assert_eq!(e.retry_after, Some(std::time::Duration::from_secs(30)));

    let e = put(f.client(TOKEN, repo("divan", "missing"))).await;
    assert!(!e.transient && e.message.contains("not found"), "{e}");
    assert!(e.fix.contains("cannot see the repository"), "{e}");

    let client = f.client(TOKEN, repo("divan", "app"));
    let key = client.public_key().await.unwrap();
    let e = client.put("GITHUB_TOKEN", &key, &v).await.unwrap_err();
    assert!(
        !e.transient && e.message.contains("not a valid GitHub secret name"),
        "{e}"
    );

    let e = GithubClient::from_env(&f.api(), "ROTOR_TEST_UNSET_GITHUB_TOKEN", repo("a", "b"))
        .unwrap_err();
    assert!(
        e.message
            .contains("ROTOR_TEST_UNSET_GITHUB_TOKEN is not set"),
        "{e}"
    );

    // Nothing listening: transient.
    let dead = GithubClient::new(
        &format!(
            "http://127.0.0.1:{}",
            rotor_test_support::free_port().unwrap()
        ),
        SecretString::from(TOKEN.to_owned()),
        repo("a", "b"),
    )
    .unwrap();
    let e = dead.public_key().await.unwrap_err();
    assert!(e.transient && e.message.contains("unreachable"), "{e}");
}
