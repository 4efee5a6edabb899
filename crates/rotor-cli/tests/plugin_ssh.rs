//! The second reference command plugin end to end: the `rotor` binary rotates an SSH key pair
//! through `examples/plugins/ssh-authorized-keys` against a real OpenSSH sshd (run as the
//! current user on a loopback port), and a real `ssh -i` judges: the new key logs in, the old
//! key still logs in during grace, and is refused after `rotor retire`.

mod common;

use common::Env;
use common::ssh::{authorized, key, logs_in, ssh_config};
use rotor_test_support::Sshd;

#[test]
fn ssh_key_rotates_with_grace_and_retire() {
    let sshd = Sshd::start().expect("sshd (run scripts/install-deps)");
    let env = Env::new(&ssh_config(&sshd, "3s", &[]));

    // First rotation: a new ed25519 key, the one line in the file.
    let first = env.rotor(&["-v", "rotate", "deploy_key"]).ok();
    let k1 = key(&env, "current");
    assert!(
        k1.0.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"),
        "the value is the private key"
    );
    assert!(k1.1.starts_with("ssh-ed25519 "), "{}", k1.1);
    assert!(logs_in(&sshd, &k1), "the new key logs in");
    assert_eq!(authorized(&sshd), [k1.1.as_str()]);

    // Second rotation: the new key is added next to the old one; both log in during grace.
    let second = env.rotor(&["-v", "rotate", "deploy_key"]).ok();
    let k2 = key(&env, "current");
    assert_ne!(k2, k1);
    assert_eq!(key(&env, "previous"), k1, "the old key is previous");
    assert!(logs_in(&sshd, &k2), "the new key logs in");
    assert!(logs_in(&sshd, &k1), "the old key logs in during grace");
    assert_eq!(authorized(&sshd), [k1.1.as_str(), k2.1.as_str()]);
    assert_eq!(env.history("deploy_key")["rotations"][0]["status"], "grace");

    // After grace, retire removes the old key and the plugin proves sshd refuses it.
    std::thread::sleep(std::time::Duration::from_millis(3200));
    let retired = env.rotor(&["-v", "retire", "--due"]).ok();
    assert!(!logs_in(&sshd, &k1), "the old key is refused after retire");
    assert!(logs_in(&sshd, &k2), "the new key still logs in");
    assert_eq!(authorized(&sshd), [k2.1.as_str()]);
    assert_eq!(
        env.history("deploy_key")["rotations"][0]["status"],
        "completed"
    );

    // The plugin logged in with a real ssh client at test and proved the refusal at retire.
    let logged = format!("{}{}{}", first.stderr, second.stderr, retired.stderr);
    assert!(logged.contains("logged in as"), "{logged}");
    assert!(logged.contains("now refused"), "{logged}");
    // No private key in rotor's output, the audit or the authorized_keys file.
    let audit = env
        .rotor(&["--format", "json", "audit", "tail", "-n", "100"])
        .ok()
        .stdout;
    let file = std::fs::read_to_string(sshd.authorized_keys()).expect("authorized_keys");
    for k in [&k1, &k2] {
        let body = k.0.lines().nth(1).expect("a key body line");
        assert!(!logged.contains(body), "a private key in rotor's log");
        assert!(!audit.contains(body), "a private key in the audit");
        assert!(!file.contains(body), "a private key in authorized_keys");
    }
    env.audit_verifies();
}

#[test]
fn other_keys_in_the_file_are_left_alone_and_rollback_removes_the_new_key() {
    let sshd = Sshd::start().expect("sshd (run scripts/install-deps)");
    // Someone else's key (and a comment) in the same file: rotor must never touch them.
    let theirs = "# ops team\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ops@example\n";
    std::fs::write(sshd.authorized_keys(), theirs).expect("write authorized_keys");
    let env = Env::new(&ssh_config(&sshd, "1h", &[]));
    env.rotor(&["rotate", "deploy_key"]).ok();
    let k1 = key(&env, "current");
    let text = std::fs::read_to_string(sshd.authorized_keys()).expect("read");
    assert!(text.starts_with(theirs), "{text}");

    // A rotation that fails at `test` (sshd lets nobody in: AllowUsers of another account is
    // simulated by pointing the plugin at a user sshd refuses) is rolled back: the new key
    // leaves the file, the current one stays.
    let mut config = ssh_config(&sshd, "1h", &[]);
    config = config.replace(
        &format!("user = {:?}", sshd.user()),
        "user = \"rotor-nobody\"",
    );
    std::fs::write(env.path("rotor.toml"), config).expect("rewrite config");
    let r = env.rotor(&["rotate", "deploy_key"]);
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(
        r.stderr.contains("sshd refused the key"),
        "stdout: {}\nstderr: {}",
        r.stdout,
        r.stderr
    );
    assert_eq!(key(&env, "current"), k1, "current untouched");
    assert!(env.holders("deploy_key", "pending").is_empty());
    let text = std::fs::read_to_string(sshd.authorized_keys()).expect("read");
    assert!(text.starts_with(theirs), "{text}");
    assert_eq!(
        authorized(&sshd)[2..],
        [k1.1.as_str()],
        "only current is left"
    );
    assert!(logs_in(&sshd, &k1), "the current key still logs in");
}

#[test]
fn probe_checks_the_file_and_sshd() {
    let sshd = Sshd::start().expect("sshd (run scripts/install-deps)");
    let env = Env::new(&ssh_config(&sshd, "1h", &[]));
    env.rotor(&["rotate", "deploy_key"]).ok();
    let ok = env.rotor(&["probe", "deploy_key"]).ok();
    assert!(ok.stdout.contains("deploy_key: ok"), "{}", ok.stdout);
    assert!(
        ok.stdout.contains("ok: sshd reachable at 127.0.0.1:"),
        "{}",
        ok.stdout
    );
    assert!(ok.stdout.contains("is writable"), "{}", ok.stdout);
    assert!(ok.stdout.contains("logs in as"), "{}", ok.stdout);

    // Someone removed the key from the file: the current key is refused.
    std::fs::write(sshd.authorized_keys(), "").expect("empty authorized_keys");
    let r = env.rotor(&["probe", "deploy_key"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout.contains("sshd refuses the current key"),
        "{}",
        r.stdout
    );

    // sshd is down: unreachable, transient.
    let port = sshd.port();
    drop(sshd);
    let r = env.rotor(&["probe", "deploy_key"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout
            .contains(&format!("cannot reach sshd at 127.0.0.1:{port}")),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("exit 75, transient"), "{}", r.stdout);
}
