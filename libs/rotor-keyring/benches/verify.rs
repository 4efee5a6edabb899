//! Verify-cost benchmark (run on demand: `scripts/bench-jwt` or
//! `cargo bench -p rotor-keyring --bench verify`). Not part of the test suite.
//!
//! Single thread, same token shape (~200-byte claims, kid header), side by side:
//! * keyring verify (kid lookup + pinned alg + claims checks) vs plain
//!   `jsonwebtoken::decode` with the key already chosen and equivalent validation;
//! * a token signed by the `previous` key vs one signed by `current`.
//!
//! Variants are interleaved in rounds and the median round is reported, so a noisy
//! neighbour hurts all variants alike. If `ROTOR_BENCH_OUT` is set, tokens, public
//! keys and results are written there for the PyJWT comparison.

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{DecodingKey, Validation};
use rotor_keyring::secrecy::ExposeSecret;
use rotor_keyring::{Algorithm, KeyMaterial, Keyring, KeyringDocument, Stage, VerifyOptions};
use serde_json::{Value, json};

const ISS: &str = "https://auth.example.com";
const AUD: &str = "api.example.com";
const ROUNDS: usize = 15;
const ROUND_TIME: Duration = Duration::from_millis(120);

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn claims() -> Value {
    let n = now();
    json!({
        "sub": "user-1234567890",
        "iss": ISS,
        "aud": AUD,
        "iat": n,
        "nbf": n,
        "exp": n + 3600,
        "jti": "0f8fad5b-d9cb-469f-a165-70867728950e",
        "scope": "secrets:read secrets:write keys:rotate",
        "tenant": "acme-corp",
    })
}

fn plain_key(m: &KeyMaterial) -> DecodingKey {
    match m.alg() {
        a if a.is_hmac() => {
            DecodingKey::from_secret(m.hmac_secret().expect("hmac").expose_secret()).expect("key")
        }
        Algorithm::ES256 => {
            let j = m.public_jwk().expect("jwk");
            DecodingKey::from_ec_components(j.x.as_deref().expect("x"), j.y.as_deref().expect("y"))
                .expect("key")
        }
        Algorithm::EdDSA => {
            DecodingKey::from_ed_components(m.public_jwk().expect("jwk").x.as_deref().expect("x"))
                .expect("key")
        }
        other => panic!("not benchmarked: {other}"),
    }
}

/// Runs `f` repeatedly for about `ROUND_TIME`; returns ops/s.
fn round<F: FnMut()>(iters: u64, mut f: F) -> f64 {
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    iters as f64 / start.elapsed().as_secs_f64()
}

fn calibrate<F: FnMut()>(mut f: F) -> u64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_millis(50) {
        f();
        n += 1;
    }
    ((n as f64) * ROUND_TIME.as_secs_f64() / 0.05).max(10.0) as u64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

struct Row {
    alg: Algorithm,
    keyring: f64,
    plain: f64,
    previous: f64,
    claims_len: usize,
}

