//! A throwaway PostgreSQL 15 cluster.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::net::{free_port, loopback, says_address_in_use};
use crate::process::{is_executable, log_tail, run, running_as_root, user_ids, which};
use crate::tls::{CertFiles, TestCa, write};
use crate::{Error, Result, random_password};

const DEFAULT_PG_BIN: &str = "/usr/lib/postgresql/15/bin";
const ADMIN_USER: &str = "postgres";
const START_ATTEMPTS: usize = 5;
const INITDB_TIMEOUT: Duration = Duration::from_secs(180);
const PG_CTL_START_SECS: u64 = 120;
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

/// A real PostgreSQL 15 server in a temporary directory, listening on a free port on
/// 127.0.0.1 with SCRAM-SHA-256 password authentication over TCP.
///
/// The superuser is `postgres` with a random password ([`admin_password`](Self::admin_password)).
/// The cluster is created with `initdb` and run with `pg_ctl`, as the `postgres` system
/// user through `runuser` when the tests run as root (PostgreSQL refuses to run as root).
/// Its unix socket lives in the temporary directory, not in `/var/run/postgresql`.
/// Durability is off (`fsync=off`) since the data is thrown away.
///
/// Dropping it stops the server (`pg_ctl -m immediate stop`) and removes the directory.
pub struct Postgres {
    dir: Option<TempDir>,
    data: PathBuf,
    bin: PathBuf,
    psql: PathBuf,
    run_as_postgres: bool,
    port: u16,
    password: String,
    tls: Option<ServerTls>,
}

/// TLS of a server from [`Postgres::start_tls`].
#[derive(Debug, Clone)]
struct ServerTls {
    ca: PathBuf,
    server: CertFiles,
    /// `clientcert=verify-ca` in pg_hba.conf, and psql's own client certificate.
    client: Option<CertFiles>,
}

impl fmt::Debug for Postgres {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Postgres")
            .field("port", &self.port)
            .field("data", &self.data)
            .field("tls", &self.tls.is_some())
            .field("admin_password", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Where the PostgreSQL server binaries are: `$ROTOR_PG_BIN` or `/usr/lib/postgresql/15/bin`.
fn pg_bin() -> PathBuf {
    std::env::var_os("ROTOR_PG_BIN")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_PG_BIN), PathBuf::from)
}

impl Postgres {
    /// Creates and starts a new cluster. Takes a second or two.
    ///
    /// Fails (never skips) when the binaries are missing, with a message that says to run
    /// `scripts/install-deps`; when the server does not start, the error holds its log tail.
    pub fn start() -> Result<Postgres> {
        Self::launch(None)
    }

    /// Like [`start`](Self::start), with `ssl = on` using `server` (issued by `ca`), and a
    /// `pg_hba.conf` that accepts **only TLS** connections over TCP (`hostssl`; a plaintext
    /// login is refused). With `client_cert`, every TCP login must also present a client
    /// certificate signed by `ca` (`clientcert=verify-ca`). [`psql_as`](Self::psql_as)
    /// then connects with `sslmode=require` (and a client certificate of its own).
    pub fn start_tls(ca: &TestCa, server: &CertFiles, client_cert: bool) -> Result<Postgres> {
        let client = if client_cert {
            Some(ca.issue_client("psql")?)
        } else {
            None
        };
        Self::launch(Some(ServerTls {
            ca: ca.cert_path().to_owned(),
            server: server.clone(),
            client,
        }))
    }

    fn launch(tls: Option<ServerTls>) -> Result<Postgres> {
        let bin = pg_bin();
        for tool in ["initdb", "pg_ctl", "postgres"] {
            if !is_executable(&bin.join(tool)) {
                return Err(Error::MissingTool(format!(
                    "PostgreSQL 15 server binaries not found at {} (no {tool}): run scripts/install-deps",
                    bin.display()
                )));
            }
        }
        let psql = if is_executable(&bin.join("psql")) {
            bin.join("psql")
        } else {
            which("psql").ok_or_else(|| {
                Error::MissingTool(
                    "the PostgreSQL client psql is not installed: run scripts/install-deps"
                        .to_owned(),
                )
            })?
        };

        let run_as_postgres = running_as_root();
        let dir = if run_as_postgres {
            // The postgres user must reach the directory: /tmp, not a root-only $TMPDIR.
            // A short path also keeps the unix socket path under its 107-byte limit.
            let dir = tempfile::Builder::new()
                .prefix("rotor-pg-")
                .tempdir_in("/tmp")
                .map_err(|e| Error::io("creating a temporary directory in /tmp", e))?;
            let (uid, gid) = user_ids("postgres")?;
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .map_err(|e| Error::io(format!("chown postgres {}", dir.path().display()), e))?;
            dir
        } else {
            tempfile::Builder::new()
                .prefix("rotor-pg-")
                .tempdir()
                .map_err(|e| Error::io("creating a temporary directory", e))?
        };

        let mut pg = Postgres {
            data: dir.path().join("data"),
            dir: Some(dir),
            bin,
            psql,
            run_as_postgres,
            port: 0,
            password: random_password()?,
            tls,
        };
        pg.initdb()?;
        pg.configure_tls()?;
        pg.start_server()?;
        // Check the whole path a test will use: TCP, SCRAM, the admin password.
        let one = pg.psql("SELECT 1")?;
        if one.trim() != "1" {
            return Err(pg.start_error(format!("SELECT 1 through psql returned {one:?}")));
        }
        Ok(pg)
    }

