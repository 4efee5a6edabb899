//! Arbitrary bytes as JWKS / keyring document / key material: must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rotor_keyring::{Jwks, KeyMaterial, Keyring, KeyringDocument};

fuzz_target!(|data: &[u8]| {
    if let Ok(jwks) = Jwks::from_slice(data) {
        let _ = Keyring::from_jwks(&jwks);
        let _ = jwks.to_json();
    }
    let _ = Keyring::from_slice(data);
    if let Ok(doc) = KeyringDocument::from_slice(data) {
        let _ = Keyring::from_document(&doc);
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = KeyMaterial::from_json(s);
    }
});
