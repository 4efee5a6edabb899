//! Interop with PyJWT (the library the Python services this replaces use).
//!
//! Needs `ROTOR_PYTHON` pointing at a Python with `pyjwt[crypto]`; `scripts/test` sets it
//! up. Without it this test FAILS on purpose: a silently skipped interop test is how
//! interop breaks unnoticed.

use std::path::{Path, PathBuf};
use std::process::Command;

use rotor_keyring::secrecy::ExposeSecret;
use rotor_keyring::{Algorithm, KeyMaterial, Keyring, KeyringDocument, Stage};
use serde_json::{Value, json};

fn python() -> PathBuf {
    let Some(p) = std::env::var_os("ROTOR_PYTHON") else {
        panic!(
            "ROTOR_PYTHON is not set: run scripts/test, or set ROTOR_PYTHON to a python with PyJWT[crypto] \
             (e.g. python3 -m venv /work/venv-keyring && /work/venv-keyring/bin/pip install 'pyjwt[crypto]')"
        );
    };
    let p = PathBuf::from(p);
    let out = Command::new(&p)
        .args(["-c", "import jwt, cryptography; print(jwt.__version__)"])
        .output()
        .unwrap_or_else(|e| panic!("ROTOR_PYTHON={} cannot be run: {e}", p.display()));
    assert!(
        out.status.success(),
        "ROTOR_PYTHON={} lacks PyJWT[crypto]: {}",
        p.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    p
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/interop.py")
}

fn run(py: &Path, args: &[&str]) -> String {
    let out = Command::new(py)
        .arg(script())
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_owned()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

#[test]
fn pyjwt_interop_hs256_es256_eddsa() {
    let py = python();
    let dir = tempfile::tempdir().expect("tmp");
    for alg in [Algorithm::HS256, Algorithm::ES256, Algorithm::EdDSA] {
        let current = KeyMaterial::generate(alg, None).expect("gen");
        let previous = KeyMaterial::generate(alg, None).expect("gen");
        let doc = KeyringDocument::new()
            .with(current.clone(), Stage::Current, None)
            .with(previous.clone(), Stage::Previous, None);
        let ring = Keyring::from_document(&doc).expect("ring");
        let claims = json!({"sub": "interop", "alg_under_test": alg.as_str(), "exp": now() + 300, "iat": now()});

        // 1. keyring signs, PyJWT verifies (JWKS for asymmetric, raw secret for HS256).
        let token = ring.sign(&claims).expect("sign");
        let keyfile = dir.path().join(format!("{alg}-verify"));
        if alg.is_hmac() {
            let hex: String = current
                .hmac_secret()
                .expect("secret")
                .expose_secret()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            std::fs::write(&keyfile, hex).expect("write");
        } else {
            std::fs::write(&keyfile, ring.jwks().to_json()).expect("write");
        }
        let decoded: Value = serde_json::from_str(&run(
            &py,
            &["verify", alg.as_str(), keyfile.to_str().expect("p"), &token],
        ))
        .expect("json");
        assert_eq!(
            decoded, claims,
            "PyJWT decoded what the keyring signed ({alg})"
        );

        // 2. PyJWT signs with the *previous* key's exported material, keyring verifies.
        let signfile = dir.path().join(format!("{alg}-sign"));
        if alg.is_hmac() {
            let hex: String = previous
                .hmac_secret()
                .expect("secret")
                .expose_secret()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            std::fs::write(&signfile, hex).expect("write");
        } else {
            let pem = previous.private_key_pem().expect("pem");
            std::fs::write(&signfile, pem.expose_secret()).expect("write");
        }
        let claims2 = json!({"sub": "from-python", "exp": now() + 300});
        let py_token = run(
            &py,
            &[
                "sign",
                alg.as_str(),
                signfile.to_str().expect("p"),
                previous.kid(),
                &claims2.to_string(),
            ],
        );
        let c = ring
            .verify(&py_token)
            .expect("keyring verifies PyJWT token");
        assert_eq!(Value::Object(c.claims), claims2);
        assert_eq!(c.kid.as_deref(), Some(previous.kid()));
        assert_eq!(c.stage, Stage::Previous);

        // 3. A PyJWT token for the right kid but signed with another key is rejected.
        let other = KeyMaterial::generate(alg, None).expect("gen");
        if alg.is_hmac() {
            let hex: String = other
                .hmac_secret()
                .expect("s")
                .expose_secret()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            std::fs::write(&signfile, hex).expect("write");
        } else {
            std::fs::write(
                &signfile,
                other.private_key_pem().expect("pem").expose_secret(),
            )
            .expect("write");
        }
        let forged = run(
            &py,
            &[
                "sign",
                alg.as_str(),
                signfile.to_str().expect("p"),
                current.kid(),
                &claims2.to_string(),
            ],
        );
        assert!(
            ring.verify(&forged).is_err(),
            "{alg}: foreign key must not verify"
        );
    }
}
