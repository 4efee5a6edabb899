//! A secret rotated by the reference plugin `examples/plugins/ssh-authorized-keys` against a
//! real sshd, and what a person would check about it with `ssh -i`.
#![allow(dead_code)]

use std::path::PathBuf;

use rotor_test_support::Sshd;

use super::Env;

/// `examples/plugins/ssh-authorized-keys` in this repository.
pub fn ssh_plugin() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/plugins/ssh-authorized-keys")
}

/// `[secrets.deploy_key]`: the plugin (optionally behind a wrapper argv) on `sshd`, with
/// `grace`.
pub fn ssh_config(sshd: &Sshd, grace: &str, wrapper: &[String]) -> String {
    let mut command: Vec<String> = wrapper.to_vec();
    command.push(ssh_plugin().display().to_string());
    let command = command
        .iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"
[secrets.deploy_key]
kind = "command"
command = [{command}]
timeout = "20s"
tier = "high"
grace = "{grace}"

[secrets.deploy_key.settings]
authorized_keys = {keys:?}
user = {user:?}
host = "127.0.0.1"
port = {port}
known_hosts = {known:?}
"#,
        keys = sshd.authorized_keys().display().to_string(),
        user = sshd.user(),
        port = sshd.port(),
        known = sshd.known_hosts().display().to_string(),
    )
}

/// The private key (the value) and the public key (metadata) of the version holding `stage`.
pub fn key(env: &Env, stage: &str) -> (String, String) {
    let meta = env
        .rotor(&["--format", "json", "get", "deploy_key", "--stage", stage])
        .ok()
        .json();
    let public = meta["metadata"]["public_key"]
        .as_str()
        .unwrap_or_else(|| panic!("no public_key in {meta}"))
        .to_owned();
    let private = env
        .rotor(&["get", "deploy_key", "--stage", stage, "--reveal"])
        .ok()
        .stdout;
    (private, public)
}

/// The public keys (type and base64) in the authorized_keys file, in order.
pub fn authorized(sshd: &Sshd) -> Vec<String> {
    std::fs::read_to_string(sshd.authorized_keys())
        .expect("read authorized_keys")
        .lines()
        .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        .collect()
}

/// Whether sshd lets this key in (`ssh -i`).
pub fn logs_in(sshd: &Sshd, key: &(String, String)) -> bool {
    sshd.ssh_login(&key.0).expect("ssh")
}
