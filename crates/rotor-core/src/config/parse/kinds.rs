//! The settings of each kind (`kind = "random"`, `"jwt"`, `"postgres"`, `"redis"`,
//! `"manual"`, `"command"`): the keys each accepts and their checks.

use std::ops::Range;

use toml_edit::{Item, TableLike, Value};

use super::Walker;
use crate::config::{
    Alphabet, CommandSettings, JwtAlgorithm, JwtSettings, KindSettings, ManualSettings, PgStrategy,
    PostgresSettings, RandomSettings, RedisSettings,
};
use crate::{Duration, Kind};

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

impl Walker<'_> {
    pub(super) fn kind_settings(
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

    /// A plugin's `settings` table as JSON (strings get `${VAR}` expansion like every other
    /// string). Dates have no JSON form: they are reported, not passed on as text.
    pub(super) fn json_table(
        &mut self,
        table: &dyn TableLike,
        path: &str,
    ) -> Option<serde_json::Value> {
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

    pub(super) fn json_value(&mut self, value: &Value, path: &str) -> Option<serde_json::Value> {
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
    pub(super) fn check_no_password(&mut self, t: &dyn TableLike, key: &str, url: &str) {
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

pub(super) fn kind_keys(kind: Kind) -> &'static [&'static str] {
    kind_keys_of(kind)
}

pub(super) fn kind_keys_of(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Random => RANDOM_KEYS,
        Kind::Jwt => JWT_KEYS,
        Kind::Postgres => POSTGRES_KEYS,
        Kind::Redis => REDIS_KEYS,
        Kind::Manual => MANUAL_KEYS,
        Kind::Command => COMMAND_KEYS,
    }
}
