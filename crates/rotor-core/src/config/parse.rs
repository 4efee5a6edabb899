//! The config walker: TOML document → [`Config`], collecting every diagnostic.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml_edit::{Document, Item, TableLike, Value};

mod cross;
mod jwt;
mod sections;

use super::{
    Alphabet, CommandSettings, Config, ConfigError, Diagnostic, JwtAlgorithm, JwtSettings,
    KindSettings, ManualSettings, PgStrategy, PostgresSettings, RandomSettings, RedisSettings,
    SecretSpec, StoreConfig,
};
use crate::policy::{PolicyError, Tiers};
use crate::{Automation, Duration, Kind, Policy, SecretName, Tier};

const TOP_KEYS: &[&str] = &[
    "store",
    "tiers",
    "secrets",
    "server",
    "tokens",
    "notify",
    "render",
    "emergency",
];
const STORE_KEYS: &[&str] = &[
    "kind",
    "path",
    "master_key_file",
    "passphrase_env",
    "url",
    "region",
    "endpoint_url",
    "prefix",
    "ledger",
    "kms_key_id",
    "kms_key_ids",
];
const TIER_KEYS: &[&str] = &["high", "medium", "low"];
const COMMON_KEYS: &[&str] = &[
    "kind",
    "description",
    "owner",
    "tier",
    "rotate_every",
    "grace",
    "automation",
    "requires_confirmation",
    "window",
    "jitter",
    "on_emergency",
    "last_rotated",
];
const RANDOM_KEYS: &[&str] = &["length", "alphabet", "prefix"];
const JWT_KEYS: &[&str] = &[
    "algorithm",
    "rsa_bits",
    "prepublish",
    "jwks_max_age",
    "token_lifetime",
    "leeway",
];
const POSTGRES_KEYS: &[&str] = &["url", "role", "strategy", "admin"];
const REDIS_KEYS: &[&str] = &["url", "user", "admin"];
const MANUAL_KEYS: &[&str] = &["check"];
const COMMAND_KEYS: &[&str] = &["command", "timeout", "settings"];

/// The least entropy a generated secret may have.
const MIN_RANDOM_BITS: f64 = 128.0;

/// Parses and validates a config file's text. `path` is used for messages and to resolve
/// relative paths; `env` looks up `${VAR}` references (pass `|k| std::env::var(k).ok()`).
pub fn parse(
    text: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let mut w = Walker {
        text,
        file: path.to_path_buf(),
        env,
        diags: Vec::new(),
        warnings: Vec::new(),
        secret: None,
    };
    let doc = match Document::parse(text) {
        Ok(d) => d,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let msg = e.message().trim().to_owned();
            let help = if msg.contains("duplicate key") {
                "each secret (and each key) may appear once: rename or merge the duplicate"
            } else {
                "fix the TOML syntax at this place"
            };
            w.error(span, msg, Some(help.into()));
            return Err(ConfigError {
                diagnostics: w.diags,
            });
        }
    };
    let root = doc.as_table();
    w.unknown_keys(root, TOP_KEYS, "top level");

    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let store = w.store(root.get("store"), &dir);
    let tiers = w.tiers(root.get("tiers"));
    let mut secrets = Vec::new();
    match root.get("secrets") {
        None => {}
        Some(item) => match item.as_table_like() {
            None => w.error(
                item.span().unwrap_or(0..0),
                "`secrets` must be a table of secrets".into(),
                Some("write each secret as a [secrets.NAME] section".into()),
            ),
            Some(table) => {
                for (name, item) in table.iter() {
                    let key_span = table
                        .key(name)
                        .and_then(|k| k.span())
                        .or_else(|| item.span())
                        .unwrap_or(0..0);
                    w.secret = Some(name.to_owned());
                    if let Some(spec) = w.secret_spec(name, key_span, item, &tiers) {
                        secrets.push(spec);
                    }
                    w.secret = None;
                }
            }
        },
    }
    w.cross_checks(&secrets, root);
    let server = w.server(root.get("server"), &dir);
    let tokens = w.tokens(root);
    let notify = w.notify(root);
    let known: Vec<&str> = secrets.iter().map(|s| s.name.as_str()).collect();
    let render = w.render(root, &dir, &known);
    let emergency = w.emergency(root.get("emergency"), &dir);

    if w.diags.is_empty() {
        Ok(Config {
            source: path.to_path_buf(),
            store: store.expect("a store config exists when there are no diagnostics"),
            tiers,
            secrets,
            server,
            tokens,
            notify,
            render,
            emergency,
            warnings: w.warnings,
            index: Default::default(),
        }
        .indexed())
    } else {
        Err(ConfigError {
            diagnostics: w.diags,
        })
    }
}

