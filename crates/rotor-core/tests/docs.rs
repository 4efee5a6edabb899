//! docs/configuration.md documents every key the config parser accepts, and only those.
//!
//! The key lists come from `rotor_core::config::documented_keys()`, the same lists the parser
//! checks unknown keys against: adding a key to the parser without a row in the docs fails here.

use std::collections::BTreeSet;
use std::path::Path;

/// `(heading, body)` of each section of a Markdown file (a section ends at the next heading).
fn sections(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut in_fence = false;
    for line in text.lines() {
        if line.starts_with("```") {
            in_fence = !in_fence;
        }
        if !in_fence && line.starts_with('#') {
            out.push((
                line.trim_start_matches('#').trim().to_owned(),
                String::new(),
            ));
        } else if let Some((_, body)) = out.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out
}

/// The keys a section documents: table rows whose first cell is one backticked word.
fn documented_rows(body: &str) -> BTreeSet<String> {
    body.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once("` |"))
        .map(|(key, _)| key.to_owned())
        .filter(|k| !k.contains(' '))
        .collect()
}

/// The section for a table: its heading names the table in backticks (`[store]`), or is
/// "Top level" for the top-level tables.
fn heading_for(table: &str) -> String {
    if table == "top level" {
        "Top level".to_owned()
    } else {
        format!("`{table}`")
    }
}

#[test]
fn every_config_key_is_documented_under_its_table() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let sections = sections(&text);
    let keys = rotor_core::config::documented_keys();
    assert!(
        keys.len() > 40,
        "the parser's key lists look empty: {keys:?}"
    );

    let mut missing = Vec::new();
    let mut tables: Vec<&str> = keys.iter().map(|(t, _)| t.as_str()).collect();
    tables.dedup();
    for table in &tables {
        let heading = heading_for(table);
        let Some((_, body)) = sections.iter().find(|(h, _)| h.contains(&heading)) else {
            missing.push(format!("no section whose heading contains {heading}"));
            continue;
        };
        let rows = documented_rows(body);
        let known: BTreeSet<String> = keys
            .iter()
            .filter(|(t, _)| t == table)
            .map(|(_, k)| (*k).to_owned())
            .collect();
        for key in known.difference(&rows) {
            missing.push(format!("{table}: `{key}` has no row \"| `{key}` | ...\""));
        }
        for key in rows.difference(&known) {
            missing.push(format!(
                "{table}: `{key}` is documented but the parser does not accept it"
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "docs/configuration.md is out of step with the config parser:\n{}",
        missing.join("\n")
    );
}
