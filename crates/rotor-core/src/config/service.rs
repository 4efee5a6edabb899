//! Config sections beyond the inventory: the daemon (`[server]`, `[[tokens]]`), notifications
//! (`[[notify]]`), delivery to consumers (`[[render]]`), emergency checks (`[emergency]`), and
//! per-secret maintenance windows.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Serialize;

use crate::{Duration, SecretName, Stage};

/// `[server]`: `rotor serve`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Serve HTTPS with these PEM files (both or neither).
    pub tls: Option<TlsFiles>,
    /// Rotations the scheduler runs at once.
    pub max_concurrent_rotations: usize,
    /// Attempts of a failed scheduled rotation before the secret is left `failed`.
    pub retry_attempts: u32,
    /// First delay between attempts; doubles each time.
    pub retry_backoff: Duration,
    /// How long a rotation's lease lasts without renewal (each step renews it). Another
    /// replica takes over a rotation whose holder died once this has passed.
    pub lease: Duration,
    /// What answers without a token (`public = [...]`). Default: health and JWKS only; the
    /// page and metrics list every secret name and state, so they need a token unless listed.
    pub public: Vec<PublicEndpoint>,
    /// A second listener serving only `/metrics` (and `/healthz`) without a token, for
    /// scrapers on a private network (`metrics_listen`).
    pub metrics_listen: Option<SocketAddr>,
    /// Connection limits of the HTTP server (slow and idle clients cannot hold it).
    pub limits: HttpLimits,
}

/// An endpoint that may be made public with `[server] public`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PublicEndpoint {
    /// `/healthz` and `/readyz`.
    Health,
    /// `/.well-known/jwks.json` and `/v1/secrets/{name}/jwks.json`.
    Jwks,
    /// The HTML status page `/`.
    Page,
    /// `/metrics`.
    Metrics,
}

impl PublicEndpoint {
    pub const ALL: [PublicEndpoint; 4] = [
        PublicEndpoint::Health,
        PublicEndpoint::Jwks,
        PublicEndpoint::Page,
        PublicEndpoint::Metrics,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            PublicEndpoint::Health => "health",
            PublicEndpoint::Jwks => "jwks",
            PublicEndpoint::Page => "page",
            PublicEndpoint::Metrics => "metrics",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// `[server]` limits on connections, with defaults safe for an internet-facing listener.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpLimits {
    /// A client must send its request headers within this (`header_timeout`).
    pub header_timeout: Duration,
    /// A request (reading the body and answering; not the watch stream) must finish within
    /// this (`request_timeout`).
    pub request_timeout: Duration,
    /// A keep-alive connection with no request in flight is closed after this (`idle_timeout`).
    pub idle_timeout: Duration,
    /// Connections served at once; more wait in the kernel's backlog (`max_connections`).
    pub max_connections: usize,
    /// Largest request head (request line and headers) in bytes (`max_header_bytes`).
    pub max_header_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 256,
            max_header_bytes: 16 * 1024,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8700)),
            tls: None,
            max_concurrent_rotations: 4,
            retry_attempts: 5,
            retry_backoff: Duration::from_secs(30),
            lease: Duration::from_mins(5),
            public: vec![PublicEndpoint::Health, PublicEndpoint::Jwks],
            metrics_listen: None,
            limits: HttpLimits::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `[[tokens]]`: an API token, stored as the SHA-256 of the token (the token itself is
/// printed once by `rotor token new` and never stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenSpec {
    pub name: String,
    /// Lowercase hex SHA-256 of the token.
    pub sha256: String,
    pub scopes: Vec<Scope>,
}

/// What a token may do, on which secrets: `read:jwt-*`, `rotate:*`, `write:sendgrid-*`,
/// `confirm:refresh-pepper`, `emergency:*`, `admin`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Scope {
    pub action: ScopeAction,
    /// A glob over secret names (`*` any run, `?` one character); `*` for `admin`.
    pub pattern: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ScopeAction {
    /// See metadata only: list, get, watch, rotations, the page and metrics, for matching
    /// secrets (every other action also lets a token see the secrets it matches).
    View,
    /// Read values.
    Read,
    /// Start ordinary rotations.
    Rotate,
    /// Store values (`put`).
    Write,
    /// Rotate a secret marked `requires_confirmation` (with `"confirm": true`). Distinct from
    /// `rotate` because such secrets are the ones whose rotation is disruptive.
    Confirm,
    /// Emergency rotations (grace 0, session eviction, `on_emergency` hooks). Distinct from
    /// `rotate` because an emergency cuts off every holder of the old value at once.
    Emergency,
    /// Everything, including the audit log.
    Admin,
}

