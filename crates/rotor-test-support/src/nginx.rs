//! A throwaway nginx serving one location behind HTTP basic auth.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::net::{free_port, loopback, says_address_in_use, wait_for_port};
use crate::process::{log_tail, run};
use crate::{Error, Result};

const START_ATTEMPTS: usize = 5;
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A real nginx (Debian's `/usr/sbin/nginx`) on a free port of 127.0.0.1, in the foreground
/// (`daemon off`) with its own prefix directory. `/` serves a static page only to credentials in
/// [`htpasswd`](Self::htpasswd) (`auth_basic_user_file`), which starts empty; `nginx -s
/// reload` works through [`reload_command`](Self::reload_command). Dropping it stops nginx
/// and removes the directory.
pub struct Nginx {
    dir: Option<TempDir>,
    child: Option<Child>,
    binary: PathBuf,
    port: u16,
}

impl fmt::Debug for Nginx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Nginx")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

fn nginx_binary() -> Option<PathBuf> {
    let sbin = PathBuf::from("/usr/sbin/nginx");
    if sbin.is_file() {
        return Some(sbin);
    }
    crate::process::which("nginx")
}

impl Nginx {
    pub fn start() -> Result<Nginx> {
        let binary = nginx_binary().ok_or_else(|| {
            Error::MissingTool("nginx not found (/usr/sbin/nginx): run scripts/install-deps".into())
        })?;
        let dir = tempfile::Builder::new()
            .prefix("rotor-nginx-")
            .tempdir()
            .map_err(|e| Error::io("creating a temporary directory", e))?;
        let mut nginx = Nginx {
            dir: Some(dir),
            child: None,
            binary,
            port: 0,
        };
        std::fs::create_dir_all(nginx.dir().join("logs"))
            .map_err(|e| Error::io("creating nginx's log directory", e))?;
        // Static content: `return 200` would answer before auth_basic runs (rewrite phase).
        std::fs::create_dir_all(nginx.dir().join("www"))
            .and_then(|()| std::fs::write(nginx.dir().join("www/index.html"), "ok\n"))
            .map_err(|e| Error::io("writing nginx's index.html", e))?;
        std::fs::write(nginx.htpasswd(), "")
            .map_err(|e| Error::io("writing the htpasswd file", e))?;
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            nginx.port = free_port()?;
            nginx.write_conf()?;
            let child = Command::new(&nginx.binary)
                .args(nginx.base_args())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| Error::io("starting nginx", e))?;
            nginx.child = Some(child);
            match wait_for_port(loopback(nginx.port), START_TIMEOUT) {
                Ok(()) => return Ok(nginx),
                Err(e) => {
                    nginx.stop();
                    last = e.to_string();
                    if !says_address_in_use(&log_tail(&nginx.error_log(), 20)) {
                        break;
                    }
                }
            }
        }
        Err(Error::Start {
            server: "nginx",
            reason: last,
            log_tail: log_tail(&nginx.error_log(), 20),
        })
    }

    fn dir(&self) -> &Path {
        self.dir
            .as_ref()
            .map_or(Path::new("/nonexistent"), |d| d.path())
    }

    fn conf(&self) -> PathBuf {
        self.dir().join("nginx.conf")
    }

    fn error_log(&self) -> PathBuf {
        self.dir().join("logs/error.log")
    }

    /// `-p DIR -c DIR/nginx.conf -e DIR/logs/error.log`: everything inside our directory.
    fn base_args(&self) -> Vec<String> {
        vec![
            "-p".into(),
            self.dir().display().to_string(),
            "-c".into(),
            self.conf().display().to_string(),
            "-e".into(),
            self.error_log().display().to_string(),
        ]
    }

    fn write_conf(&self) -> Result<()> {
        let d = self.dir().display();
        // `user root` only matters when the tests run as root: the workers must read the
        // htpasswd file inside our 0700 temporary directory.
        let user = if is_root() { "user root root;\n" } else { "" };
        let conf = format!(
            "{user}daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/logs/error.log info;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  access_log {d}/logs/access.log;\n  client_body_temp_path {d}/tmp_body;\n\
               proxy_temp_path {d}/tmp_proxy;\n  fastcgi_temp_path {d}/tmp_fcgi;\n\
               uwsgi_temp_path {d}/tmp_uwsgi;\n  scgi_temp_path {d}/tmp_scgi;\n\
               server {{\n    listen 127.0.0.1:{port};\n    location / {{\n\
                 auth_basic \"rotor test\";\n      auth_basic_user_file {htpasswd};\n\
                 root {d}/www;\n      index index.html;\n    }}\n  }}\n}}\n",
            port = self.port,
            htpasswd = self.htpasswd().display(),
        );
        std::fs::write(self.conf(), conf).map_err(|e| Error::io("writing nginx.conf", e))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT/`: the location behind basic auth.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// The file `auth_basic_user_file` names.
    pub fn htpasswd(&self) -> PathBuf {
        self.dir().join("htpasswd")
    }

    /// The argv of `nginx -s reload` for this instance.
    pub fn reload_command(&self) -> Vec<String> {
        let mut v = vec![self.binary.display().to_string()];
        v.extend(self.base_args());
        v.extend(["-s".into(), "reload".into()]);
        v
    }

    /// The HTTP status `curl` gets for `/` with `user:password` (given to curl on stdin as
    /// a config line, never in argv).
    pub fn curl_status(&self, user: &str, password: &str) -> Result<u16> {
        let curl = crate::process::which("curl")
            .ok_or_else(|| Error::MissingTool("curl not found: run scripts/install-deps".into()))?;
        let mut cmd = Command::new(curl);
        cmd.args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-K",
            "-",
            &self.url(),
        ]);
        let config = format!("user = \"{user}:{password}\"\n");
        let out = run(cmd, Some(&config), Duration::from_secs(20), "curl")?.into_stdout("curl")?;
        out.trim().parse().map_err(|_| Error::Command {
            command: "curl".into(),
            detail: format!("not an HTTP status: {out}"),
        })
    }

    /// `nginx -s stop` (SIGKILL of the master would orphan its workers, which keep the
    /// port), then a kill if the master is still there after a few seconds.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let mut cmd = Command::new(&self.binary);
        cmd.args(self.base_args()).args(["-s", "stop"]);
        let _ = run(cmd, None, Duration::from_secs(10), "nginx -s stop");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().next().map(|u| u == "0"))
        })
        .unwrap_or(false)
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}
