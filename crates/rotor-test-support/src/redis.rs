//! A throwaway Redis server.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::net::{free_port, loopback, says_address_in_use};
use crate::process::{log_tail, run, which};
use crate::tls::{CertFiles, TestCa};
use crate::{Error, Result, random_password};

const START_ATTEMPTS: usize = 5;
const START_TIMEOUT: Duration = Duration::from_secs(60);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// A real `redis-server` in a temporary directory, on a free port on 127.0.0.1, with no
/// persistence (`--save '' --appendonly no`).
///
/// **The admin is the `default` user**, protected by a random password
/// ([`admin_password`](Self::admin_password)); it has every permission (`~* &* +@all`).
/// With [`start_with_aclfile`](Self::start_with_aclfile) the server also has an ACL file
/// (`ACL SAVE` / `ACL LOAD` work), which initially holds only that `default` user.
///
/// Dropping it shuts the server down (`SHUTDOWN NOSAVE`, then a kill) and removes the
/// directory.
pub struct Redis {
    dir: Option<TempDir>,
    child: Option<Child>,
    cli: PathBuf,
    port: u16,
    password: String,
    aclfile: Option<PathBuf>,
    tls: Option<ServerTls>,
}

/// TLS of a server from [`Redis::start_tls`].
#[derive(Debug, Clone)]
struct ServerTls {
    ca: PathBuf,
    server: CertFiles,
    /// `--tls-auth-clients yes` (else `no`).
    require_client_cert: bool,
    /// redis-cli's own client certificate.
    cli: CertFiles,
}