impl ScopeAction {
    /// The word used in scopes (`read`, `rotate`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeAction::View => "view",
            ScopeAction::Read => "read",
            ScopeAction::Rotate => "rotate",
            ScopeAction::Write => "write",
            ScopeAction::Confirm => "confirm",
            ScopeAction::Emergency => "emergency",
            ScopeAction::Admin => "admin",
        }
    }
}

impl Scope {
    /// Parses `action:glob` or `admin`.
    pub fn parse(s: &str) -> Result<Scope, String> {
        if s == "admin" {
            return Ok(Scope {
                action: ScopeAction::Admin,
                pattern: "*".into(),
            });
        }
        let (action, pattern) = s.split_once(':').ok_or_else(|| {
            format!("scope {s:?} is not `action:glob`; use e.g. \"view:*\", \"read:jwt-*\", \"rotate:*\", \"write:sendgrid-*\", \"confirm:NAME\", \"emergency:NAME\" or \"admin\"")
        })?;
        let action = match action {
            "view" => ScopeAction::View,
            "read" => ScopeAction::Read,
            "rotate" => ScopeAction::Rotate,
            "write" => ScopeAction::Write,
            "confirm" => ScopeAction::Confirm,
            "emergency" => ScopeAction::Emergency,
            other => {
                return Err(format!(
                    "unknown scope action {other:?}; use view, read, rotate, write, confirm, emergency or admin"
                ));
            }
        };
        if pattern.is_empty()
            || !pattern
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '*' | '?'))
        {
            return Err(format!(
                "scope {s:?} has a bad secret pattern; use secret-name characters with * and ?"
            ));
        }
        Ok(Scope {
            action,
            pattern: pattern.to_owned(),
        })
    }

    /// Whether this scope allows `action` on `secret`. `admin` allows everything; any action
    /// on a secret includes seeing its metadata (`view`).
    pub fn allows(&self, action: ScopeAction, secret: &str) -> bool {
        self.action == ScopeAction::Admin
            || ((self.action == action || action == ScopeAction::View)
                && glob_match(&self.pattern, secret))
    }
}

/// `*` matches any run of characters, `?` one character; everything else itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// `[[notify]]`: a webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotifySpec {
    /// The webhook URL (Slack's contain a token: keep it in an env var, `${SLACK_WEBHOOK}`),
    /// so a [`SecretUrl`](crate::SecretUrl): `Debug` shows its host only.
    #[serde(skip)]
    pub url: crate::SecretUrl,
    pub format: NotifyFormat,
    pub events: Vec<NotifyEvent>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyFormat {
    /// `{"text": "..."}`, as Slack's incoming webhooks take.
    Slack,
    /// A JSON object with `event`, `secret`, `rotation`, `message`, `time`.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyEvent {
    Rotated,
    Failed,
    Overdue,
    Emergency,
    /// The daemon's probe found that a secret's next rotation would not get through.
    Blocked,
}

impl NotifyEvent {
    pub const ALL: [NotifyEvent; 5] = [
        NotifyEvent::Rotated,
        NotifyEvent::Failed,
        NotifyEvent::Overdue,
        NotifyEvent::Emergency,
        NotifyEvent::Blocked,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::Rotated => "rotated",
            NotifyEvent::Failed => "failed",
            NotifyEvent::Overdue => "overdue",
            NotifyEvent::Emergency => "emergency",
            NotifyEvent::Blocked => "blocked",
        }
    }
}

/// `[[render]]`: a target written for consumers after every finish, retire and put: a file,
/// or (`kind = "github"`) GitHub Actions secrets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RenderSpec {
    pub kind: RenderKind,
    /// The file to write; for `github`, the state file recording what was written there
    /// (fingerprints only, never a value).
    pub path: PathBuf,
    /// For `kind = "template"`: the template file (with `{{ secret.stage[.field] }}` references).
    pub template: Option<PathBuf>,
    /// For `dotenv` and `json`: variable name → template, in file order; for `github`
    /// (`[render.secrets]`): GitHub secret name → template.
    pub vars: Vec<(String, Template)>,
    /// A shell command run after the file changed (e.g. `docker compose restart backend`).
    pub on_change: Option<String>,
    pub timeout: Duration,
    /// For `kind = "github"`: where the secrets go.
    pub github: Option<GithubRender>,
}

