//! Master key encoding, sources, key files and Argon2id derivation.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;

use rotor_seal::{
    Error, KdfParams, MASTER_KEY_ENV, MasterKey, MasterKeySource, resolve_with_env, write_key_file,
};
use secrecy::{ExposeSecret, SecretString};

/// Every rendering of the raw key bytes a leak might take.
fn leak_forms(k: &MasterKey) -> Vec<String> {
    let enc = k.encode();
    let b64 = enc
        .expose_secret()
        .strip_prefix("rotor-mk-v1:")
        .expect("encoded master key starts with rotor-mk-v1:")
        .to_owned();
    let raw = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(&b64)
            .expect("base64-decode the encoded master key")
    };
    vec![
        b64,
        hex::encode(&raw),
        hex::encode_upper(&raw),
        format!("{raw:?}"),
        format!("{:?}", &raw[..4]).trim_end_matches(']').to_owned(),
    ]
}

#[test]
fn encode_round_trip_and_trailing_newline() {
    let k = MasterKey::generate().unwrap();
    let enc = k.encode();
    assert!(enc.expose_secret().starts_with("rotor-mk-v1:"));
    assert_eq!(enc.expose_secret().len(), 12 + 44);
    let back = MasterKey::from_encoded(enc.expose_secret()).unwrap();
    assert_eq!(back.key_id(), k.key_id());
    let with_nl = format!("{}\n", enc.expose_secret());
    assert_eq!(
        MasterKey::from_encoded(&with_nl).unwrap().key_id(),
        k.key_id()
    );
    let with_crlf = format!("{}\r\n", enc.expose_secret());
    assert_eq!(
        MasterKey::from_encoded(&with_crlf).unwrap().key_id(),
        k.key_id()
    );
}

#[test]
fn key_id_is_stable_short_hex() {
    let k = MasterKey::from_encoded("rotor-mk-v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
        .unwrap();
    let id = k.key_id().to_string();
    assert_eq!(id.len(), 16);
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(id.parse::<rotor_seal::KeyId>().unwrap(), k.key_id());
    let k2 = MasterKey::generate().unwrap();
    assert_ne!(k.key_id(), k2.key_id());
}

#[test]
fn from_encoded_rejects_garbage_without_echoing_it() {
    let real = MasterKey::generate().unwrap().encode();
    let real = real.expose_secret();
    let inputs = [
        String::new(),
        "   \n".to_owned(),
        "correct horse battery staple".to_owned(),
        "rotor-mk-v1:".to_owned(),
        "rotor-mk-v1:c2hvcnQ=".to_owned(),
        format!("rotor-mk-v2:{}", &real[12..]),
        format!("{}A", real),
        format!("{}!", &real[..real.len() - 1]),
        real[12..].to_owned(),
        "rotor-mk-v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        "rotor-mk-v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA_".to_owned(),
    ];
    for input in &inputs {
        let err = MasterKey::from_encoded(input).unwrap_err();
        assert!(matches!(err, Error::BadKeyEncoding { .. }), "{err:?}");
        let shown = format!("{err} {err:?}");
        let trimmed = input.trim();
        if trimmed.len() > 12 {
            assert!(!shown.contains(trimmed), "echoed input: {shown}");
            // Not even the part after the prefix.
            if let Some(rest) = trimmed.strip_prefix("rotor-mk-v1:")
                && rest.len() >= 4
            {
                assert!(!shown.contains(rest), "echoed input: {shown}");
            }
        }
        assert!(
            shown.contains("rotor-mk-v1:"),
            "says the expected format: {shown}"
        );
    }
}

#[test]
fn debug_of_master_key_is_redacted() {
    let k = MasterKey::generate().unwrap();
    let dbg = format!("{k:?}");
    assert_eq!(dbg, format!("MasterKey(<redacted>, id={})", k.key_id()));
    for form in leak_forms(&k) {
        assert!(!dbg.contains(&form), "{dbg} contains {form}");
    }
    let src = MasterKeySource::Passphrase {
        passphrase: SecretString::from("my passphrase"),
        params: KdfParams::recommended([7; 16]),
    };
    assert!(!format!("{src:?}").contains("my passphrase"));
}

fn no_env(_: &str) -> Option<OsString> {
    None
}

#[test]
fn env_source() {
    let k = MasterKey::generate().unwrap();
    let enc = format!("{}\n", k.encode().expose_secret());
    let got = resolve_with_env(&[MasterKeySource::Env], |name| {
        (name == MASTER_KEY_ENV).then(|| OsString::from(enc.clone()))
    })
    .unwrap();
    assert_eq!(got.key_id(), k.key_id());

    let err = resolve_with_env(&[MasterKeySource::Env], |_| {
        Some(OsString::from("not-a-key-at-all"))
    })
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("ROTOR_MASTER_KEY"), "{msg}");
    assert!(!msg.contains("not-a-key-at-all"), "{msg}");

    let err = resolve_with_env(&[MasterKeySource::Env], |_| Some(OsString::new())).unwrap_err();
    assert!(matches!(err, Error::BadKeyEncoding { .. }), "{err:?}");
}