    fn dir(&self) -> &Path {
        self.dir
            .as_ref()
            .map_or(Path::new("/nonexistent"), |d| d.path())
    }

    /// A command for a server binary, run as `postgres` when we are root.
    fn pg_command(&self, tool: &str) -> Command {
        let path = self.bin.join(tool);
        if self.run_as_postgres {
            let runuser = which("runuser").unwrap_or_else(|| PathBuf::from("/usr/sbin/runuser"));
            let mut cmd = Command::new(runuser);
            cmd.args(["-u", "postgres", "--"]).arg(path);
            cmd
        } else {
            Command::new(path)
        }
    }

    fn initdb(&self) -> Result<()> {
        let pwfile = self.dir().join("pwfile");
        std::fs::write(&pwfile, format!("{}\n", self.password))
            .map_err(|e| Error::io(format!("writing {}", pwfile.display()), e))?;
        if self.run_as_postgres {
            let (uid, gid) = user_ids("postgres")?;
            std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid))
                .map_err(|e| Error::io(format!("chown postgres {}", pwfile.display()), e))?;
        }
        let mut cmd = self.pg_command("initdb");
        cmd.arg("-D")
            .arg(&self.data)
            .args([
                "-U",
                ADMIN_USER,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .arg(format!("--pwfile={}", pwfile.display()));
        let out = run(cmd, None, INITDB_TIMEOUT, "initdb");
        let _ = std::fs::remove_file(&pwfile);
        let out = out?;
        if !out.success {
            return Err(Error::Start {
                server: "PostgreSQL",
                reason: format!("initdb failed ({})", out.status),
                log_tail: format!("{}\n{}", out.stdout.trim_end(), out.stderr.trim_end()),
            });
        }
        Ok(())
    }

    /// Copies the certificate files into the data directory (owned by `postgres`, the key
    /// 0600 as PostgreSQL insists) and writes a TLS-only `pg_hba.conf`.
    fn configure_tls(&self) -> Result<()> {
        let Some(tls) = &self.tls else {
            return Ok(());
        };
        let copy = |from: &Path, to: &str, mode: u32| -> Result<()> {
            let text = std::fs::read_to_string(from)
                .map_err(|e| Error::io(format!("reading {}", from.display()), e))?;
            let dest = self.data.join(to);
            write(&dest, &text, mode)?;
            self.chown_postgres(&dest)
        };
        copy(&tls.server.cert, "server.crt", 0o644)?;
        copy(&tls.server.key, "server.key", 0o600)?;
        copy(&tls.ca, "root.crt", 0o644)?;
        let opt = if tls.client.is_some() {
            " clientcert=verify-ca"
        } else {
            ""
        };
        let hba = format!(
            "local all all trust\n\
             hostssl all all 127.0.0.1/32 scram-sha-256{opt}\n\
             hostssl all all ::1/128 scram-sha-256{opt}\n"
        );
        let path = self.data.join("pg_hba.conf");
        write(&path, &hba, 0o600)?;
        self.chown_postgres(&path)
    }

    fn chown_postgres(&self, path: &Path) -> Result<()> {
        if self.run_as_postgres {
            let (uid, gid) = user_ids("postgres")?;
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .map_err(|e| Error::io(format!("chown postgres {}", path.display()), e))?;
        }
        Ok(())
    }

    fn start_server(&mut self) -> Result<()> {
        let log = self.log_path();
        let mut last_reason = String::new();
        for _ in 0..START_ATTEMPTS {
            self.port = free_port()?;
            let log_before = std::fs::metadata(&log).map_or(0, |m| m.len());
            let mut options = format!(
                "-p {port} -k {dir} -c listen_addresses=127.0.0.1 -c fsync=off \
                 -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=16MB \
                 -c max_connections=100",
                port = self.port,
                dir = self.dir().display(),
            );
            if self.tls.is_some() {
                // Relative paths are read from the data directory.
                options.push_str(
                    " -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key \
                     -c ssl_ca_file=root.crt",
                );
            }
            let mut cmd = self.pg_command("pg_ctl");
            cmd.arg("-D").arg(&self.data).arg("-l").arg(&log).args([
                "-w",
                "-t",
                &PG_CTL_START_SECS.to_string(),
                "-o",
                &options,
                "start",
            ]);
            let out = run(
                cmd,
                None,
                Duration::from_secs(PG_CTL_START_SECS + 30),
                "pg_ctl start",
            )?;
            if out.success {
                return Ok(());
            }
            let new_log = std::fs::read(&log)
                .map(|b| {
                    String::from_utf8_lossy(&b[(log_before as usize).min(b.len())..]).into_owned()
                })
                .unwrap_or_default();
            last_reason = format!(
                "pg_ctl start failed ({}): {}",
                out.status,
                out.stderr.trim_end()
            );
            if !says_address_in_use(&new_log) {
                return Err(self.start_error(last_reason));
            }
            // Port taken between free_port() and the bind: make sure nothing is left, retry.
            self.stop_server();
        }
        Err(self.start_error(format!(
            "{last_reason} (ports kept being taken, {START_ATTEMPTS} attempts)"
        )))
    }

    fn start_error(&self, reason: String) -> Error {
        Error::Start {
            server: "PostgreSQL",
            reason,
            log_tail: log_tail(&self.log_path(), 40),
        }
    }

    fn stop_server(&self) {
        if !self.data.join("postmaster.pid").exists() {
            return;
        }
        let mut cmd = self.pg_command("pg_ctl");
        cmd.arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "-t", "30", "stop"]);
        let stopped =
            run(cmd, None, Duration::from_secs(45), "pg_ctl stop").is_ok_and(|o| o.success);
        if !stopped {
            // Last resort: kill the postmaster named in postmaster.pid.
            if let Ok(pidfile) = std::fs::read_to_string(self.data.join("postmaster.pid"))
                && let Some(pid) = pidfile.lines().next().map(str::trim)
                && pid.parse::<u32>().is_ok()
            {
                let mut kill = Command::new("kill");
                kill.args(["-KILL", pid]);
                let _ = run(kill, None, Duration::from_secs(10), "kill postmaster");
            }
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

    /// The superuser: `"postgres"`.
    pub fn admin_user(&self) -> &str {
        ADMIN_USER
    }

    /// The superuser's random password.
    pub fn admin_password(&self) -> &str {
        &self.password
    }

    /// `postgres://postgres:PASSWORD@127.0.0.1:PORT/DB` (the password is hex: no escaping).
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://{ADMIN_USER}:{}@127.0.0.1:{}/{db}",
            self.password, self.port
        )
    }

    /// The server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir().join("postgres.log")
    }

    /// The directory holding the unix socket (`.s.PGSQL.PORT`).
    pub fn socket_dir(&self) -> &Path {
        self.dir()
    }

    /// Runs `sql` with the real `psql` client as the superuser over TCP, in database
    /// `postgres`. See [`psql_as`](Self::psql_as) for the output format.
    pub fn psql(&self, sql: &str) -> Result<String> {
        self.psql_as(ADMIN_USER, &self.password, "postgres", sql)
    }

    /// Like [`psql`](Self::psql), in database `db`.
    pub fn psql_db(&self, db: &str, sql: &str) -> Result<String> {
        self.psql_as(ADMIN_USER, &self.password, db, sql)
    }

    /// Runs `sql` with the real `psql` client over TCP (SCRAM) as `user` with `password`
    /// in database `db`: e.g. to check that a rotated password works, or no longer does.
    ///
    /// The password goes in `PGPASSWORD` and the SQL on stdin, never in argv. Output is
    /// unaligned, tuples only (`psql -At`), with the trailing newline removed; fields are
    /// separated by `|`. Any SQL error (`ON_ERROR_STOP`) or a failed login is an `Err`.
    pub fn psql_as(&self, user: &str, password: &str, db: &str, sql: &str) -> Result<String> {
        let mut cmd = Command::new(&self.psql);
        cmd.args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
        ])
        .arg("-p")
        .arg(self.port.to_string())
        .args(["-U", user, "-d", db, "-f", "-"])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .env(
            "PGSSLMODE",
            if self.tls.is_some() {
                "require"
            } else {
                "disable"
            },
        )
        .env("PGAPPNAME", "rotor-test-support")
        .env_remove("PGOPTIONS")
        .env_remove("PGSERVICE")
        .env_remove("PGPASSFILE")
        .env_remove("PGSSLROOTCERT");
        match self.tls.as_ref().and_then(|t| t.client.as_ref()) {
            Some(c) => {
                cmd.env("PGSSLCERT", &c.cert).env("PGSSLKEY", &c.key);
            }
            None => {
                cmd.env_remove("PGSSLCERT").env_remove("PGSSLKEY");
            }
        }
        let what = format!("psql as {user} on 127.0.0.1:{} db {db}", self.port);
        let out = run(cmd, Some(sql), CLIENT_TIMEOUT, &what)?;
        let stdout = out.into_stdout(&what)?;
        Ok(stdout.strip_suffix('\n').unwrap_or(&stdout).to_owned())
    }

    /// `CREATE DATABASE "name"` (the name is quoted as an identifier).
    pub fn create_db(&self, name: &str) -> Result<()> {
        let quoted = name.replace('"', "\"\"");
        self.psql(&format!("CREATE DATABASE \"{quoted}\""))?;
        Ok(())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop_server();
        // TempDir's own drop removes the directory (root may remove postgres's files).
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}