impl fmt::Debug for Redis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redis")
            .field("port", &self.port)
            .field("aclfile", &self.aclfile)
            .field("tls", &self.tls.is_some())
            .field("admin_password", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl Redis {
    /// Starts a server whose `default` user has a random password (`--requirepass`).
    pub fn start() -> Result<Redis> {
        Self::launch(false, None)
    }

    /// Starts a server that speaks **only TLS** (`--port 0 --tls-port P`) with `server`
    /// (issued by `ca`). With `require_client_cert`, a client must present a certificate
    /// signed by `ca` (`--tls-auth-clients yes`). [`cli`](Self::cli) connects with
    /// `--tls --cacert` and a client certificate of its own.
    pub fn start_tls(ca: &TestCa, server: &CertFiles, require_client_cert: bool) -> Result<Redis> {
        Self::launch(
            false,
            Some(ServerTls {
                ca: ca.cert_path().to_owned(),
                server: server.clone(),
                require_client_cert,
                cli: ca.issue_client("redis-cli")?,
            }),
        )
    }

    /// Starts a server with `--aclfile DIR/users.acl`, written before the start with
    /// `user default on >PASSWORD ~* &* +@all`: the same admin as [`start`](Self::start),
    /// and `ACL SAVE` works.
    pub fn start_with_aclfile() -> Result<Redis> {
        Self::launch(true, None)
    }

    fn launch(with_aclfile: bool, tls: Option<ServerTls>) -> Result<Redis> {
        let server = which("redis-server").ok_or_else(|| {
            Error::MissingTool(
                "redis-server not found on PATH: run scripts/install-deps".to_owned(),
            )
        })?;
        let cli = which("redis-cli").ok_or_else(|| {
            Error::MissingTool("redis-cli not found on PATH: run scripts/install-deps".to_owned())
        })?;
        let dir = tempfile::Builder::new()
            .prefix("rotor-redis-")
            .tempdir()
            .map_err(|e| Error::io("creating a temporary directory", e))?;
        let password = random_password()?;
        let aclfile = if with_aclfile {
            let path = dir.path().join("users.acl");
            write_private(&path, &format!("user default on >{password} ~* &* +@all\n"))?;
            Some(path)
        } else {
            None
        };
        let mut redis = Redis {
            dir: Some(dir),
            child: None,
            cli,
            port: 0,
            password,
            aclfile,
            tls,
        };
        redis.start_server(&server)?;
        Ok(redis)
    }

    fn dir(&self) -> &Path {
        self.dir
            .as_ref()
            .map_or(Path::new("/nonexistent"), |d| d.path())
    }

    fn start_server(&mut self, server: &Path) -> Result<()> {
        let log = self.log_path();
        let conf = self.dir().join("redis.conf");
        let conf_text = if self.aclfile.is_some() {
            String::new()
        } else {
            format!("requirepass {}\n", self.password)
        };
        write_private(&conf, &conf_text)?;
        let mut last_reason = String::new();
        for _ in 0..START_ATTEMPTS {
            self.port = free_port()?;
            let log_before = std::fs::metadata(&log).map_or(0, |m| m.len());
            let mut cmd = Command::new(server);
            // The config file (0600, in our directory) carries the password, so it is not
            // in the server's argv.
            cmd.arg(&conf);
            match &self.tls {
                None => {
                    cmd.arg("--port").arg(self.port.to_string());
                }
                Some(tls) => {
                    cmd.args(["--port", "0", "--tls-port"])
                        .arg(self.port.to_string())
                        .arg("--tls-cert-file")
                        .arg(&tls.server.cert)
                        .arg("--tls-key-file")
                        .arg(&tls.server.key)
                        .arg("--tls-ca-cert-file")
                        .arg(&tls.ca)
                        .args([
                            "--tls-auth-clients",
                            if tls.require_client_cert { "yes" } else { "no" },
                        ]);
                }
            }
            cmd.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .args(["--daemonize", "no", "--protected-mode", "yes"])
                .arg("--dir")
                .arg(self.dir())
                .arg("--logfile")
                .arg(&log);
            if let Some(aclfile) = &self.aclfile {
                cmd.arg("--aclfile").arg(aclfile);
            }
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let child = cmd
                .spawn()
                .map_err(|e| Error::io(format!("starting {}", server.display()), e))?;
            self.child = Some(child);

            match self.wait_ready() {
                Ok(()) => return Ok(()),
                Err(reason) => {
                    last_reason = reason;
                    self.kill();
                    let new_log = std::fs::read(&log)
                        .map(|b| {
                            String::from_utf8_lossy(&b[(log_before as usize).min(b.len())..])
                                .into_owned()
                        })
                        .unwrap_or_default();
                    if !says_address_in_use(&new_log) {
                        return Err(self.start_error(last_reason));
                    }
                }
            }
        }
        Err(self.start_error(format!(
            "{last_reason} (ports kept being taken, {START_ATTEMPTS} attempts)"
        )))
    }

    /// Polls `PING` (as admin) until `PONG`, watching for an early exit.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!("redis-server exited early ({status})"));
            }
            if std::net::TcpStream::connect_timeout(&self.addr(), Duration::from_millis(500))
                .is_ok()
            {
                match self.cli(&["PING"]) {
                    Ok(out) if out.trim() == "PONG" => return Ok(()),
                    Ok(out) => return Err(format!("PING answered {out:?}")),
                    Err(e) if Instant::now() >= deadline => {
                        return Err(format!("PING failed: {e}"));
                    }
                    Err(_) => {}
                }
            }
            if Instant::now() >= deadline {
                return Err(format!("not ready within {START_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn start_error(&self, reason: String) -> Error {
        Error::Start {
            server: "Redis",
            reason,
            log_tail: log_tail(&self.log_path(), 40),
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Always `"127.0.0.1"`.
    pub fn host(&self) -> &str {
        "127.0.0.1"
    }

    /// `127.0.0.1:port`, e.g. as the upstream of a [`TcpProxy`](crate::TcpProxy).
    pub fn addr(&self) -> SocketAddr {
        loopback(self.port)
    }

    /// The admin user: `"default"`.
    pub fn admin_user(&self) -> &str {
        "default"
    }

    /// The `default` user's random password.
    pub fn admin_password(&self) -> &str {
        &self.password
    }

    /// `redis://default:PASSWORD@127.0.0.1:PORT` (the password is hex: no escaping).
    pub fn url(&self) -> String {
        format!("redis://default:{}@127.0.0.1:{}", self.password, self.port)
    }

    /// The ACL file, for servers from [`start_with_aclfile`](Self::start_with_aclfile).
    pub fn aclfile(&self) -> Option<&Path> {
        self.aclfile.as_deref()
    }

    /// The server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir().join("redis.log")
    }

    /// Runs one command with the real `redis-cli` as the admin (`default` user; password in
    /// `REDISCLI_AUTH`, never in argv), e.g. `cli(&["ACL", "SETUSER", "u", "on", ">pw"])`.
    ///
    /// Returns redis-cli's raw (non-tty) output with the trailing newline removed. An error
    /// reply is an `Err` (`redis-cli -e`).
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        let mut cmd = self.cli_command();
        cmd.arg("-e")
            .args(args)
            .env("REDISCLI_AUTH", &self.password);
        let what = format!(
            "redis-cli -p {} {}",
            self.port,
            args.first().copied().unwrap_or_default()
        );
        let out = run(cmd, None, CLIENT_TIMEOUT, &what)?;
        let stdout = out.into_stdout(&what)?;
        Ok(stdout.strip_suffix('\n').unwrap_or(&stdout).to_owned())
    }

    /// Runs a `redis-cli` session **without credentials**, commands read from `script`
    /// (one per line): start it with `AUTH user password` to check a user's password
    /// (`redis-cli --user u --pass wrong` would silently fall back to the default user).
    ///
    /// Returns every reply, one per line, as redis-cli prints them without a tty; error
    /// replies (e.g. `WRONGPASS …`) are part of the output, followed by an empty line,
    /// not an `Err`. Only a failure to run redis-cli is an `Err`.
    pub fn cli_session(&self, script: &str) -> Result<String> {
        let mut cmd = self.cli_command();
        cmd.env_remove("REDISCLI_AUTH");
        let what = format!("redis-cli -p {} session", self.port);
        let out = run(cmd, Some(script), CLIENT_TIMEOUT, &what)?;
        Ok(out.stdout)
    }

    fn cli_command(&self) -> Command {
        let mut cmd = Command::new(&self.cli);
        cmd.args(["-h", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("--no-auth-warning")
            .env_remove("REDISCLI_CLUSTER_YES");
        if let Some(tls) = &self.tls {
            // `--insecure`: the tests' own client trusts the server it started, whatever its
            // certificate (an expired one, for the probe's tests); what is under test is
            // rotor's verification, never redis-cli's.
            cmd.arg("--tls")
                .arg("--insecure")
                .arg("--cacert")
                .arg(&tls.ca)
                .arg("--cert")
                .arg(&tls.cli.cert)
                .arg("--key")
                .arg(&tls.cli.key);
        }
        cmd
    }
}

/// Writes a file readable by its owner only.
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

impl Drop for Redis {
    fn drop(&mut self) {
        if self.child.is_some() {
            let mut cmd = self.cli_command();
            cmd.args(["SHUTDOWN", "NOSAVE"])
                .env("REDISCLI_AUTH", &self.password);
            let _ = run(
                cmd,
                None,
                Duration::from_secs(5),
                "redis-cli SHUTDOWN NOSAVE",
            );
            if let Some(mut child) = self.child.take() {
                let deadline = Instant::now() + Duration::from_secs(5);
                while Instant::now() < deadline {
                    if let Ok(Some(_)) = child.try_wait() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}
