//! How a command ends: the exit code (stable, for scripts and cron) and the one error line.
//!
//! Exit codes:
//! - 0: success
//! - 1: the operation failed (a rotation step, a rejected token, a broken audit chain)
//! - 2: bad usage or an invalid config: a missing config file, a bad scope, `--emergency`
//!   without `--reason`, rotating a manual secret, `rotor check` finding errors
//! - 3: something is overdue (`rotor status --fail-on-overdue`)
//! - 4: busy: another rotation or process holds the secret or the store
//! - 5: the store cannot be opened (missing, corrupt, newer schema, wrong or missing master key)
//! - 141: stdout was closed early (`rotor plan | head`), as a shell reports SIGPIPE; no message

use std::fmt;

use crate::cli::Format;

/// A failure whose exit code is decided by the command, not by the error's type.
#[derive(Debug)]
pub struct Exit(pub u8);

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exit {}", self.0)
    }
}

impl std::error::Error for Exit {}

/// The caller asked for something that cannot work as asked (exit 2). The message says what
/// to do instead.
#[derive(Debug)]
pub struct Usage(pub String);

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

const BROKEN_PIPE: u8 = 141;

/// Prints `e` once on stderr (text, or one JSON object with `--format json`) and returns the
/// exit code.
pub fn report(e: &anyhow::Error, format: Format) -> u8 {
    if let Some(Exit(code)) = e.downcast_ref::<Exit>() {
        return *code;
    }
    let code = code(e);
    if code == BROKEN_PIPE {
        return code;
    }
    let message = message(e);
    match format {
        Format::Json => {
            let body = serde_json::json!({
                "error": { "code": name(code), "exit_code": code, "message": message }
            });
            eprintln!("{body}");
        }
        Format::Table => eprintln!("error: {message}"),
    }
    code
}

/// The chain of causes joined by `: `, each said once: many errors already quote their
/// source in their own message, and printing both read "Address already in use (os error
/// 98): Address already in use (os error 98)".
fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn name(code: u8) -> &'static str {
    match code {
        2 => "usage",
        3 => "overdue",
        4 => "busy",
        5 => "store",
        _ => "failed",
    }
}

fn code(e: &anyhow::Error) -> u8 {
    // A `Usage` attached as context is found by anyhow's downcast, not in the chain.
    if e.downcast_ref::<Usage>().is_some() {
        return 2;
    }
    code_of(e.as_ref())
}

/// The exit code for an error and its sources (the first cause that decides wins).
pub fn code_of(e: &(dyn std::error::Error + 'static)) -> u8 {
    use rotor_core::StoreError as S;
    use rotor_engine::EngineError as E;
    let chain = std::iter::successors(Some(e), |c| c.source());
    for cause in chain {
        if cause.downcast_ref::<Usage>().is_some()
            || cause.downcast_ref::<rotor_core::ConfigError>().is_some()
        {
            return 2;
        }
        if cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        {
            return BROKEN_PIPE;
        }
        let store = cause
            .downcast_ref::<S>()
            .or_else(|| match cause.downcast_ref::<E>() {
                Some(E::Store(s)) => Some(s),
                _ => None,
            });
        match store {
            Some(
                S::Busy { .. }
                | S::Stale { .. }
                | S::Locked
                | S::Unavailable(_)
                | S::LeaseLost { .. },
            ) => return 4,
            Some(
                S::WrongMasterKey { .. }
                | S::MissingMasterKey { .. }
                | S::Corrupt { .. }
                | S::TooNew { .. }
                | S::NotInitialized { .. },
            ) => return 5,
            _ => {}
        }
        if let Some(E::UnknownSecret { .. } | E::NeedsConfirmation { .. } | E::ManualKind { .. }) =
            cause.downcast_ref::<E>()
        {
            return 2;
        }
    }
    1
}
