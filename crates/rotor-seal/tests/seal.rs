//! Behavioural tests of sealing, opening, rewrapping and the key check.

use rotor_seal::{Aad, Error, KeyCheck, MasterKey, Sealed, open, open_any, rewrap, seal};
use secrecy::ExposeSecret;

fn key() -> MasterKey {
    MasterKey::generate().expect("generate master key")
}

const AAD: Aad<'static> = Aad::new("prod/db/password", "0194f0b8-7d2e-7c1a-9b3e-1f2a3b4c5d6e");

#[test]
fn round_trip() {
    let k = key();
    for pt in [&b""[..], b"x", b"hunter2", &[0u8; 10_000]] {
        let s = seal(&k, &AAD, pt).unwrap();
        assert_eq!(s.key_id, k.key_id());
        assert_eq!(s.ciphertext.len(), pt.len() + 16);
        assert_eq!(open(&k, &AAD, &s).unwrap().expose_secret(), pt);
    }
}

#[test]
fn sealing_twice_gives_different_records() {
    let k = key();
    let a = seal(&k, &AAD, b"same").unwrap();
    let b = seal(&k, &AAD, b"same").unwrap();
    assert_ne!(a.wrapped_dek, b.wrapped_dek);
    assert_ne!(a.ciphertext, b.ciphertext);
}

#[test]
fn wrong_key_is_detected_by_id() {
    let (k1, k2) = (key(), key());
    let s = seal(&k1, &AAD, b"v").unwrap();
    match open(&k2, &AAD, &s) {
        Err(Error::WrongMasterKey {
            expected_key_id,
            got_key_id,
        }) => {
            assert_eq!(expected_key_id, k1.key_id());
            assert_eq!(got_key_id, k2.key_id());
        }
        other => panic!("expected WrongMasterKey, got {other:?}"),
    }
    let msg = open(&k2, &AAD, &s).unwrap_err().to_string();
    assert!(msg.contains(&k1.key_id().to_string()), "{msg}");
    assert!(msg.contains(&k2.key_id().to_string()), "{msg}");
}

#[test]
fn wrong_key_with_forged_id_fails_authentication() {
    let (k1, k2) = (key(), key());
    let mut s = seal(&k1, &AAD, b"v").unwrap();
    s.key_id = k2.key_id();
    assert!(matches!(open(&k2, &AAD, &s), Err(Error::Tampered)));
}

#[test]
fn swapped_aad_fails() {
    let k = key();
    let s = seal(&k, &AAD, b"v").unwrap();
    for aad in [
        Aad::new("prod/db/passwore", AAD.version_id),
        Aad::new("prod/db/password ", AAD.version_id),
        Aad::new(AAD.secret, "0194f0b8-7d2e-7c1a-9b3e-1f2a3b4c5d6f"),
        Aad::new(AAD.version_id, AAD.secret),
        Aad::new("", ""),
    ] {
        assert!(
            matches!(open(&k, &aad, &s), Err(Error::Tampered)),
            "{aad:?}"
        );
    }
}

#[test]
fn aad_encoding_is_unambiguous() {
    let k = key();
    let s = seal(&k, &Aad::new("a/b", "c"), b"v").unwrap();
    assert!(matches!(
        open(&k, &Aad::new("a", "b/c"), &s),
        Err(Error::Tampered)
    ));
    assert!(matches!(
        open(&k, &Aad::new("a/bc", ""), &s),
        Err(Error::Tampered)
    ));
}

#[test]
fn every_byte_flip_fails() {
    let k = key();
    let s = seal(&k, &AAD, b"some secret value").unwrap();
    for field in 0..3 {
        let len = match field {
            0 => s.wrapped_dek.len(),
            1 => s.nonce.len(),
            _ => s.ciphertext.len(),
        };
        for i in 0..len {
            let mut t = s.clone();
            let buf = match field {
                0 => &mut t.wrapped_dek,
                1 => &mut t.nonce,
                _ => &mut t.ciphertext,
            };
            buf[i] ^= 0x01;
            assert!(
                matches!(open(&k, &AAD, &t), Err(Error::Tampered)),
                "field {field} byte {i}"
            );
        }
    }
}

