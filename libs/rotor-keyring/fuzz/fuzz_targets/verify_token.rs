//! Arbitrary tokens against a keyring holding one key of each kind: must never panic
//! and never verify.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rotor_keyring::{Algorithm, KeyMaterial, Keyring, KeyringDocument, Stage};

fn ring() -> &'static Keyring {
    static RING: OnceLock<Keyring> = OnceLock::new();
    RING.get_or_init(|| {
        let mut doc = KeyringDocument::new();
        for (i, alg) in [Algorithm::HS256, Algorithm::ES256, Algorithm::EdDSA]
            .into_iter()
            .enumerate()
        {
            let stage = if i == 0 { Stage::Current } else { Stage::Previous };
            doc = doc.with(KeyMaterial::generate(alg, None).expect("keygen"), stage, None);
        }
        Keyring::from_document(&doc).expect("keyring")
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        assert!(ring().verify(token).is_err());
        assert!(ring().verify_jws(token).is_err());
    }
});