#[test]
fn missing_key_names_every_source_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let err = resolve_with_env(
        &[MasterKeySource::Env, MasterKeySource::File(path.clone())],
        no_env,
    )
    .unwrap_err();
    assert!(matches!(err, Error::NoMasterKey { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("ROTOR_MASTER_KEY (unset)"), "{msg}");
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("not found"), "{msg}");
    assert!(msg.contains("set ROTOR_MASTER_KEY"), "{msg}");
    assert!(msg.contains("--key-file FILE"), "{msg}");

    let err = resolve_with_env(&[], no_env).unwrap_err();
    assert!(matches!(err, Error::NoMasterKey { .. }));
}

#[test]
fn key_file_written_0600_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let k = MasterKey::generate().unwrap();
    write_key_file(&path, &k).unwrap();
    let meta = fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    let content = fs::read_to_string(&path).unwrap();
    assert_eq!(content, format!("{}\n", k.encode().expose_secret()));
    // No temporary file is left behind.
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    let got = MasterKeySource::File(path).load().unwrap();
    assert_eq!(got.key_id(), k.key_id());
}

#[test]
fn key_file_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let k1 = MasterKey::generate().unwrap();
    let k2 = MasterKey::generate().unwrap();
    write_key_file(&path, &k1).unwrap();
    let err = write_key_file(&path, &k2).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
    assert!(err.to_string().contains(&path.display().to_string()));
    let got = MasterKeySource::File(path.clone()).load().unwrap();
    assert_eq!(got.key_id(), k1.key_id());
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);

    // Not even an unrelated existing file or a dangling symlink.
    let other = dir.path().join("notes.txt");
    fs::write(&other, "keep me").unwrap();
    assert!(matches!(
        write_key_file(&other, &k2),
        Err(Error::AlreadyExists { .. })
    ));
    assert_eq!(fs::read_to_string(&other).unwrap(), "keep me");
    let link = dir.path().join("dangling");
    std::os::unix::fs::symlink(dir.path().join("nowhere"), &link).unwrap();
    assert!(matches!(
        write_key_file(&link, &k2),
        Err(Error::AlreadyExists { .. })
    ));
    assert!(!dir.path().join("nowhere").exists());
}

#[test]
fn key_file_refused_unless_0600_or_stricter() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let k = MasterKey::generate().unwrap();
    write_key_file(&path, &k).unwrap();

    for mode in [0o644, 0o640, 0o604, 0o660, 0o1600, 0o700] {
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        let err = MasterKeySource::File(path.clone()).load().unwrap_err();
        assert!(
            matches!(err, Error::KeyFilePermissions { mode: m, .. } if m == mode),
            "{mode:o}: {err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("chmod 600 {}", path.display())),
            "{msg}"
        );
        // Refusal is a hard error, not a fall-through to the next source.
        let passphrase = MasterKeySource::Passphrase {
            passphrase: SecretString::from("pw"),
            params: small_params([1; 16]),
        };
        assert!(
            resolve_with_env(&[MasterKeySource::File(path.clone()), passphrase], no_env).is_err()
        );
    }
    for mode in [0o600, 0o400] {
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        let got = MasterKeySource::File(path.clone()).load().unwrap();
        assert_eq!(got.key_id(), k.key_id(), "{mode:o}");
    }
    // Through a symlink, the target's mode is what counts.
    let link = dir.path().join("link.key");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    assert_eq!(
        MasterKeySource::File(link).load().unwrap().key_id(),
        k.key_id()
    );
}

