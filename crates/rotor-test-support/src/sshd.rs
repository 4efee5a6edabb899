//! A throwaway OpenSSH sshd that lets the current user in by public key only, with keys
//! from one authorized_keys file the test controls.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::net::{free_port, loopback, says_address_in_use, wait_for_port};
use crate::process::{log_tail, run, running_as_root};
use crate::tls::write;
use crate::{Error, Result};

const SSHD: &str = "/usr/sbin/sshd";
const START_ATTEMPTS: usize = 5;
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A real sshd (Debian's `/usr/sbin/sshd -D`) on a free port of 127.0.0.1, run as the
/// current user with its own host key and `sshd_config` in a temporary directory:
/// `AuthorizedKeysFile` is [`authorized_keys`](Self::authorized_keys) (starts empty),
/// public keys only (no passwords, no PAM), `StrictModes no`. [`known_hosts`](Self::known_hosts)
/// pins its host key for clients. Dropping it stops sshd and removes the directory.
///
/// As root, sshd needs its privilege-separation directory `/run/sshd` (the Debian unit's
/// `RuntimeDirectory`); it is created when missing. As any other user, sshd runs without
/// privilege separation and lets only that user in.
pub struct Sshd {
    dir: Option<TempDir>,
    child: Option<Child>,
    port: u16,
    user: String,
}

impl fmt::Debug for Sshd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sshd")
            .field("port", &self.port)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

fn tool(name: &str) -> Result<PathBuf> {
    crate::process::which(name).ok_or_else(|| {
        Error::MissingTool(format!(
            "{name} not found (openssh-client): run scripts/install-deps"
        ))
    })
}

impl Sshd {
    pub fn start() -> Result<Sshd> {
        if !Path::new(SSHD).is_file() {
            return Err(Error::MissingTool(format!(
                "{SSHD} not found (openssh-server): run scripts/install-deps"
            )));
        }
        let keygen = tool("ssh-keygen")?;
        tool("ssh")?;
        if running_as_root() && !Path::new("/run/sshd").is_dir() {
            std::fs::create_dir_all("/run/sshd")
                .map_err(|e| Error::io("creating /run/sshd (sshd's privsep directory)", e))?;
        }
        let dir = tempfile::Builder::new()
            .prefix("rotor-sshd-")
            .tempdir()
            .map_err(|e| Error::io("creating a temporary directory", e))?;
        let mut id = Command::new("id");
        id.arg("-un");
        let user = run(id, None, Duration::from_secs(5), "id -un")?
            .into_stdout("id -un")?
            .trim()
            .to_owned();
        let mut sshd = Sshd {
            dir: Some(dir),
            child: None,
            port: 0,
            user,
        };
        let mut cmd = Command::new(keygen);
        cmd.args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "rotor-test-host",
            "-f",
        ])
        .arg(sshd.host_key());
        run(cmd, None, Duration::from_secs(20), "ssh-keygen (host key)")?
            .into_stdout("ssh-keygen (host key)")?;
        write(&sshd.authorized_keys(), "", 0o600)?;
        let host_pub = std::fs::read_to_string(sshd.host_key().with_extension("pub"))
            .map_err(|e| Error::io("reading the host key", e))?;
        let host_pub = host_pub
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            sshd.port = free_port()?;
            write(
                &sshd.known_hosts(),
                &format!("[127.0.0.1]:{} {host_pub}\n", sshd.port),
                0o644,
            )?;
            sshd.write_config()?;
            let log = std::fs::File::create(sshd.log_path())
                .map_err(|e| Error::io("creating sshd's log", e))?;
            let child = Command::new(SSHD)
                .arg("-D")
                .arg("-e")
                .arg("-f")
                .arg(sshd.config_path())
                .arg("-p")
                .arg(sshd.port.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .map_err(|e| Error::io("starting sshd", e))?;
            sshd.child = Some(child);
            match wait_for_port(loopback(sshd.port), START_TIMEOUT) {
                Ok(()) => return Ok(sshd),
                Err(e) => {
                    sshd.stop();
                    last = e.to_string();
                    if !says_address_in_use(&log_tail(&sshd.log_path(), 20)) {
                        break;
                    }
                }
            }
        }
        Err(Error::Start {
            server: "sshd",
            reason: last,
            log_tail: log_tail(&sshd.log_path(), 20),
        })
    }

    fn dir(&self) -> &Path {
        self.dir
            .as_ref()
            .map_or(Path::new("/nonexistent"), |d| d.path())
    }

    fn host_key(&self) -> PathBuf {
        self.dir().join("host_ed25519")
    }

    fn config_path(&self) -> PathBuf {
        self.dir().join("sshd_config")
    }

    /// sshd's own log (`-e`: everything it would send to syslog).
    pub fn log_path(&self) -> PathBuf {
        self.dir().join("sshd.log")
    }

    fn write_config(&self) -> Result<()> {
        let conf = format!(
            "ListenAddress 127.0.0.1\nHostKey {host_key}\nAuthorizedKeysFile {keys}\n\
             PidFile none\nStrictModes no\nUsePAM no\nPubkeyAuthentication yes\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\nAllowUsers {user}\nMaxStartups 50:30:100\n\
             LogLevel VERBOSE\n",
            host_key = self.host_key().display(),
            keys = self.authorized_keys().display(),
            user = self.user,
        );
        write(&self.config_path(), &conf, 0o600)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The account sshd lets in: the one the tests run as.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The file sshd's `AuthorizedKeysFile` names (read on every login).
    pub fn authorized_keys(&self) -> PathBuf {
        self.dir().join("authorized_keys")
    }

    /// A known_hosts file with this sshd's host key for `[127.0.0.1]:PORT`.
    pub fn known_hosts(&self) -> PathBuf {
        self.dir().join("known_hosts")
    }

    /// Logs in with `ssh -i` and this private key (OpenSSH format) and runs `true`: `Ok(true)`
    /// when sshd let the key in, `Ok(false)` when it refused it ("Permission denied"), an
    /// error for anything else. The key is written to a 0600 file in a fresh 0700
    /// directory, removed afterwards.
    pub fn ssh_login(&self, private_key: &str) -> Result<bool> {
        let ssh = tool("ssh")?;
        let keydir = tempfile::Builder::new()
            .prefix("rotor-ssh-key-")
            .tempdir()
            .map_err(|e| Error::io("creating a temporary directory", e))?;
        let key = keydir.path().join("id");
        let text = if private_key.ends_with('\n') {
            private_key.to_owned()
        } else {
            format!("{private_key}\n")
        };
        write(&key, &text, 0o600)?;
        let mut cmd = Command::new(ssh);
        cmd.args(["-F", "/dev/null", "-T", "-i"])
            .arg(&key)
            .args(["-p", &self.port.to_string()])
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "IdentityAgent=none",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "GlobalKnownHostsFile=/dev/null",
                "-o",
                "ConnectTimeout=10",
            ])
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                self.known_hosts().display()
            ))
            .args(["-l", &self.user, "127.0.0.1", "true"]);
        let out = run(cmd, None, Duration::from_secs(20), "ssh -i")?;
        if out.success {
            Ok(true)
        } else if out.stderr.contains("Permission denied") {
            Ok(false)
        } else {
            Err(Error::Command {
                command: "ssh -i".into(),
                detail: format!(
                    "{}: {}\n--- sshd log ---\n{}",
                    out.status,
                    out.stderr.trim(),
                    log_tail(&self.log_path(), 20)
                ),
            })
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}
