//! `[[render]]`: the targets written for consumers; a file (`dotenv`, `json`, `template`)
//! here, a GitHub target in `github.rs`.

use std::path::Path;

use toml_edit::{Item, TableLike};

use super::Walker;
use crate::Duration;
use crate::config::render::{RenderKind, RenderSpec, Template};

pub(super) const RENDER_KEYS: &[&str] = &[
    "kind",
    "path",
    "template",
    "vars",
    "on_change",
    "timeout",
    "repository",
    "environment",
    "token_env",
    "api_url",
    "secrets",
];
/// The keys of `[[render]]` that only `kind = "github"` has.
pub(super) const GITHUB_ONLY_KEYS: &[&str] = &[
    "repository",
    "environment",
    "token_env",
    "api_url",
    "secrets",
];
/// The keys of `[[render]]` that only files have (a GitHub target runs no command).
pub(super) const FILE_ONLY_KEYS: &[&str] = &["template", "vars", "on_change", "timeout"];

impl Walker<'_> {
    pub(super) fn render(
        &mut self,
        root: &toml_edit::Table,
        dir: &Path,
        known: &[&str],
    ) -> Vec<RenderSpec> {
        let mut out: Vec<RenderSpec> = Vec::new();
        for t in self.tables(root, "render") {
            self.unknown_keys(t, RENDER_KEYS, "[[render]]");
            let kind = match self.string(t, "kind") {
                None => {
                    self.error(
                        0..0,
                        "a [[render]] entry needs `kind`".into(),
                        Some("add kind = \"dotenv\", \"json\", \"template\" or \"github\"".into()),
                    );
                    continue;
                }
                Some((k, span)) => match k.as_str() {
                    "dotenv" => RenderKind::Dotenv,
                    "json" => RenderKind::Json,
                    "template" => RenderKind::Template,
                    "github" => RenderKind::Github,
                    other => {
                        self.error(
                            span,
                            format!("unknown render kind {other:?}"),
                            Some("use dotenv, json, template or github".into()),
                        );
                        continue;
                    }
                },
            };
            let spec = if kind == RenderKind::Github {
                self.github_render(t, dir, known, &out)
            } else {
                self.file_render(t, kind, dir, known)
            };
            if let Some(spec) = spec {
                out.push(spec);
            }
        }
        out
    }

    /// Keys of `t` that belong to the other family of render kinds.
    pub(super) fn foreign_render_keys(
        &mut self,
        t: &dyn TableLike,
        foreign: &[&str],
        kind: &str,
        help: &str,
    ) {
        for key in foreign {
            if let Some(item) = t.get(key) {
                let span = t
                    .key(key)
                    .and_then(|k| k.span())
                    .or_else(|| item.span())
                    .unwrap_or(0..0);
                self.error(
                    span,
                    format!("`{key}` is not a key of a kind = \"{kind}\" render"),
                    Some(help.to_owned()),
                );
            }
        }
    }

    /// A table of name → template string (`[render.vars]`, `[render.secrets]`).
    pub(super) fn render_templates(
        &mut self,
        t: &dyn TableLike,
        key: &str,
        known: &[&str],
    ) -> Option<Vec<(String, Template)>> {
        let item = t.get(key)?;
        let Some(vt) = item.as_table_like() else {
            self.error(
                item.span().unwrap_or(0..0),
                format!("`{key}` must be a table"),
                Some(format!(
                    "write a [render.{key}] section: NAME = \"{{{{ secret.current }}}}\""
                )),
            );
            return Some(Vec::new());
        };
        let mut out = Vec::new();
        for (name, v) in vt.iter() {
            let span = v.span().unwrap_or(0..0);
            let Some(text) = v.as_str() else {
                self.error(
                    span,
                    format!("render {key} `{name}` must be a string"),
                    None,
                );
                continue;
            };
            match Template::parse(text, known) {
                Ok(tpl) => out.push((name.to_owned(), tpl)),
                Err(e) => self.error(span, format!("render {key} `{name}`: {e}"), None),
            }
        }
        Some(out)
    }

    pub(super) fn file_render(
        &mut self,
        t: &dyn TableLike,
        kind: RenderKind,
        dir: &Path,
        known: &[&str],
    ) -> Option<RenderSpec> {
        self.foreign_render_keys(
            t,
            GITHUB_ONLY_KEYS,
            match kind {
                RenderKind::Dotenv => "dotenv",
                RenderKind::Json => "json",
                _ => "template",
            },
            "these keys are for kind = \"github\"; a file render takes path, vars or template, on_change, timeout",
        );
        let Some((path, _)) = self.string(t, "path") else {
            self.error(
                t.get("kind").and_then(Item::span).unwrap_or(0..0),
                "a [[render]] entry needs `path`".into(),
                Some("add path = \".env\"".into()),
            );
            return None;
        };
        let template = self.string(t, "template").map(|(p, _)| dir.join(p));
        if kind == RenderKind::Template && template.is_none() {
            self.error(
                t.get("kind").and_then(Item::span).unwrap_or(0..0),
                "kind = \"template\" needs `template` (the template file)".into(),
                None,
            );
            return None;
        }
        let vars = match self.render_templates(t, "vars", known) {
            Some(vars) => vars,
            None => {
                if kind != RenderKind::Template {
                    self.error(
                        t.get("kind").and_then(Item::span).unwrap_or(0..0),
                        "a dotenv or json render needs `vars`".into(),
                        Some("add a [render.vars] section: NAME = \"{{ secret.current }}\"".into()),
                    );
                }
                Vec::new()
            }
        };
        let on_change = self.string(t, "on_change").map(|(s, _)| s);
        let timeout = self
            .duration(t, "timeout")
            .unwrap_or(Duration::from_secs(60));
        Some(RenderSpec {
            kind,
            path: dir.join(path),
            template,
            vars,
            on_change,
            timeout,
            github: None,
        })
    }
}
