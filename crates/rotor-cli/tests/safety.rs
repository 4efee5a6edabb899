//! Secrets are radioactive: known values never appear in the store file, the audit log, any
//! command output other than `--reveal`, or debug logging. And concurrent writers never
//! corrupt stages.

mod common;

use std::process::Stdio;

use common::{CONFIG, Env, files};

#[test]
fn known_values_never_leak() {
    let env = Env::new(CONFIG);
    let manual = "SG.KNOWN-MANUAL-VALUE-6f1c2d9e8a7b";
    let manual2 = "SG.SECOND-KNOWN-VALUE-0a9b8c7d6e";
    env.rotor_stdin(
        &["-vv", "put", "sendgrid", "--reason", "scan test"],
        Some(manual.as_bytes()),
    )
    .ok();
    env.rotor_stdin(&["-vv", "put", "sendgrid"], Some(manual2.as_bytes()))
        .ok();
    env.rotor(&["-vv", "rotate", "session", "jwt", "quick"])
        .ok();
    env.rotor(&["-vv", "rotate", "quick"]).ok();

    // The generated values, learned only through --reveal.
    let mut known = vec![manual.to_owned(), manual2.to_owned()];
    for (name, stage) in [
        ("session", "current"),
        ("quick", "current"),
        ("quick", "previous"),
    ] {
        let v = env.rotor(&["get", name, "--stage", stage, "--reveal"]);
        if v.code == 0 {
            known.push(v.stdout.trim_end().to_owned());
        }
    }
    // The JWT private key's base64url DER from the keyring document.
    let doc = env.rotor(&["keyring", "jwt", "--reveal"]).ok().json();
    let pkcs8 = doc["keys"][0]["private_pkcs8"]
        .as_str()
        .expect("private key")
        .to_owned();
    known.push(pkcs8[..40].to_owned());

    let mut outputs = Vec::new();
    for args in [
        vec!["-vv", "status"],
        vec!["--format", "json", "status"],
        vec!["history", "sendgrid"],
        vec!["--format", "json", "history", "session"],
        vec!["--format", "json", "history", "jwt"],
        vec!["audit", "tail", "-n", "100"],
        vec!["--format", "json", "audit", "tail", "-n", "100"],
        vec!["get", "sendgrid"],
        vec!["--format", "json", "get", "session"],
        vec!["jwks", "jwt"],
        vec!["plan", "--days", "400"],
        vec!["-vv", "rotate", "session", "--dry-run"],
    ] {
        let r = env.rotor(&args);
        outputs.push((args.join(" "), format!("{}\n{}", r.stdout, r.stderr)));
    }
    // A bad put: the error must not echo the value.
    let bad = env.rotor_stdin(&["put", "jwt"], Some(manual.as_bytes()));
    assert_eq!(bad.code, 1);
    outputs.push((
        "put jwt (bad)".into(),
        format!("{}\n{}", bad.stdout, bad.stderr),
    ));

    for value in &known {
        assert!(value.len() >= 16, "a meaningful needle");
        for (what, out) in &outputs {
            assert!(!out.contains(value.as_str()), "value leaked in `{what}`");
        }
        for file in files(env.dir.path()) {
            let bytes = std::fs::read(&file).expect("read");
            let hay = String::from_utf8_lossy(&bytes);
            assert!(
                !hay.contains(value.as_str()),
                "value found in {}",
                file.display()
            );
        }
    }
    // The debug log did say something (so the scan above was not vacuous).
    assert!(outputs[0].1.contains("status") || !outputs[0].1.is_empty());
}

#[test]
fn values_are_never_taken_as_arguments() {
    let env = Env::new(CONFIG);
    let r = env.rotor(&["put", "sendgrid", "SG.value-on-argv"]);
    assert_eq!(r.code, 2, "clap refuses a positional value: {}", r.stderr);
}

#[test]
fn concurrent_puts_from_two_processes_keep_stages_sound() {
    let env = Env::new(CONFIG);
    let per_process = 25;
    let workers: Vec<_> = (0..2)
        .map(|w| {
            let mut script = String::new();
            for i in 0..per_process {
                script.push_str(&format!(
                    "printf 'value-{w}-{i}-padding-padding' | \"$ROTOR\" put sendgrid >/dev/null 2>>\"$ERR\"; echo $? >> \"$CODES\"\n"
                ));
            }
            let codes = env.path(&format!("codes-{w}"));
            let err = env.path(&format!("err-{w}"));
            let mut c = std::process::Command::new("bash");
            c.arg("-c")
                .arg(script)
                .env("ROTOR", env!("CARGO_BIN_EXE_rotor"))
                .env("ROTOR_CONFIG", env.path("rotor.toml"))
                .env("CODES", &codes)
                .env("ERR", &err)
                .stdout(Stdio::null());
            (c.spawn().expect("spawn"), codes, err)
        })
        .collect();
    let mut ok = 0;
    for (mut child, codes, err) in workers {
        assert!(child.wait().expect("wait").success());
        let codes = std::fs::read_to_string(&codes).expect("codes");
        let errors = std::fs::read_to_string(&err).unwrap_or_default();
        for code in codes.lines() {
            match code {
                "0" => ok += 1,
                "4" => assert!(
                    errors.contains("busy") || errors.contains("locked"),
                    "{errors}"
                ),
                other => panic!("unexpected exit {other}: {errors}"),
            }
        }
    }
    assert!(ok > 0);
    let h = env.history("sendgrid");
    let versions = h["versions"].as_array().expect("versions");
    assert_eq!(versions.len(), ok, "one version per successful put");
    assert_eq!(env.holders("sendgrid", "current").len(), 1);
    assert_eq!(env.holders("sendgrid", "previous").len(), 1);
    // The current is the newest version.
    assert_eq!(
        env.holders("sendgrid", "current")[0],
        versions[0]["id"].as_str().expect("id")
    );
    env.audit_verifies();
}
