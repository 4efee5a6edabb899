//! A secret rotated by the reference plugin `examples/plugins/nginx-htpasswd` against a real
//! nginx, and what a person would check about it with curl.
#![allow(dead_code)]

use std::path::PathBuf;

use rotor_test_support::Nginx;

use super::Env;

/// `examples/plugins/nginx-htpasswd` in this repository.
pub fn nginx_plugin() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/plugins/nginx-htpasswd")
}

/// `[secrets.web]`: the plugin (optionally behind a wrapper argv) on `nginx`, with `grace`.
pub fn web_config(nginx: &Nginx, grace: &str, wrapper: &[String]) -> String {
    let mut command: Vec<String> = wrapper.to_vec();
    command.push(nginx_plugin().display().to_string());
    let toml_list = |v: &[String]| {
        v.iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        r#"
[secrets.web]
kind = "command"
command = [{command}]
timeout = "20s"
tier = "high"
grace = "{grace}"

[secrets.web.settings]
htpasswd = {htpasswd:?}
user = "app"
url = {url:?}
reload = [{reload}]
"#,
        command = toml_list(&command),
        htpasswd = nginx.htpasswd().display().to_string(),
        url = nginx.url(),
        reload = toml_list(&nginx.reload_command()),
    )
}

/// The user name and value of the version holding `stage`.
pub fn credential(env: &Env, stage: &str) -> (String, String) {
    let meta = env
        .rotor(&["--format", "json", "get", "web", "--stage", stage])
        .ok()
        .json();
    let user = meta["metadata"]["username"]
        .as_str()
        .unwrap_or_else(|| panic!("no username in {meta}"))
        .to_owned();
    (user, env.reveal("web", stage))
}

/// The HTTP status curl gets from nginx with this credential.
pub fn status(nginx: &Nginx, cred: &(String, String)) -> u16 {
    nginx.curl_status(&cred.0, &cred.1).expect("curl")
}

/// The user names in the htpasswd file, in order.
pub fn htpasswd_users(nginx: &Nginx) -> Vec<String> {
    std::fs::read_to_string(nginx.htpasswd())
        .expect("read htpasswd")
        .lines()
        .filter_map(|l| l.split(':').next())
        .map(str::to_owned)
        .collect()
}
