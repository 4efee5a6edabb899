//! `rotor`: the one binary. Parses arguments, runs one command, maps errors to exit codes.
//!
//! This is the only crate with clap, anyhow and `process::exit`. Each command lives in
//! `commands/`; they share [`context::Context`] (config, store, engine).
//!
//! Exit codes are listed in [`exit`].

mod anchor;
mod cli;
mod commands;
mod context;
mod exit;
mod notify;
mod output;
mod stores;

use std::process::ExitCode;

use clap::Parser;

pub use exit::{Exit, Usage};

/// mimalloc instead of glibc's malloc. `rotor serve` runs a multi-thread runtime, and glibc
/// gives every thread that allocates its own arena and keeps freed pages in each: the idle
/// daemon over 10,000 secrets held 67–72 MiB against 50–57 MiB with the arenas capped
/// (`MALLOC_ARENA_MAX`, which needs the environment or `unsafe` `mallopt`). mimalloc
/// returns freed pages to the OS and is faster on the API's many small allocations. Its
/// secure mode is off: rotor's secret bytes are zeroized by their owners, not the allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let format = args.format;
    init_tracing(args.verbose);
    let runtime = match runtime_for(&args.command).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(commands::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => ExitCode::from(exit::report(&e, format)),
    }
}

/// The daemon's rotations and the fleet-wide ones (an emergency, a drill) run on every core:
/// SCRAM's key derivation, key generation and sealing are CPU work, and on one thread a busy
/// core delays every other rotation. (`rotor serve`'s HTTP API runs on a thread of its own,
/// see rotor-daemon's `api_runtime`.) The other commands do one thing and exit, where a single thread
/// starts faster.
fn runtime_for(command: &cli::Command) -> tokio::runtime::Builder {
    let fleet = match command {
        cli::Command::Serve(_) | cli::Command::Drill(_) => true,
        cli::Command::Rotate(a) => a.emergency,
        _ => false,
    };
    if fleet {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    }
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
        .with_ansi(colour())
        .try_init();
}

/// Colour only for a person at a terminal: not into files or CI logs, not with `TERM=dumb`,
/// not when `NO_COLOR` is set (<https://no-color.org>).
fn colour() -> bool {
    use std::io::IsTerminal as _;
    std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var("TERM").map_or(true, |t| t != "dumb")
}
