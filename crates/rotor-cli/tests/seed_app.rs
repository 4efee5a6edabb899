//! The seed's own JWT module works unchanged with what rotor renders (issue 10 item 7): its
//! `decode_access` (PyJWT, HS256, the env var's text as the key, current then previous)
//! verifies tokens `rotor jwt sign` made, and rotor verifies tokens its `encode_access` made,
//! across a rotation and a retire. The module is tests/seed/jwt.py, copied from the policy.

mod common;

use common::Env;

/// The jwt-signing secret and the render of examples/divan.toml, with short token lifetimes
/// so the retire comes within seconds.
const CONFIG: &str = r#"
[secrets.jwt-signing]
kind = "jwt"
algorithm = "HS256"
rotate_every = "1h"
token_lifetime = "2s"
leeway = "1s"

[[render]]
kind = "dotenv"
path = ".env"
[render.vars]
SECRET_KEY = "{{ jwt-signing.current.secret }}"
SECRET_KEY_PREVIOUS = "{{ jwt-signing.previous.secret }}"
SECRET_KEY_KID = "{{ jwt-signing.current.kid }}"
SECRET_KEY_PREVIOUS_KID = "{{ jwt-signing.previous.kid }}"
"#;

/// Loads the rendered .env into the environment, imports the seed's module, decodes each
/// token of argv[3] and signs one token with `encode_access`; prints JSON.
const APP: &str = r##"
import importlib.util, json, os, sys, time
env_file, module, tokens = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
for line in open(env_file):
    line = line.strip()
    if line and not line.startswith("#"):
        k, v = line.split("=", 1)
        os.environ[k] = json.loads(v) if v.startswith('"') else v
spec = importlib.util.spec_from_file_location("seed_jwt", module)
app = importlib.util.module_from_spec(spec)
spec.loader.exec_module(app)
decoded = []
for t in tokens:
    try:
        decoded.append(app.decode_access(t)["sub"])
    except Exception as e:
        decoded.append("rejected: " + type(e).__name__)
now = int(time.time())
signed = app.encode_access({"sub": "from-seed", "iat": now, "exp": now + 600})
print(json.dumps({"decoded": decoded, "signed": signed,
                  "kid": os.environ.get("SECRET_KEY_KID"),
                  "previous_kid": os.environ.get("SECRET_KEY_PREVIOUS_KID")}))
"##;

fn app(env: &Env, tokens: &[&str]) -> serde_json::Value {
    let python = std::env::var("ROTOR_PYTHON").unwrap_or_else(|_| {
        panic!(
            "ROTOR_PYTHON is not set: run scripts/test, or set ROTOR_PYTHON to a python with PyJWT"
        )
    });
    let module = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/seed/jwt.py");
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(APP)
        .arg(env.path(".env"))
        .arg(module)
        .arg(serde_json::to_string(tokens).expect("json"))
        .current_dir(env.dir.path())
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

fn sign(env: &Env, sub: &str) -> String {
    env.rotor(&[
        "jwt",
        "sign",
        "jwt-signing",
        "--claims",
        &format!("{{\"sub\":\"{sub}\"}}"),
    ])
    .ok()
    .stdout
    .trim()
    .to_owned()
}

/// rotor's verdict on a token: the verifying key's stage, or `rejected`.
fn rotor_verifies(env: &Env, token: &str) -> String {
    let r = env.rotor_stdin(&["jwt", "verify", "jwt-signing"], Some(token.as_bytes()));
    if r.code == 0 {
        let v = r.json();
        assert_eq!(v["claims"]["sub"], "from-seed");
        v["stage"].as_str().expect("stage").to_owned()
    } else {
        "rejected".to_owned()
    }
}

fn kid(env: &Env, stage: &str) -> String {
    let doc = env
        .rotor(&["keyring", "jwt-signing", "--reveal"])
        .ok()
        .json();
    doc["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["stage"] == stage)
        .and_then(|k| k["kid"].as_str())
        .expect("kid")
        .to_owned()
}

#[test]
fn the_seed_module_and_rotor_agree_on_hmac_keys_across_a_rotation_and_a_retire() {
    let env = Env::new(CONFIG);
    env.rotor(&["rotate", "jwt-signing"]).ok();
    env.rotor(&["render"]).ok();
    let env_text = std::fs::read_to_string(env.path(".env")).expect(".env");
    assert!(env_text.contains("SECRET_KEY_PREVIOUS=\"\""), "{env_text}");
    let k1 = kid(&env, "current");

    // One key: each side accepts the other's tokens.
    let t1 = sign(&env, "from-rotor-1");
    let r = app(&env, &[&t1]);
    assert_eq!(r["decoded"], serde_json::json!(["from-rotor-1"]), "{r}");
    assert_eq!(r["kid"], k1.as_str());
    assert_eq!(r["previous_kid"], "");
    let m1 = r["signed"].as_str().expect("token").to_owned();
    assert_eq!(rotor_verifies(&env, &m1), "current");

    // After a rotation: the app holds both keys, and so does rotor.
    env.rotor(&["rotate", "jwt-signing"]).ok();
    env.rotor(&["render"]).ok();
    let t2 = sign(&env, "from-rotor-2");
    let r = app(&env, &[&t1, &t2, &m1]);
    assert_eq!(
        r["decoded"],
        serde_json::json!(["from-rotor-1", "from-rotor-2", "from-seed"]),
        "{r}"
    );
    assert_eq!(r["kid"], kid(&env, "current").as_str());
    assert_eq!(r["previous_kid"], k1.as_str());
    let m2 = r["signed"].as_str().expect("token").to_owned();
    assert_eq!(rotor_verifies(&env, &m1), "previous");
    assert_eq!(rotor_verifies(&env, &m2), "current");

    // After the grace (token_lifetime + leeway = 3 s), retire: the old key is dead on both
    // sides (m1 has not expired: the module signed it for 10 minutes).
    std::thread::sleep(std::time::Duration::from_millis(3200));
    env.rotor(&["retire", "--due"]).ok();
    env.rotor(&["render"]).ok();
    let env_text = std::fs::read_to_string(env.path(".env")).expect(".env");
    assert!(env_text.contains("SECRET_KEY_PREVIOUS=\"\""), "{env_text}");
    let t3 = sign(&env, "from-rotor-3");
    let r = app(&env, &[&m1, &m2, &t3]);
    assert_eq!(
        r["decoded"],
        serde_json::json!(["rejected: InvalidTokenError", "from-seed", "from-rotor-3"]),
        "{r}"
    );
    assert_eq!(rotor_verifies(&env, &m1), "rejected");
    assert_eq!(rotor_verifies(&env, &m2), "current");
}

#[test]
fn examples_divan_renders_the_hmac_key_as_the_seed_reads_it() {
    let divan = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/divan.toml"),
    )
    .expect("examples/divan.toml");
    for line in CONFIG.lines().filter(|l| l.starts_with("SECRET_KEY")) {
        assert!(divan.contains(line), "examples/divan.toml renders {line}");
    }
}