#[test]
fn truncated_or_extended_fields_fail() {
    let k = key();
    let s = seal(&k, &AAD, b"value").unwrap();
    let mut t = s.clone();
    t.ciphertext.pop();
    assert!(open(&k, &AAD, &t).is_err());
    let mut t = s.clone();
    t.ciphertext.push(0);
    assert!(open(&k, &AAD, &t).is_err());
    let mut t = s.clone();
    t.wrapped_dek.pop();
    assert!(matches!(open(&k, &AAD, &t), Err(Error::Malformed { .. })));
    let mut t = s;
    t.nonce.push(0);
    assert!(matches!(open(&k, &AAD, &t), Err(Error::Malformed { .. })));
}

#[test]
fn wrapped_dek_swapped_between_records_fails() {
    let k = key();
    let other = Aad::new("prod/api/token", AAD.version_id);
    let a = seal(&k, &AAD, b"value a").unwrap();
    let b = seal(&k, &other, b"value b").unwrap();
    // Swap the wrapped keys between rows.
    let mut a2 = a.clone();
    a2.wrapped_dek.clone_from(&b.wrapped_dek);
    assert!(matches!(open(&k, &AAD, &a2), Err(Error::Tampered)));
    let mut b2 = b.clone();
    b2.wrapped_dek.clone_from(&a.wrapped_dek);
    assert!(matches!(open(&k, &other, &b2), Err(Error::Tampered)));
    // Even between two records of the same row: the DEK no longer matches.
    let c = seal(&k, &AAD, b"value c").unwrap();
    let mut a3 = a.clone();
    a3.wrapped_dek.clone_from(&c.wrapped_dek);
    assert!(matches!(open(&k, &AAD, &a3), Err(Error::Tampered)));
    // A whole record copied onto another row fails too.
    assert!(matches!(open(&k, &other, &a), Err(Error::Tampered)));
}

#[test]
fn rewrap_round_trip_and_old_key_no_longer_opens() {
    let (old, new) = (key(), key());
    let s = seal(&old, &AAD, b"rotate me").unwrap();
    let r = rewrap(&old, &new, &AAD, &s).unwrap();
    assert_eq!(r.key_id, new.key_id());
    assert_eq!(r.ciphertext, s.ciphertext, "value ciphertext is kept");
    assert_eq!(r.nonce, s.nonce);
    assert_ne!(r.wrapped_dek, s.wrapped_dek);
    assert_eq!(open(&new, &AAD, &r).unwrap().expose_secret(), b"rotate me");
    assert!(matches!(
        open(&old, &AAD, &r),
        Err(Error::WrongMasterKey { .. })
    ));
    // Old key with the id forged back still cannot open it.
    let mut forged = r.clone();
    forged.key_id = old.key_id();
    assert!(matches!(open(&old, &AAD, &forged), Err(Error::Tampered)));
    // The original record still opens with the old key (crash before commit).
    assert_eq!(open(&old, &AAD, &s).unwrap().expose_secret(), b"rotate me");
}

#[test]
fn rewrap_is_idempotent_and_checks_binding() {
    let (old, new, stranger) = (key(), key(), key());
    let s = seal(&old, &AAD, b"v").unwrap();
    let r = rewrap(&old, &new, &AAD, &s).unwrap();
    assert_eq!(rewrap(&old, &new, &AAD, &r).unwrap(), r);
    assert!(matches!(
        rewrap(&stranger, &new, &AAD, &s),
        Err(Error::WrongMasterKey { .. })
    ));
    let other = Aad::new("other", "v1");
    assert!(matches!(
        rewrap(&old, &new, &other, &s),
        Err(Error::Tampered)
    ));
    assert!(matches!(
        rewrap(&old, &new, &other, &r),
        Err(Error::Tampered)
    ));
}

#[test]
fn open_any_serves_rows_under_either_key() {
    let (old, new) = (key(), key());
    let a = seal(&old, &AAD, b"a").unwrap();
    let b = rewrap(&old, &new, &AAD, &seal(&old, &AAD, b"b").unwrap()).unwrap();
    let keys = [&old, &new];
    assert_eq!(open_any(&keys, &AAD, &a).unwrap().expose_secret(), b"a");
    assert_eq!(open_any(&keys, &AAD, &b).unwrap().expose_secret(), b"b");
    assert!(matches!(
        open_any(&[&new], &AAD, &a),
        Err(Error::WrongMasterKey { .. })
    ));
    assert!(matches!(
        open_any(&[], &AAD, &a),
        Err(Error::NoMasterKey { .. })
    ));
}