struct Walker<'a> {
    text: &'a str,
    file: PathBuf,
    env: &'a dyn Fn(&str) -> Option<String>,
    diags: Vec<Diagnostic>,
    /// Diagnostics that do not make the config invalid ([`Config::warnings`]).
    warnings: Vec<Diagnostic>,
    /// The secret being walked, named in its diagnostics.
    secret: Option<String>,
}

impl Walker<'_> {
    fn error(&mut self, span: Range<usize>, message: String, help: Option<String>) {
        let d = self.diagnostic(span, message, help);
        self.diags.push(d);
    }

    /// A problem that does not make the config invalid (see [`Config::warnings`]).
    fn warn(&mut self, span: Range<usize>, message: String, help: Option<String>) {
        let d = self.diagnostic(span, message, help);
        self.warnings.push(d);
    }

    fn diagnostic(&self, span: Range<usize>, message: String, help: Option<String>) -> Diagnostic {
        let (line, column) = line_col(self.text, span.start);
        Diagnostic {
            file: self.file.clone(),
            line,
            column,
            secret: self.secret.clone(),
            message,
            help,
        }
    }

    fn unknown_keys(&mut self, table: &dyn TableLike, known: &[&str], section: &str) {
        for (key, item) in table.iter() {
            if known.contains(&key) {
                continue;
            }
            let span = table
                .key(key)
                .and_then(|k| k.span())
                .or_else(|| item.span())
                .unwrap_or(0..0);
            let help = match suggest(key, known) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("known keys here: {}", known.join(", ")),
            };
            self.error(
                span,
                format!("unknown key `{key}` in {section}"),
                Some(help),
            );
        }
    }

    /// A string value, with `${VAR}` expanded. Reports a wrong type.
    fn string(&mut self, table: &dyn TableLike, key: &str) -> Option<(String, Range<usize>)> {
        let item = table.get(key)?;
        let span = item.span().unwrap_or(0..0);
        match item.as_str() {
            Some(s) => {
                let s = s.to_owned();
                self.interpolate(&s, span.clone()).map(|v| (v, span))
            }
            None => {
                self.error(
                    span,
                    format!("`{key}` must be a string"),
                    Some(format!("quote it: {key} = \"...\"")),
                );
                None
            }
        }
    }

    fn interpolate(&mut self, s: &str, span: Range<usize>) -> Option<String> {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        let mut ok = true;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if let Some(stripped) = after.strip_prefix('$') {
                out.push('$');
                rest = stripped;
            } else if let Some(body) = after.strip_prefix('{') {
                let Some(end) = body.find('}') else {
                    self.error(
                        span.clone(),
                        "unclosed `${` in a string".into(),
                        Some("write ${VAR}, or $$ for a literal $".into()),
                    );
                    return None;
                };
                let var = &body[..end];
                match (self.env)(var) {
                    Some(v) => out.push_str(&v),
                    None => {
                        self.error(
                            span.clone(),
                            format!("environment variable `{var}` is not set"),
                            Some(format!("export {var}=... before running rotor (e.g. source the env file of scripts/dev-services)")),
                        );
                        ok = false;
                    }
                }
                rest = &body[end + 1..];
            } else {
                out.push('$');
                rest = after;
            }
        }
        out.push_str(rest);
        ok.then_some(out)
    }

    fn duration(&mut self, table: &dyn TableLike, key: &str) -> Option<Duration> {
        let item = table.get(key)?;
        let span = item.span().unwrap_or(0..0);
        if item.as_integer().is_some() {
            self.error(
                span,
                format!("`{key}` must be a duration string, not a number"),
                Some(format!("write e.g. {key} = \"90d\" (units: w, d, h, m, s)")),
            );
            return None;
        }
        let (s, span) = self.string(table, key)?;
        match Duration::parse(&s) {
            Ok(d) => Some(d),
            Err(e) => {
                self.error(span, format!("`{key}`: {e}"), None);
                None
            }
        }
    }

    /// A point in time a person declares (`last_rotated = "2026-06-01"`): a date (midnight
    /// UTC), an RFC 3339 timestamp with its offset, or the same as a TOML date literal.
    fn declared_time(&mut self, table: &dyn TableLike, key: &str) -> Option<jiff::Timestamp> {
        let item = table.get(key)?;
        let span = item.span().unwrap_or(0..0);
        let text = match item.as_value() {
            Some(Value::String(s)) => s.value().clone(),
            Some(Value::Datetime(d)) => d.value().to_string(),
            _ => String::new(),
        };
        // A bare date is exactly `YYYY-MM-DD`: a time without its offset is ambiguous.
        let parsed = text.parse::<jiff::Timestamp>().ok().or_else(|| {
            let date = (text.len() == 10)
                .then(|| text.parse::<jiff::civil::Date>().ok())
                .flatten()?;
            date.to_zoned(jiff::tz::TimeZone::UTC)
                .ok()
                .map(|z| z.timestamp())
        });
        if parsed.is_none() {
            self.error(
                span,
                format!("`{key}` must be a date or a time with its offset"),
                Some(format!(
                    "write e.g. {key} = \"2026-06-01\" (midnight UTC) or {key} = \"2026-06-01T09:30:00Z\""
                )),
            );
        }
        parsed
    }

    fn bool(&mut self, table: &dyn TableLike, key: &str) -> Option<bool> {
        let item = table.get(key)?;
        match item.as_bool() {
            Some(b) => Some(b),
            None => {
                self.error(
                    item.span().unwrap_or(0..0),
                    format!("`{key}` must be true or false"),
                    Some(format!("write {key} = true (no quotes)")),
                );
                None
            }
        }
    }

    fn integer(&mut self, table: &dyn TableLike, key: &str, min: i64, max: i64) -> Option<i64> {
        let item = table.get(key)?;
        let span = item.span().unwrap_or(0..0);
        match item.as_integer() {
            Some(n) if (min..=max).contains(&n) => Some(n),
            Some(n) => {
                self.error(
                    span,
                    format!("`{key}` = {n} is out of range"),
                    Some(format!("use a number from {min} to {max}")),
                );
                None
            }
            None => {
                self.error(
                    span,
                    format!("`{key}` must be a whole number"),
                    Some(format!("write {key} = 32 (no quotes)")),
                );
                None
            }
        }
    }

    fn secret_name(&mut self, table: &dyn TableLike, key: &str) -> Option<SecretName> {
        let (s, span) = self.string(table, key)?;
        match SecretName::new(&s) {
            Ok(n) => Some(n),
            Err(e) => {
                self.error(span, format!("`{key}`: {e}"), None);
                None
            }
        }
    }

    fn store(&mut self, item: Option<&Item>, dir: &Path) -> Option<StoreConfig> {
        let default = || StoreConfig::Sqlite {
            path: dir.join("rotor.db"),
            master_key_file: dir.join("rotor.key"),
            passphrase_env: None,
        };
        let Some(item) = item else {
            return Some(default());
        };
        let Some(t) = item.as_table_like() else {
            self.error(
                item.span().unwrap_or(0..0),
                "`store` must be a table".into(),
                Some("write a [store] section".into()),
            );
            return None;
        };
        self.unknown_keys(t, STORE_KEYS, "[store]");
        let kind = match self.string(t, "kind") {
            None => "sqlite".to_owned(),
            Some((kind, span)) => {
                if !["sqlite", "postgres", "aws"].contains(&kind.as_str()) {
                    self.error(
                        span,
                        format!("unknown store kind `{kind}`"),
                        Some("use kind = \"sqlite\" (embedded), \"postgres\" or \"aws\"".into()),
                    );
                    return None;
                }
                kind
            }
        };
        let header = item.span().unwrap_or(0..0);
        match kind.as_str() {
            "aws" => {
                let region = self.string(t, "region").map(|(s, _)| s);
                let endpoint_url = self.string(t, "endpoint_url").map(|(s, _)| s);
                let prefix = self.string(t, "prefix").map(|(s, _)| s).unwrap_or_default();
                let ledger = match self.string(t, "ledger") {
                    None => {
                        self.error(
                            header,
                            "an aws store needs a `ledger` for rotation state and the audit log".into(),
                            Some("add ledger = \"sqlite\" (with path) or ledger = \"postgres\" (with url)".into()),
                        );
                        return None;
                    }
                    Some((l, span)) => match l.as_str() {
                        "sqlite" | "postgres" => self.ledger_store(t, &l, dir, &header)?,
                        other => {
                            self.error(
                                span,
                                format!("unknown ledger `{other}`"),
                                Some("use \"sqlite\" or \"postgres\"".into()),
                            );
                            return None;
                        }
                    },
                };
                let kms_key_id = self.string(t, "kms_key_id").map(|(s, _)| s);
                let kms_key_ids = self.kms_key_ids(t);
                Some(StoreConfig::Aws {
                    region,
                    endpoint_url,
                    prefix,
                    kms_key_id,
                    kms_key_ids,
                    ledger: Box::new(ledger),
                })
            }
            other => self.ledger_store(t, other, dir, &header),
        }
    }

    /// `[store.kms_key_ids]`: secret name → KMS key id, ARN or alias.
    fn kms_key_ids(&mut self, t: &dyn TableLike) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let Some(item) = t.get("kms_key_ids") else {
            return out;
        };
        let Some(table) = item.as_table_like() else {
            self.error(
                item.span().unwrap_or(0..0),
                "`kms_key_ids` must be a table of secret name = KMS key".into(),
                Some(
                    "write [store.kms_key_ids] with lines like jwt-signing = \"alias/rotor\""
                        .into(),
                ),
            );
            return out;
        };
        for (name, value) in table.iter() {
            match value.as_str() {
                Some(v) if !v.is_empty() => {
                    out.insert(name.to_owned(), v.to_owned());
                }
                _ => self.error(
                    value.span().unwrap_or(0..0),
                    format!("kms_key_ids.{name} must be a non-empty string"),
                    Some("give a KMS key id, key ARN or alias (alias/NAME)".into()),
                ),
            }
        }
        out
    }

    /// The `sqlite` or `postgres` part of a `[store]` (also an aws store's ledger).
    fn ledger_store(
        &mut self,
        t: &dyn TableLike,
        kind: &str,
        dir: &Path,
        header: &Range<usize>,
    ) -> Option<StoreConfig> {
        let master_key_file = self
            .string(t, "master_key_file")
            .map_or_else(|| dir.join("rotor.key"), |(p, _)| dir.join(p));
        let passphrase_env = self.string(t, "passphrase_env").map(|(s, _)| s);
        if kind == "postgres" {
            let url =
                self.required_string(t, "url", header, "url = \"postgres://rotor@db:5432/rotor\"")?;
            if passphrase_env.is_some() {
                self.error(
                    t.get("passphrase_env").and_then(Item::span).unwrap_or(0..0),
                    "a postgres store takes its master key from ROTOR_MASTER_KEY or master_key_file".into(),
                    Some("remove passphrase_env".into()),
                );
            }
            return Some(StoreConfig::Postgres {
                url: crate::SecretUrl::new(url),
                master_key_file,
            });
        }
        let path = self
            .string(t, "path")
            .map_or_else(|| dir.join("rotor.db"), |(p, _)| dir.join(p));
        Some(StoreConfig::Sqlite {
            path,
            master_key_file,
            passphrase_env,
        })
    }

    fn tiers(&mut self, item: Option<&Item>) -> Tiers {
        let mut tiers = Tiers::default();
        let Some(item) = item else { return tiers };
        let Some(t) = item.as_table_like() else {
            self.error(
                item.span().unwrap_or(0..0),
                "`tiers` must be a table".into(),
                Some("write a [tiers] section with high, medium and low".into()),
            );
            return tiers;
        };
        self.unknown_keys(t, TIER_KEYS, "[tiers]");
        for (tier, slot) in [
            ("high", &mut tiers.high),
            ("medium", &mut tiers.medium),
            ("low", &mut tiers.low),
        ] {
            if let Some(d) = self.duration(t, tier) {
                if d.is_zero() {
                    self.error(
                        t.get(tier).and_then(Item::span).unwrap_or(0..0),
                        format!("tier `{tier}` cannot be 0s"),
                        None,
                    );
                } else {
                    *slot = d;
                }
            }
        }
        tiers
    }

    fn secret_spec(
        &mut self,
        name: &str,
        key_span: Range<usize>,
        item: &Item,
        tiers: &Tiers,
    ) -> Option<SecretSpec> {
        let before = self.diags.len();
        let name = match SecretName::new(name) {
            Ok(n) => Some(n),
            Err(e) => {
                self.error(key_span.clone(), e.to_string(), None);
                None
            }
        };
        let Some(t) = item.as_table_like() else {
            self.error(
                key_span,
                "a secret must be a table".into(),
                Some("write it as a [secrets.NAME] section".into()),
            );
            return None;
        };
        let header = item.span().unwrap_or(key_span);

        let kind = match self.string(t, "kind") {
            None if t.get("kind").is_none() => {
                self.error(
                    header.clone(),
                    "missing `kind`".into(),
                    Some(format!("add kind = one of {}", kinds_list())),
                );
                None
            }
            None => None,
            Some((k, span)) => match Kind::parse(&k) {
                Some(kind) => Some(kind),
                None => {
                    let names: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
                    let help = match suggest(&k, &names) {
                        Some(s) => format!("did you mean `{s}`? (kinds: {})", kinds_list()),
                        None => format!("use one of {}", kinds_list()),
                    };
                    self.error(span, format!("unknown kind `{k}`"), Some(help));
                    None
                }
            },
        };

        // Unknown keys: common keys plus the kind's own (when the kind is known).
        let kind_keys = kind.map_or(&[][..], kind_keys);
        let known: Vec<&str> = COMMON_KEYS.iter().chain(kind_keys).copied().collect();
        if kind.is_some() {
            let section = format!("[secrets.{}]", self.secret.clone().unwrap_or_default());
            for (key, it) in t.iter() {
                if known.contains(&key) {
                    continue;
                }
                let span = t
                    .key(key)
                    .and_then(|k| k.span())
                    .or_else(|| it.span())
                    .unwrap_or(0..0);
                let owner = Kind::ALL
                    .into_iter()
                    .find(|k| kind_keys_of(*k).contains(&key));
                let help = if let Some(s) = suggest(key, &known) {
                    format!("did you mean `{s}`?")
                } else if let Some(other) = owner {
                    format!(
                        "`{key}` is a setting of kind `{other}`, not `{}`",
                        kind.map_or("", |k| k.as_str())
                    )
                } else {
                    format!("known keys for this kind: {}", known.join(", "))
                };
                self.error(
                    span,
                    format!("unknown key `{key}` in {section}"),
                    Some(help),
                );
            }
        }

        let description = self.string(t, "description").map(|(s, _)| s);
        let owner = self.string(t, "owner").map(|(s, _)| s);

        // Every field is read even after an error, so one `rotor check` reports every problem
        // of the secret at once; the spec is built only when none was found.
        let tier_given = t.get("tier").is_some();
        let tier = match self.string(t, "tier") {
            Some((s, span)) => match Tier::parse(&s) {
                Some(tier) => Some(tier),
                None => {
                    self.error(
                        span,
                        format!("unknown tier `{s}`"),
                        Some("use high (90d), medium (180d) or low (365d), or set rotate_every instead".into()),
                    );
                    None
                }
            },
            None => None,
        };
        let rotate_every = self.duration(t, "rotate_every");
        let period = match (
            tier,
            rotate_every,
            tier_given,
            t.get("rotate_every").is_some(),
        ) {
            (Some(_), Some(_), _, _) => {
                self.error(
                    t.get("rotate_every")
                        .and_then(Item::span)
                        .unwrap_or(header.clone()),
                    "both `tier` and `rotate_every` are set".into(),
                    Some("keep one: the tier's period, or an explicit rotate_every".into()),
                );
                None
            }
            (Some(tier), None, _, false) => Some(tiers.get(tier)),
            (None, Some(d), _, _) => Some(d),
            (None, None, false, false) => {
                self.error(
                    header.clone(),
                    "no schedule".into(),
                    Some("add tier = \"high\" (90d), \"medium\" (180d) or \"low\" (365d), or rotate_every = \"90d\"".into()),
                );
                None
            }
            // A bad tier or rotate_every: already reported.
            _ => None,
        };
        let period = match period {
            Some(p) if p.is_zero() => {
                self.error(
                    t.get("rotate_every")
                        .and_then(Item::span)
                        .unwrap_or(header.clone()),
                    PolicyError::ZeroPeriod.to_string(),
                    Some("write e.g. rotate_every = \"90d\", or use a tier".into()),
                );
                None
            }
            other => other,
        };

        let automation = match self.string(t, "automation") {
            Some((s, span)) => match s.as_str() {
                "automatic" => Some(Automation::Automatic),
                "manual" => Some(Automation::Manual),
                _ => {
                    self.error(
                        span,
                        format!("unknown automation `{s}`"),
                        Some("use \"automatic\" or \"manual\"".into()),
                    );
                    None
                }
            },
            None => None,
        };
        let requires_confirmation = self.bool(t, "requires_confirmation").unwrap_or(false);
        let window = self.window(t);
        let jitter = self.duration(t, "jitter").unwrap_or(Duration::ZERO);
        let on_emergency = self.string(t, "on_emergency").map(|(s, _)| s);
        let last_rotated = self.declared_time(t, "last_rotated");

        let settings = kind
            .and_then(|kind| self.kind_settings(kind, t, &header))
            .map(|s| match s {
                KindSettings::Jwt(j) => KindSettings::Jwt(self.jwt_caching(j, t, &header, period)),
                other => other,
            });
        let automation = match (kind, automation) {
            (Some(Kind::Manual), Some(Automation::Automatic)) => {
                self.error(
                    t.get("automation").and_then(Item::span).unwrap_or(header.clone()),
                    "a manual secret cannot rotate automatically".into(),
                    Some("rotor cannot invent a vendor's API key: set automation = \"manual\", or use kind = \"command\" with a plugin that calls the vendor".into()),
                );
                None
            }
            (Some(Kind::Manual), None) => Some(Automation::Manual),
            (_, Some(a)) => Some(a),
            (_, None) if t.get("automation").is_some() => None,
            (_, None) => Some(Automation::Automatic),
        };
        let grace = match (self.duration(t, "grace"), &settings) {
            (Some(g), _) => Some(g),
            (None, _) if t.get("grace").is_some() => None,
            (None, Some(settings)) => Some(default_grace(settings)),
            (None, None) => None,
        };
        if let (Some(KindSettings::Jwt(j)), Some(g)) = (&settings, grace)
            && t.get("grace").is_some()
        {
            self.jwt_grace(j, g, t, &header);
        }
        let policy = match (period, grace, automation) {
            (Some(period), Some(grace), Some(automation)) => {
                match Policy::new(tier, period, grace, automation, requires_confirmation) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        let span = t
                            .get("grace")
                            .and_then(Item::span)
                            .unwrap_or(header.clone());
                        self.error(
                            span,
                            e.to_string(),
                            Some(format!(
                                "shorten grace below {period} (the previous value must be retired before the next rotation), or lengthen the schedule"
                            )),
                        );
                        None
                    }
                }
            }
            _ => None,
        };
        if self.diags.len() > before {
            return None;
        }
        Some(SecretSpec {
            name: name?,
            kind: kind?,
            description,
            owner,
            policy: policy?,
            settings: settings?,
            window,
            jitter,
            on_emergency,
            last_rotated,
        })
    }

    fn kind_settings(
        &mut self,
        kind: Kind,
        t: &dyn TableLike,
        header: &Range<usize>,
    ) -> Option<KindSettings> {
        let before = self.diags.len();
        let settings = match kind {
            Kind::Random => {
                let length = self.integer(t, "length", 1, 4096).unwrap_or(32) as usize;
                let alphabet = match self.string(t, "alphabet") {
                    None => Alphabet::Alnum,
                    Some((s, span)) => match s.as_str() {
                        "alnum" => Alphabet::Alnum,
                        "base64" => Alphabet::Base64,
                        "base64url" => Alphabet::Base64Url,
                        "hex" => Alphabet::Hex,
                        custom if custom.starts_with("custom:") => {
                            let chars: String = custom["custom:".len()..].to_owned();
                            let mut uniq: Vec<char> = chars.chars().collect();
                            uniq.sort_unstable();
                            uniq.dedup();
                            if uniq.len() < 2 || uniq.len() != chars.chars().count() {
                                self.error(
                                    span,
                                    "a custom alphabet needs at least 2 distinct characters, each listed once".into(),
                                    Some("write alphabet = \"custom:ABCDEF...\"".into()),
                                );
                                return None;
                            }
                            Alphabet::Custom(chars)
                        }
                        other => {
                            self.error(
                                span,
                                format!("unknown alphabet `{other}`"),
                                Some(
                                    "use alnum, base64, base64url, hex, or \"custom:CHARS\"".into(),
                                ),
                            );
                            return None;
                        }
                    },
                };
                let bits = alphabet.bits_per_char() * length as f64;
                if bits < MIN_RANDOM_BITS {
                    let need = (MIN_RANDOM_BITS / alphabet.bits_per_char()).ceil();
                    self.error(
                        t.get("length").and_then(Item::span).unwrap_or(header.clone()),
                        format!("{length} characters of this alphabet carry only {bits:.0} bits of entropy"),
                        Some(format!("set length to at least {need} (128 bits)")),
                    );
                }
                let prefix = self.string(t, "prefix").map(|(s, _)| s).unwrap_or_default();
                KindSettings::Random(RandomSettings {
                    length,
                    alphabet,
                    prefix,
                })
            }
            Kind::Jwt => {
                // A bad algorithm or size is reported and the other keys are still read
                // (the diagnostic count decides at the end).
                let mut known_algorithm = true;
                let algorithm = match self.string(t, "algorithm") {
                    None => JwtAlgorithm::HS256,
                    Some((s, span)) => match JwtAlgorithm::parse(&s) {
                        Some(a) => a,
                        None => {
                            let names: Vec<&str> =
                                JwtAlgorithm::ALL.iter().map(|a| a.as_str()).collect();
                            self.error(
                                span,
                                format!("unsupported JWT algorithm `{s}`"),
                                Some(format!("use one of {}", names.join(", "))),
                            );
                            known_algorithm = false;
                            JwtAlgorithm::HS256
                        }
                    },
                };
                let rsa_bits = match self.integer(t, "rsa_bits", 0, 16384) {
                    None => 2048,
                    Some(b @ (2048 | 3072)) => b as u16,
                    Some(b) => {
                        self.error(
                            t.get("rsa_bits")
                                .and_then(Item::span)
                                .unwrap_or(header.clone()),
                            format!("rsa_bits = {b} is not supported"),
                            Some("use 2048 or 3072".into()),
                        );
                        2048
                    }
                };
                if known_algorithm
                    && t.get("rsa_bits").is_some()
                    && algorithm != JwtAlgorithm::RS256
                {
                    self.error(
                        t.get("rsa_bits")
                            .and_then(Item::span)
                            .unwrap_or(header.clone()),
                        format!("rsa_bits only applies to RS256, not {}", algorithm.as_str()),
                        Some("remove rsa_bits".into()),
                    );
                }
                JwtSettings {
                    algorithm,
                    rsa_bits,
                    // Filled in by `jwt_caching`, which knows the rotation period.
                    prepublish: Duration::ZERO,
                    jwks_max_age: Duration::ZERO,
                    token_lifetime: self
                        .duration(t, "token_lifetime")
                        .unwrap_or(Duration::from_mins(30)),
                    leeway: self.duration(t, "leeway").unwrap_or(Duration::from_mins(1)),
                }
                .into()
            }
            Kind::Postgres => {
                let url = self.required_string(
                    t,
                    "url",
                    header,
                    "url = \"postgres://127.0.0.1:5432/app\"",
                );
                let role = self.required_string(t, "role", header, "role = \"app_user\"");
                let strategy = match self.string(t, "strategy") {
                    None => Some(PgStrategy::Single),
                    Some((s, span)) => match s.as_str() {
                        "single" => Some(PgStrategy::Single),
                        "alternating" => Some(PgStrategy::Alternating),
                        other => {
                            self.error(
                                span,
                                format!("unknown strategy `{other}`"),
                                Some("use \"single\" or \"alternating\" (zero downtime)".into()),
                            );
                            None
                        }
                    },
                };
                let admin = self.secret_name(t, "admin");
                // Without an admin, a login role of the pair would have to change the other
                // one's password: every rotation would fail at `set`.
                if strategy == Some(PgStrategy::Alternating) && t.get("admin").is_none() {
                    self.error(
                        t.get("strategy").and_then(Item::span).unwrap_or(header.clone()),
                        "the alternating strategy needs an `admin`: one login role of the pair cannot change the other's password".into(),
                        Some("add admin = \"postgres-admin\", naming a postgres secret whose role has CREATEROLE (or use strategy = \"single\")".into()),
                    );
                }
                if let Some(u) = &url {
                    self.check_no_password(t, "url", u);
                }
                KindSettings::Postgres(PostgresSettings {
                    url: url?,
                    role: role?,
                    strategy: strategy?,
                    admin,
                })
            }
            Kind::Redis => {
                let url =
                    self.required_string(t, "url", header, "url = \"redis://127.0.0.1:6379\"");
                let user = self
                    .string(t, "user")
                    .map_or_else(|| "default".to_owned(), |(s, _)| s);
                let admin = self.secret_name(t, "admin");
                if let Some(u) = &url {
                    self.check_no_password(t, "url", u);
                }
                KindSettings::Redis(RedisSettings {
                    url: url?,
                    user,
                    admin,
                })
            }
            Kind::Manual => KindSettings::Manual(ManualSettings {
                check: self.string(t, "check").map(|(s, _)| s),
            }),
            Kind::Command => {
                let command = match t.get("command") {
                    None => {
                        self.error(
                            header.clone(),
                            "missing `command`".into(),
                            Some("add command = [\"/path/to/plugin\", \"arg\"]".into()),
                        );
                        return None;
                    }
                    Some(item) => match item.as_array() {
                        Some(arr)
                            if !arr.is_empty() && arr.iter().all(|v| v.as_str().is_some()) =>
                        {
                            arr.iter()
                                .filter_map(Value::as_str)
                                .map(str::to_owned)
                                .collect()
                        }
                        _ => {
                            self.error(
                                item.span().unwrap_or(header.clone()),
                                "`command` must be a non-empty array of strings".into(),
                                Some("write command = [\"/path/to/plugin\", \"arg\"]".into()),
                            );
                            return None;
                        }
                    },
                };
                let settings = match t.get("settings") {
                    None => serde_json::Value::Object(serde_json::Map::new()),
                    Some(item) => match item.as_table_like() {
                        Some(table) => self.json_table(table, "settings")?,
                        None => {
                            self.error(
                                item.span().unwrap_or(header.clone()),
                                "`settings` must be a table".into(),
                                Some("write settings = { key = \"value\" }, or a [secrets.NAME.settings] table".into()),
                            );
                            return None;
                        }
                    },
                };
                KindSettings::Command(CommandSettings {
                    command,
                    timeout: self
                        .duration(t, "timeout")
                        .unwrap_or(Duration::from_secs(30)),
                    settings,
                })
            }
        };
        (self.diags.len() == before).then_some(settings)
    }

    fn required_string(
        &mut self,
        t: &dyn TableLike,
        key: &str,
        header: &Range<usize>,
        example: &str,
    ) -> Option<String> {
        if t.get(key).is_none() {
            self.error(
                header.clone(),
                format!("missing `{key}`"),
                Some(format!("add {example}")),
            );
            return None;
        }
        self.string(t, key).map(|(s, _)| s)
    }

    /// A plugin's `settings` table as JSON (strings get `${VAR}` expansion like every other
    /// string). Dates have no JSON form: they are reported, not passed on as text.
    fn json_table(&mut self, table: &dyn TableLike, path: &str) -> Option<serde_json::Value> {
        let mut map = serde_json::Map::new();
        let mut ok = true;
        for (key, item) in table.iter() {
            let here = format!("{path}.{key}");
            let value = if let Some(sub) = item.as_table_like() {
                self.json_table(sub, &here)
            } else if let Some(v) = item.as_value() {
                self.json_value(v, &here)
            } else {
                None
            };
            match value {
                Some(v) => {
                    map.insert(key.to_owned(), v);
                }
                None => ok = false,
            }
        }
        ok.then_some(serde_json::Value::Object(map))
    }

    fn json_value(&mut self, value: &Value, path: &str) -> Option<serde_json::Value> {
        let span = value.span().unwrap_or(0..0);
        Some(match value {
            Value::String(s) => serde_json::Value::String(self.interpolate(s.value(), span)?),
            Value::Integer(i) => serde_json::Value::from(*i.value()),
            Value::Float(f) => serde_json::Value::from(*f.value()),
            Value::Boolean(b) => serde_json::Value::Bool(*b.value()),
            Value::Array(a) => {
                let mut out = Vec::new();
                for (i, v) in a.iter().enumerate() {
                    out.push(self.json_value(v, &format!("{path}[{i}]"))?);
                }
                serde_json::Value::Array(out)
            }
            Value::InlineTable(t) => self.json_table(t, path)?,
            Value::Datetime(_) => {
                self.error(
                    span,
                    format!("`{path}` is a date, which a plugin's settings cannot carry"),
                    Some("quote it: write the date as a string".into()),
                );
                return None;
            }
        })
    }

    /// Credentials come from managed secrets; a password in a URL would sit in the config in
    /// plain text.
    fn check_no_password(&mut self, t: &dyn TableLike, key: &str, url: &str) {
        let authority = url.split("://").nth(1).unwrap_or(url);
        let authority = authority.split('/').next().unwrap_or(authority);
        if let Some(userinfo) = authority.rsplit_once('@').map(|(u, _)| u)
            && userinfo.contains(':')
        {
            {
                self.error(
                    t.get(key).and_then(Item::span).unwrap_or(0..0),
                    format!("`{key}` contains a password"),
                    Some("remove it from the URL; rotor reads credentials from the managed secret named by `admin`".into()),
                );
            }
        }
    }
}