impl RenderSpec {
    /// What the target is called in messages and `rotor render`: the file, or
    /// `github:OWNER/REPO[/ENVIRONMENT]`.
    pub fn target(&self) -> String {
        match &self.github {
            Some(g) => g.to_string(),
            None => self.path.display().to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RenderKind {
    Dotenv,
    Json,
    Template,
    /// GitHub Actions repository or environment secrets (`rotor-deliver-github`).
    Github,
}

/// GitHub's API, unless `api_url` says otherwise (GitHub Enterprise: `https://HOST/api/v3`).
pub const GITHUB_API: &str = "https://api.github.com";

/// `[[render]] kind = "github"`: a repository's (or one of its environments') Actions
/// secrets. The token is never in the config: `token_env` names the variable holding it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GithubRender {
    pub owner: String,
    pub repo: String,
    /// Environment secrets of this deployment environment instead of repository secrets.
    pub environment: Option<String>,
    /// The environment variable holding the token (read at every delivery).
    pub token_env: String,
    /// `https://api.github.com` by default; `http://` only for a loopback host.
    pub api_url: String,
}

impl fmt::Display for GithubRender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "github:{}/{}", self.owner, self.repo)?;
        if let Some(env) = &self.environment {
            write!(f, "/{env}")?;
        }
        Ok(())
    }
}

/// Whether GitHub accepts `name` as an Actions secret name: letters, digits and `_`, not
/// starting with a digit or `GITHUB_` (GitHub's documented naming rules; GitHub compares
/// names case-insensitively and stores them upper-case).
pub fn valid_github_secret_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.to_ascii_uppercase().starts_with("GITHUB_")
}

/// A string with `{{ secret.stage[.field] }}` references.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Template {
    pub parts: Vec<TemplatePart>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum TemplatePart {
    Text(String),
    Ref(ValueRef),
}

/// `secret.stage` (the whole value) or `secret.stage.field` (a field of a JSON value, such as
/// a database credential's `username` or `password`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValueRef {
    pub secret: SecretName,
    pub stage: Stage,
    pub field: Option<String>,
}

impl Template {
    /// Parses `text`, resolving each reference against `known` secret names (a secret name
    /// may itself contain dots: the longest known prefix wins).
    pub fn parse(text: &str, known: &[&str]) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(TemplatePart::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| "a `{{` has no closing `}}`".to_owned())?;
            parts.push(TemplatePart::Ref(ValueRef::parse(
                after[..end].trim(),
                known,
            )?));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(TemplatePart::Text(rest.to_owned()));
        }
        Ok(Template { parts })
    }

    /// The references in this template.
    pub fn refs(&self) -> impl Iterator<Item = &ValueRef> {
        self.parts.iter().filter_map(|p| match p {
            TemplatePart::Ref(r) => Some(r),
            TemplatePart::Text(_) => None,
        })
    }
}

impl ValueRef {
    pub fn parse(expr: &str, known: &[&str]) -> Result<ValueRef, String> {
        let secret = known
            .iter()
            .filter(|k| expr.starts_with(**k) && expr[k.len()..].starts_with('.'))
            .max_by_key(|k| k.len())
            .ok_or_else(|| {
                format!("`{{{{ {expr} }}}}` names no secret of the inventory; write {{{{ SECRET.current }}}} or {{{{ SECRET.current.password }}}}")
            })?;
        let tail = &expr[secret.len() + 1..];
        let (stage, field) = match tail.split_once('.') {
            Some((s, f)) => (s, Some(f.to_owned())),
            None => (tail, None),
        };
        let stage = Stage::parse(stage).ok_or_else(|| {
            format!("`{{{{ {expr} }}}}`: unknown stage {stage:?}; use current, previous or pending")
        })?;
        Ok(ValueRef {
            secret: SecretName::new(secret).map_err(|e| e.to_string())?,
            stage,
            field,
        })
    }
}

/// `[emergency]`: what the post-rotation checklist checks.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct EmergencyConfig {
    /// URLs that must answer 200 after an emergency rotation or a drill.
    pub health_urls: Vec<String>,
    /// A URL whose body is a number (errors per second, or a ratio); it must not rise.
    pub error_rate_url: Option<String>,
    /// Where checklist reports are written (default `reports/` beside the config).
    pub report_dir: PathBuf,
}

/// A maintenance window: days of the week and a time range in a named time zone, e.g.
/// `Tue-Thu 02:00-04:00 Europe/Berlin`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Window {
    /// Monday first.
    pub days: [bool; 7],
    /// Minutes after midnight, start inclusive.
    pub start_minute: u16,
    /// Minutes after midnight, end exclusive (may be below start: the window crosses midnight).
    pub end_minute: u16,
    /// IANA time zone name.
    pub tz: String,
}

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

