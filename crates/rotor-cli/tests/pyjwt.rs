//! Interop with a client nobody here wrote: PyJWT verifies tokens `rotor jwt sign` made, using
//! the JWKS `rotor jwks` prints (HMAC: the key from `rotor keyring --reveal`), and rotor
//! verifies tokens PyJWT signed with keys exported from rotor.

mod common;

use common::Env;

const CONFIG: &str = r#"
[secrets.es]
kind = "jwt"
algorithm = "ES256"
tier = "high"
jwks_max_age = "0s"

[secrets.ed]
kind = "jwt"
algorithm = "EdDSA"
tier = "high"
jwks_max_age = "0s"

[secrets.hs]
kind = "jwt"
algorithm = "HS256"
tier = "high"
"#;

fn python() -> String {
    std::env::var("ROTOR_PYTHON").unwrap_or_else(|_| {
        panic!("ROTOR_PYTHON is not set: run scripts/test, or set ROTOR_PYTHON to a python with PyJWT[crypto]")
    })
}

fn py(script: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(python())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

const VERIFY_WITH_JWKS: &str = r#"
import json, sys, jwt
jwks, token, alg = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
kid = jwt.get_unverified_header(token)["kid"]
key = [k for k in jwks["keys"] if k["kid"] == kid][0]
claims = jwt.decode(token, jwt.PyJWK(key).key, algorithms=[alg])
print(claims["sub"])
"#;

const SIGN_WITH_PKCS8: &str = r#"
import base64, json, sys, time, jwt
from cryptography.hazmat.primitives.serialization import load_der_private_key
entry, alg = json.loads(sys.argv[1]), sys.argv[2]
der = base64.urlsafe_b64decode(entry["private_pkcs8"] + "==")
key = load_der_private_key(der, password=None)
now = int(time.time())
print(jwt.encode({"sub": "from-pyjwt", "iat": now, "exp": now + 300}, key, algorithm=alg, headers={"kid": entry["kid"]}))
"#;

const HS256_BOTH_WAYS: &str = r#"
import base64, json, sys, time, jwt
entry, token = json.loads(sys.argv[1]), sys.argv[2]
secret = base64.urlsafe_b64decode(entry["k"] + "==")
claims = jwt.decode(token, secret, algorithms=["HS256"])
assert claims["sub"] == "from-rotor", claims
now = int(time.time())
print(jwt.encode({"sub": "from-pyjwt", "iat": now, "exp": now + 300}, secret, algorithm="HS256", headers={"kid": entry["kid"]}))
"#;

fn current_entry(env: &Env, name: &str) -> serde_json::Value {
    let doc = env.rotor(&["keyring", name, "--reveal"]).ok().json();
    doc["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["stage"] == "current")
        .cloned()
        .expect("a current key")
}

#[test]
fn asymmetric_keys_both_ways() {
    let env = Env::new(CONFIG);
    env.rotor(&["rotate", "es", "ed"]).ok();
    for (name, alg) in [("es", "ES256"), ("ed", "EdDSA")] {
        let token = env
            .rotor(&["jwt", "sign", name, "--claims", r#"{"sub":"from-rotor"}"#])
            .ok()
            .stdout
            .trim()
            .to_owned();
        let jwks = env.rotor(&["jwks", name]).ok().stdout;
        assert_eq!(
            py(VERIFY_WITH_JWKS, &[&jwks, &token, alg]),
            "from-rotor",
            "{alg}"
        );

        let entry = current_entry(&env, name);
        let foreign = py(SIGN_WITH_PKCS8, &[&entry.to_string(), alg]);
        let r = env
            .rotor_stdin(&["jwt", "verify", name], Some(foreign.as_bytes()))
            .ok();
        assert!(r.stdout.contains("from-pyjwt"), "{alg}: {}", r.stdout);

        // After a rotation the JWKS holds both keys, and the old token still verifies.
        env.rotor(&["rotate", name, "--emergency", "--reason", "key leaked"])
            .ok();
        let rejected = env.rotor_stdin(&["jwt", "verify", name], Some(token.as_bytes()));
        assert_eq!(rejected.code, 1, "emergency retired the old key at once");
        assert!(rejected.stderr.contains("rejected"), "{}", rejected.stderr);
    }
}

#[test]
fn hmac_keys_both_ways_and_never_in_the_jwks() {
    let env = Env::new(CONFIG);
    env.rotor(&["rotate", "hs"]).ok();
    let jwks = env.rotor(&["jwks", "hs"]).ok().json();
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(0));
    let token = env
        .rotor(&["jwt", "sign", "hs", "--claims", r#"{"sub":"from-rotor"}"#])
        .ok()
        .stdout
        .trim()
        .to_owned();
    let entry = current_entry(&env, "hs");
    let foreign = py(HS256_BOTH_WAYS, &[&entry.to_string(), &token]);
    let r = env
        .rotor_stdin(&["jwt", "verify", "hs"], Some(foreign.as_bytes()))
        .ok();
    assert!(r.stdout.contains("from-pyjwt"), "{}", r.stdout);
}