impl From<JwtSettings> for KindSettings {
    fn from(s: JwtSettings) -> Self {
        KindSettings::Jwt(s)
    }
}

fn default_grace(settings: &KindSettings) -> Duration {
    match settings {
        // Tokens signed just before finish stay valid for their lifetime plus clock leeway.
        KindSettings::Jwt(j) => j.token_lifetime.saturating_add(j.leeway),
        _ => Duration::from_hours(1),
    }
}

fn kind_keys(kind: Kind) -> &'static [&'static str] {
    kind_keys_of(kind)
}

fn kind_keys_of(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Random => RANDOM_KEYS,
        Kind::Jwt => JWT_KEYS,
        Kind::Postgres => POSTGRES_KEYS,
        Kind::Redis => REDIS_KEYS,
        Kind::Manual => MANUAL_KEYS,
        Kind::Command => COMMAND_KEYS,
    }
}

fn kinds_list() -> String {
    Kind::ALL
        .iter()
        .map(|k| format!("\"{k}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The closest known word, if it is close enough to be a typo.
fn suggest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(word, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// 1-based line and column (in characters) of byte offset `at`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Every `(table, key)` pair the parser accepts, from the very lists it checks unknown keys
/// against, so `docs/configuration.md` can be tested to cover each one. Tables are written as
/// in a config file (`[store]`, `[[tokens]]`, `[secrets.NAME]`); the settings of a kind are
/// under `[secrets.NAME] kind = "KIND"`, and the top level's keys are the tables themselves.
pub fn documented_keys() -> Vec<(String, &'static str)> {
    let mut tables: Vec<(String, &'static [&'static str])> = vec![
        ("top level".into(), TOP_KEYS),
        ("[store]".into(), STORE_KEYS),
        ("[tiers]".into(), TIER_KEYS),
        ("[secrets.NAME]".into(), COMMON_KEYS),
    ];
    tables.extend(
        Kind::ALL
            .into_iter()
            .map(|k| (format!("[secrets.NAME] kind = \"{k}\""), kind_keys_of(k))),
    );
    tables.extend(
        sections::section_keys()
            .into_iter()
            .map(|(t, keys)| (t.to_owned(), keys)),
    );
    tables
        .into_iter()
        .flat_map(|(table, keys)| keys.iter().map(move |k| (table.clone(), *k)))
        .collect()
}