impl Window {
    /// Parses `DAYS HH:MM-HH:MM TZ` where DAYS is `Mon`, `Tue-Thu`, `Mon,Wed,Fri` or `*`.
    pub fn parse(s: &str) -> Result<Window, String> {
        let usage = "write e.g. \"Tue-Thu 02:00-04:00 Europe/Berlin\" (days, a time range, an IANA time zone)";
        let fields: Vec<&str> = s.split_whitespace().collect();
        let [days, range, tz] = fields.as_slice() else {
            return Err(format!("window {s:?} does not have three parts; {usage}"));
        };
        let mut set = [false; 7];
        let day = |d: &str| {
            DAYS.iter()
                .position(|x| x.eq_ignore_ascii_case(d))
                .ok_or_else(|| format!("unknown day {d:?} in window; use Mon..Sun"))
        };
        if *days == "*" {
            set = [true; 7];
        } else {
            for part in days.split(',') {
                match part.split_once('-') {
                    Some((a, b)) => {
                        let (a, b) = (day(a)?, day(b)?);
                        let mut i = a;
                        loop {
                            set[i] = true;
                            if i == b {
                                break;
                            }
                            i = (i + 1) % 7;
                        }
                    }
                    None => set[day(part)?] = true,
                }
            }
        }
        let (a, b) = range
            .split_once('-')
            .ok_or_else(|| format!("window time range {range:?} is not HH:MM-HH:MM; {usage}"))?;
        let minute = |t: &str| -> Result<u16, String> {
            let (h, m) = t
                .split_once(':')
                .ok_or_else(|| format!("time {t:?} is not HH:MM"))?;
            let (h, m): (u16, u16) = (
                h.parse().map_err(|_| format!("time {t:?} is not HH:MM"))?,
                m.parse().map_err(|_| format!("time {t:?} is not HH:MM"))?,
            );
            if h > 24 || m > 59 || (h == 24 && m != 0) {
                return Err(format!("time {t:?} is out of range"));
            }
            Ok(h * 60 + m)
        };
        let (start, end) = (minute(a)?, minute(b)?);
        if start == end {
            return Err(format!("window {range:?} is empty"));
        }
        if jiff::tz::TimeZone::get(tz).is_err() {
            return Err(format!(
                "unknown time zone {tz:?}; use an IANA name such as Europe/Berlin or UTC"
            ));
        }
        Ok(Window {
            days: set,
            start_minute: start,
            end_minute: end,
            tz: (*tz).to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_and_globs() {
        let s = Scope::parse("read:jwt-*").expect("valid");
        assert!(s.allows(ScopeAction::Read, "jwt-signing"));
        assert!(!s.allows(ScopeAction::Read, "database"));
        assert!(!s.allows(ScopeAction::Rotate, "jwt-signing"));
        assert!(
            Scope::parse("admin")
                .expect("admin")
                .allows(ScopeAction::Write, "x")
        );
        assert!(Scope::parse("delete:*").is_err());
        assert!(Scope::parse("read").is_err());
        assert!(glob_match("a?c*", "abcdef"));
        assert!(!glob_match("a?c", "abcd"));
        assert!(glob_match("*", ""));
    }

    #[test]
    fn templates_resolve_dotted_names() {
        let t = Template::parse(
            "postgres://{{ database.current.username }}:{{database.current.password}}@db/app {{ a.b.previous }}",
            &["database", "a.b", "a"],
        )
        .expect("valid");
        let refs: Vec<_> = t.refs().collect();
        assert_eq!(refs.len(), 3);
        assert_eq!(refs[0].field.as_deref(), Some("username"));
        assert_eq!(refs[2].secret.as_str(), "a.b");
        assert_eq!(refs[2].stage, Stage::Previous);
        assert!(Template::parse("{{ nope.current }}", &["database"]).is_err());
        assert!(Template::parse("{{ database.latest }}", &["database"]).is_err());
        assert!(Template::parse("{{ database.current", &["database"]).is_err());
    }

    #[test]
    fn windows() {
        let w = Window::parse("Tue-Thu 02:00-04:00 Europe/Berlin").expect("valid");
        assert_eq!(w.days, [false, true, true, true, false, false, false]);
        assert_eq!((w.start_minute, w.end_minute), (120, 240));
        let w = Window::parse("Sat-Mon 22:00-02:00 UTC").expect("valid");
        assert_eq!(w.days, [true, false, false, false, false, true, true]);
        assert!(Window::parse("Tue 02:00-04:00 Mars/Olympus").is_err());
        assert!(Window::parse("Tue 02:00").is_err());
        assert!(Window::parse("Xyz 02:00-03:00 UTC").is_err());
    }
}
