//! `[emergency]`: what the post-rotation checklist checks.

use std::path::PathBuf;

use serde::Serialize;

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
