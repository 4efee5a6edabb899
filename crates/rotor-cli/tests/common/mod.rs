//! Runs the real `rotor` binary against a config and store in a temporary directory.
#![allow(dead_code)]

pub mod plugin;
pub mod replica;
pub mod ssh;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Env {
    pub dir: tempfile::TempDir,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

impl Env {
    /// A directory with `rotor.toml` = `config`, initialised with `rotor init`.
    pub fn new(config: &str) -> Env {
        let env = Env::uninit(config);
        env.rotor(&["init"]).ok();
        env
    }

    pub fn uninit(config: &str) -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("rotor.toml"), config).expect("write config");
        Env { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_rotor"));
        c.args(args)
            .env("ROTOR_CONFIG", self.path("rotor.toml"))
            .env_remove("ROTOR_MASTER_KEY")
            .env_remove("ROTOR_FAILPOINT")
            .env("USER", "tester")
            .current_dir(self.dir.path());
        c
    }

    pub fn rotor(&self, args: &[&str]) -> Run {
        self.rotor_stdin(args, None)
    }

    pub fn rotor_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Run {
        let mut c = self.command(args);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("spawn rotor");
        {
            let mut pipe = child.stdin.take().expect("stdin");
            if let Some(data) = stdin {
                pipe.write_all(data).expect("write stdin");
            }
        }
        run_of(child.wait_with_output().expect("wait rotor"))
    }

    pub fn reveal(&self, name: &str, stage: &str) -> String {
        self.rotor(&["get", name, "--stage", stage, "--reveal"])
            .ok()
            .stdout
            .trim_end_matches('\n')
            .to_owned()
    }

    pub fn history(&self, name: &str) -> serde_json::Value {
        self.rotor(&["--format", "json", "history", name])
            .ok()
            .json()
    }

    /// The ids of the versions holding `stage`.
    pub fn holders(&self, name: &str, stage: &str) -> Vec<String> {
        self.history(name)["versions"]
            .as_array()
            .expect("versions")
            .iter()
            .filter(|v| {
                v["stages"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|x| x == stage))
            })
            .map(|v| v["id"].as_str().expect("id").to_owned())
            .collect()
    }

    pub fn audit_verifies(&self) {
        let r = self.rotor(&["audit", "verify"]);
        assert_eq!(r.code, 0, "audit verify: {} {}", r.stdout, r.stderr);
    }
}

/// Starts `rotor rotate NAME` with the fail-point set, waits until the process reports it
/// reached it, and kills it with SIGKILL.
pub fn kill_at(env: &Env, name: &str, point: &str) {
    let mut child = env
        .command(&["rotate", name])
        .env("ROTOR_FAILPOINT", point)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rotor");
    let stderr = child.stderr.take().expect("stderr");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut reached = false;
    for line in BufReader::new(stderr).lines() {
        let line = line.expect("read stderr");
        if line.contains(&format!("rotor-failpoint: {point}")) {
            reached = true;
            break;
        }
        assert!(Instant::now() < deadline, "fail-point {point} not reached");
    }
    assert!(
        reached,
        "rotor exited before fail-point {point}: is the failpoints feature on?"
    );
    child.kill().expect("SIGKILL"); // std's kill() is SIGKILL on Unix
    let status = child.wait().expect("wait");
    assert!(!status.success(), "the process was killed");
}

pub fn run_of(out: Output) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Every file under `dir`, recursively.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

pub const CONFIG: &str = r#"
[secrets.session]
kind = "random"
tier = "high"
grace = "1h"
length = 40

[secrets.quick]
kind = "random"
rotate_every = "1d"
grace = "0s"

[secrets.jwt]
kind = "jwt"
algorithm = "ES256"
tier = "high"
jwks_max_age = "0s"            # no JWKS caching, so no prepublish wait in these tests

[secrets.sendgrid]
kind = "manual"
tier = "medium"
grace = "1d"

[secrets.pepper]
kind = "random"
tier = "low"
automation = "manual"
requires_confirmation = true
"#;
