//! `rotor completions SHELL` and `rotor man`: generated from the same clap definition as
//! the parser, so they never drift from what rotor accepts.

use std::io::Write as _;

use clap::CommandFactory as _;

use crate::cli::Cli;

pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    // Generated into memory first: clap_complete panics on a failed write, and a closed
    // stdout (`| head`) must end quietly instead.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "rotor", &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script)?;
    out.flush()?;
    Ok(())
}

pub fn man() -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    out.flush()?;
    Ok(())
}
