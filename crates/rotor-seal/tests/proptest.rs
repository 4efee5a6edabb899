//! Property tests: random plaintexts round-trip; any single-byte corruption of
//! a stored record never opens.

use std::sync::OnceLock;

use proptest::prelude::*;
use rotor_seal::{Aad, MasterKey, Sealed, open, seal};

fn key() -> &'static MasterKey {
    static KEY: OnceLock<MasterKey> = OnceLock::new();
    KEY.get_or_init(|| MasterKey::generate().expect("generate master key"))
}

proptest! {
    #[test]
    fn random_plaintexts_round_trip(
        pt in proptest::collection::vec(any::<u8>(), 0..2048),
        secret in "[a-z/]{1,32}",
        version in "[0-9a-f-]{0,36}",
    ) {
        let aad = Aad::new(&secret, &version);
        let s = seal(key(), &aad, &pt).unwrap();
        let back = Sealed::from_bytes(&s.to_bytes()).unwrap();
        let opened = open(key(), &aad, &back).unwrap();
        prop_assert_eq!(opened.expose_secret(), &pt[..]);
    }

    #[test]
    fn single_byte_corruption_never_opens(
        pt in proptest::collection::vec(any::<u8>(), 0..256),
        pos in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let aad = Aad::new("svc/token", "v1");
        let mut bytes = seal(key(), &aad, &pt).unwrap().to_bytes();
        let i = pos.index(bytes.len());
        bytes[i] ^= flip;
        let opened = Sealed::from_bytes(&bytes).and_then(|s| open(key(), &aad, &s));
        prop_assert!(opened.is_err(), "corruption at byte {} opened", i);
    }
}
