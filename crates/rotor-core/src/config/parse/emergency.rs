//! `[emergency]`: what the checklist after an emergency rotation checks.

use std::path::Path;

use toml_edit::Item;

use super::Walker;
use crate::config::emergency::EmergencyConfig;

pub(super) const EMERGENCY_KEYS: &[&str] = &["health_urls", "error_rate_url", "report_dir"];

impl Walker<'_> {
    pub(super) fn emergency(&mut self, item: Option<&Item>, dir: &Path) -> EmergencyConfig {
        let mut cfg = EmergencyConfig {
            report_dir: dir.join("reports"),
            ..EmergencyConfig::default()
        };
        let Some(item) = item else { return cfg };
        let Some(t) = item.as_table_like() else {
            self.error(
                item.span().unwrap_or(0..0),
                "`emergency` must be a table".into(),
                None,
            );
            return cfg;
        };
        self.unknown_keys(t, EMERGENCY_KEYS, "[emergency]");
        if let Some(urls) = self.strings(t, "health_urls") {
            cfg.health_urls = urls;
        }
        cfg.error_rate_url = self.string(t, "error_rate_url").map(|(s, _)| s);
        if let Some((p, _)) = self.string(t, "report_dir") {
            cfg.report_dir = dir.join(p);
        }
        cfg
    }
}