#[test]
fn key_file_must_be_a_regular_file_with_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let err = MasterKeySource::File(dir.path().to_owned())
        .load()
        .unwrap_err();
    assert!(matches!(err, Error::KeyFileNotRegular { .. }), "{err:?}");

    let path = dir.path().join("bad.key");
    fs::write(&path, "secret-looking-garbage\n").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    let err = MasterKeySource::File(path.clone()).load().unwrap_err();
    assert!(matches!(err, Error::BadKeyEncoding { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(!msg.contains("secret-looking-garbage"), "{msg}");
}

fn small_params(salt: [u8; 16]) -> KdfParams {
    KdfParams {
        m_cost_kib: 64,
        t_cost: 1,
        ..KdfParams::recommended(salt)
    }
}

#[test]
fn argon2id_is_deterministic_per_salt_and_params() {
    let pw = SecretString::from("correct horse battery staple");
    let a = MasterKey::derive_from_passphrase(&pw, &small_params([1; 16])).unwrap();
    let b = MasterKey::derive_from_passphrase(&pw, &small_params([1; 16])).unwrap();
    assert_eq!(a.key_id(), b.key_id());
    assert_eq!(a.encode().expose_secret(), b.encode().expose_secret());
    let c = MasterKey::derive_from_passphrase(&pw, &small_params([2; 16])).unwrap();
    assert_ne!(a.key_id(), c.key_id());
    let more_passes = KdfParams {
        t_cost: 2,
        ..small_params([1; 16])
    };
    let d = MasterKey::derive_from_passphrase(&pw, &more_passes).unwrap();
    assert_ne!(a.key_id(), d.key_id());
    let other_pw = SecretString::from("correct horse battery staplf");
    let e = MasterKey::derive_from_passphrase(&other_pw, &small_params([1; 16])).unwrap();
    assert_ne!(a.key_id(), e.key_id());
}

#[test]
fn argon2id_matches_the_argon2_crate_directly() {
    // Guards against silently using the wrong variant/version/output length.
    let pw = SecretString::from("pw");
    let params = small_params([9; 16]);
    let k = MasterKey::derive_from_passphrase(&pw, &params).unwrap();
    let mut expected = [0u8; 32];
    argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(64, 1, 1, Some(32)).unwrap(),
    )
    .hash_password_into(b"pw", &[9; 16], &mut expected)
    .unwrap();
    let from_raw = {
        use base64::Engine as _;
        MasterKey::from_encoded(&format!(
            "rotor-mk-v1:{}",
            base64::engine::general_purpose::STANDARD.encode(expected)
        ))
        .unwrap()
    };
    assert_eq!(k.key_id(), from_raw.key_id());
}

#[test]
fn argon2id_recommended_params_work() {
    let params = KdfParams::recommended([3; 16]);
    assert_eq!(
        (params.m_cost_kib, params.t_cost, params.p_cost),
        (65536, 3, 1)
    );
    let k = MasterKey::derive_from_passphrase(&SecretString::from("pw"), &params).unwrap();
    let src = MasterKeySource::Passphrase {
        passphrase: SecretString::from("pw"),
        params,
    };
    assert_eq!(src.load().unwrap().key_id(), k.key_id());
}

#[test]
fn kdf_errors_are_clear() {
    let err = MasterKey::derive_from_passphrase(&SecretString::from(""), &small_params([0; 16]))
        .unwrap_err();
    assert!(matches!(err, Error::EmptyPassphrase));
    let bad = KdfParams {
        t_cost: 0,
        ..small_params([0; 16])
    };
    let err = MasterKey::derive_from_passphrase(&SecretString::from("pw"), &bad).unwrap_err();
    assert!(matches!(err, Error::Kdf { .. }), "{err:?}");
    assert!(!err.to_string().contains("pw "));
}

#[test]
fn kdf_params_serialize_for_storage() {
    let p = KdfParams::generate().unwrap();
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(json["alg"], "argon2id");
    assert_eq!(json["version"], 19);
    assert_eq!(json["m_cost_kib"], 65536);
    assert!(json["salt"].is_string());
    let back: KdfParams = serde_json::from_value(json).unwrap();
    assert_eq!(back, p);
    assert_ne!(KdfParams::generate().unwrap().salt, p.salt);
}