#[test]
fn key_check_accepts_right_key_and_refuses_wrong_one() {
    let (k1, k2) = (key(), key());
    let check = KeyCheck::new(&k1).unwrap();
    check.verify(&k1).unwrap();
    assert_eq!(check.key_id(), k1.key_id());
    let err = check.verify(&k2).unwrap_err();
    assert!(matches!(err, Error::WrongMasterKey { .. }), "{err:?}");
    assert!(err.to_string().contains("wrong master key"));
    // Survives storage.
    let back = KeyCheck::from_bytes(&check.to_bytes()).unwrap();
    back.verify(&k1).unwrap();
    let json = serde_json::to_string(&check).unwrap();
    let back: KeyCheck = serde_json::from_str(&json).unwrap();
    back.verify(&k1).unwrap();
    // A tampered check record is refused.
    let mut bytes = check.to_bytes();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x80;
    assert!(KeyCheck::from_bytes(&bytes).unwrap().verify(&k1).is_err());
}

#[test]
fn key_check_is_not_a_secret_row() {
    // A key-check record cannot be passed off as the value of a secret named
    // "rotor/keycheck", nor the other way round.
    let k = key();
    let check = KeyCheck::new(&k).unwrap();
    let sealed = Sealed::from_bytes(&check.to_bytes()).unwrap();
    assert!(matches!(
        open(&k, &Aad::new("rotor/keycheck", ""), &sealed),
        Err(Error::Tampered)
    ));
    let row = seal(
        &k,
        &Aad::new("rotor/keycheck", ""),
        b"rotor master key check v1",
    )
    .unwrap();
    let fake = KeyCheck::from_bytes(&row.to_bytes()).unwrap();
    assert!(fake.verify(&k).is_err());
}

#[test]
fn sealed_bytes_and_serde_round_trip() {
    let k = key();
    let s = seal(&k, &AAD, b"persist me").unwrap();
    let bytes = s.to_bytes();
    assert_eq!(bytes.len(), 85 + 10 + 16);
    assert_eq!(&bytes[..4], b"RSL\x01");
    let back = Sealed::from_bytes(&bytes).unwrap();
    assert_eq!(back, s);
    assert_eq!(
        open(&k, &AAD, &back).unwrap().expose_secret(),
        b"persist me"
    );

    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["alg"], "A256GCM");
    assert_eq!(json["key_id"], k.key_id().to_string());
    let back: Sealed = serde_json::from_value(json).unwrap();
    assert_eq!(back, s);

    assert!(matches!(
        Sealed::from_bytes(b"garbage"),
        Err(Error::Malformed { .. })
    ));
    let mut bad_magic = bytes.clone();
    bad_magic[0] = b'X';
    assert!(matches!(
        Sealed::from_bytes(&bad_magic),
        Err(Error::Malformed { .. })
    ));
    let mut bad_alg = bytes;
    bad_alg[4] = 9;
    assert!(matches!(
        Sealed::from_bytes(&bad_alg),
        Err(Error::Malformed { .. })
    ));
}

#[test]
fn opened_bytes_are_redacted_in_debug() {
    let k = key();
    let s = seal(&k, &AAD, b"hunter2-very-secret").unwrap();
    let opened = open(&k, &AAD, &s).unwrap();
    let dbg = format!("{opened:?}");
    assert!(!dbg.contains("hunter2"), "{dbg}");
    assert!(!dbg.contains("104"), "{dbg}"); // 'h' as a decimal byte
    assert_eq!(dbg, "SecretBytes(<redacted>, len=19)");
    assert_eq!(
        opened.to_secret_string().unwrap().expose_secret(),
        "hunter2-very-secret"
    );
    // Debug of the sealed record shows no ciphertext either (just lengths).
    let dbg = format!("{s:?}");
    assert!(dbg.contains("ciphertext_len"), "{dbg}");
}
