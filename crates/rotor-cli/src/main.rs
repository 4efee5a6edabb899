//! `rotor`: the one binary. Parses arguments, runs one command, maps errors to exit codes.
//!
//! This is the only crate with clap, anyhow and `process::exit`. Each command lives in
//! `commands/`; they share [`context::Context`] (config, store, engine).
//!
//! Exit codes (stable, for scripts and cron):
//! - 0: success
//! - 1: the operation failed (a rotation step, a rejected token, a broken audit chain)
//! - 2: bad usage or an invalid config (`rotor check` finds errors)
//! - 3: something is overdue (`rotor status --fail-on-overdue`)
//! - 4: busy: another rotation or process holds the secret or the store
//! - 5: the store cannot be opened (missing, corrupt, newer schema, wrong or missing master key)

mod anchor;
mod cli;
mod commands;
mod context;
mod output;
mod stores;

use std::process::ExitCode;

use clap::Parser;

/// A failure whose exit code is decided by the command, not by the error's type.
#[derive(Debug)]
pub struct Exit(pub u8);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}", self.0)
    }
}

impl std::error::Error for Exit {}

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    init_tracing(args.verbose);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(commands::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(Exit(code)) = e.downcast_ref::<Exit>() {
                return ExitCode::from(*code);
            }
            eprintln!("error: {e:#}");
            ExitCode::from(exit_code(&e))
        }
    }
}

fn exit_code(e: &anyhow::Error) -> u8 {
    use rotor_core::StoreError as S;
    use rotor_engine::EngineError as E;
    for cause in e.chain() {
        if cause.downcast_ref::<rotor_core::ConfigError>().is_some() {
            return 2;
        }
        let store = cause
            .downcast_ref::<S>()
            .or_else(|| match cause.downcast_ref::<E>() {
                Some(E::Store(s)) => Some(s),
                _ => None,
            });
        match store {
            Some(S::Busy { .. } | S::Stale { .. } | S::Locked | S::LeaseLost { .. }) => return 4,
            Some(
                S::WrongMasterKey { .. }
                | S::MissingMasterKey { .. }
                | S::Corrupt { .. }
                | S::TooNew { .. }
                | S::NotInitialized { .. },
            ) => return 5,
            _ => {}
        }
        if let Some(E::UnknownSecret { .. } | E::NeedsConfirmation { .. }) =
            cause.downcast_ref::<E>()
        {
            return 2;
        }
    }
    1
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("ROTOR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