fn bench(alg: Algorithm, out: Option<&std::path::Path>) -> Row {
    let current = KeyMaterial::generate(alg, None).expect("gen");
    let previous = KeyMaterial::generate(alg, None).expect("gen");
    let pending = KeyMaterial::generate(alg, None).expect("gen");
    let doc = KeyringDocument::new()
        .with(pending, Stage::Pending, None)
        .with(current.clone(), Stage::Current, None)
        .with(previous.clone(), Stage::Previous, None);
    let opts = VerifyOptions::default()
        .with_issuers([ISS])
        .with_audiences([AUD]);
    let ring = Keyring::from_document(&doc)
        .expect("ring")
        .with_options(opts);
    let c = claims();
    let claims_len = c.to_string().len();
    let t_cur = ring.sign(&c).expect("sign");
    let t_prev =
        Keyring::from_document(&KeyringDocument::new().with(previous, Stage::Current, None))
            .expect("ring")
            .sign(&c)
            .expect("sign");
    assert_eq!(ring.verify(&t_prev).expect("prev").stage, Stage::Previous);
    ring.verify(&t_cur).expect("cur");

    let key = plain_key(&current);
    let mut validation = Validation::new(alg_jwt(alg));
    validation.set_issuer(&[ISS]);
    validation.set_audience(&[AUD]);
    validation.validate_nbf = true;
    jsonwebtoken::decode::<Value>(&t_cur, &key, &validation).expect("plain decode");

    let n_ring = calibrate(|| {
        black_box(ring.verify(black_box(&t_cur)).is_ok());
    });
    let n_plain = calibrate(|| {
        black_box(jsonwebtoken::decode::<Value>(black_box(&t_cur), &key, &validation).is_ok());
    });
    let (mut a, mut b, mut p) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        a.push(round(n_ring, || {
            black_box(ring.verify(black_box(&t_cur)).is_ok());
        }));
        b.push(round(n_plain, || {
            black_box(jsonwebtoken::decode::<Value>(black_box(&t_cur), &key, &validation).is_ok());
        }));
        p.push(round(n_ring, || {
            black_box(ring.verify(black_box(&t_prev)).is_ok());
        }));
    }
    let row = Row {
        alg,
        keyring: median(a),
        plain: median(b),
        previous: median(p),
        claims_len,
    };

    if let Some(dir) = out {
        let name = alg.as_str();
        std::fs::write(dir.join(format!("{name}.token")), &t_cur).expect("write");
        let key_out = if alg.is_hmac() {
            current
                .hmac_secret()
                .expect("s")
                .expose_secret()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        } else {
            serde_json::to_string(current.public_jwk().expect("jwk")).expect("json")
        };
        std::fs::write(dir.join(format!("{name}.key")), key_out).expect("write");
    }
    row
}

fn alg_jwt(a: Algorithm) -> jsonwebtoken::Algorithm {
    match a {
        Algorithm::HS256 => jsonwebtoken::Algorithm::HS256,
        Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
        Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        other => panic!("not benchmarked: {other}"),
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing useful.
    // Either way we just run.
    let out = std::env::var_os("ROTOR_BENCH_OUT").map(std::path::PathBuf::from);
    if let Some(d) = &out {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    println!(
        "rotor-keyring verify benchmark (single thread, median of {ROUNDS} interleaved rounds)"
    );
    println!(
        "{:<6} {:>14} {:>16} {:>10} {:>14} {:>11} {:>7}",
        "alg",
        "keyring op/s",
        "jsonwebtoken op/s",
        "ring/jwt",
        "previous op/s",
        "prev/cur",
        "claims"
    );
    let mut results = serde_json::Map::new();
    for alg in [Algorithm::HS256, Algorithm::ES256, Algorithm::EdDSA] {
        let r = bench(alg, out.as_deref());
        // prev/cur as a cost ratio: time(previous) / time(current) = ops(cur) / ops(prev).
        let cost_ratio = r.keyring / r.previous;
        println!(
            "{:<6} {:>14.0} {:>16.0} {:>9.3}x {:>14.0} {:>10.3}x {:>6}B",
            r.alg.as_str(),
            r.keyring,
            r.plain,
            r.keyring / r.plain,
            r.previous,
            cost_ratio,
            r.claims_len
        );
        results.insert(
            r.alg.as_str().into(),
            json!({"keyring": r.keyring, "jsonwebtoken": r.plain, "previous": r.previous}),
        );
    }
    println!("ring/jwt: keyring throughput relative to plain jsonwebtoken::decode (target >= 0.9)");
    println!(
        "prev/cur: cost of a previous-key token relative to a current-key token (target <= 1.05)"
    );
    if let Some(d) = &out {
        std::fs::write(d.join("rust.json"), Value::Object(results).to_string()).expect("write");
    }
}
