//! The config parser: TOML document → [`Config`], collecting every diagnostic. This file
//! walks the top level in order; each section has its own file under `parse/`, all of them
//! reading through the span-keeping [`Walker`](walker::Walker) (`parse/walker.rs`).

use std::cell::OnceCell;
use std::path::Path;

use toml_edit::Document;

mod cross;
mod emergency;
mod github;
mod jwt;
mod kinds;
mod notify;
mod render;
mod secret;
mod server;
mod store;
mod tokens;
mod walker;

use super::{Config, ConfigError};
use crate::Kind;
use kinds::kind_keys_of;
use secret::COMMON_KEYS;
use store::{STORE_KEYS, TIER_KEYS};
use walker::Walker;

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
        line_starts: OnceCell::new(),
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
    tables.extend([
        ("[server]".to_owned(), server::SERVER_KEYS),
        ("[[tokens]]".to_owned(), tokens::TOKEN_KEYS),
        ("[[notify]]".to_owned(), notify::NOTIFY_KEYS),
        ("[[render]]".to_owned(), render::RENDER_KEYS),
        ("[emergency]".to_owned(), emergency::EMERGENCY_KEYS),
    ]);
    tables
        .into_iter()
        .flat_map(|(table, keys)| keys.iter().map(move |k| (table.clone(), *k)))
        .collect()
}
