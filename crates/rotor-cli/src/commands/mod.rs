//! One module per command group; [`run`] dispatches.

mod audit;
mod daemon;
mod inventory;
mod jwt;
mod probe;
mod rotate;
mod secret;
mod shell;
mod store;

use crate::cli::{Cli, Command};

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let format = cli.format;
    let config = cli.config.as_path();
    // Completions and the man page come from the argument definitions alone, never a server.
    let local_only = matches!(cli.command, Command::Completions(_) | Command::Man);
    if let Some(server) = cli.server.as_deref()
        && !local_only
    {
        return daemon::remote(server, format, cli.command).await;
    }
    match cli.command {
        Command::Init => inventory::init(config).await,
        Command::Check => inventory::check(config, format),
        Command::Status(a) => inventory::status(config, format, &a).await,
        Command::Plan(a) => inventory::plan(config, format, &a).await,
        Command::Rotate(a) => rotate::rotate(config, format, &a).await,
        Command::Resume(a) => rotate::resume(config, format, a.name.as_deref()).await,
        Command::Abort(a) => rotate::abort(config, &a).await,
        Command::Retire(_) => rotate::retire_due(config, format).await,
        Command::Setup(a) => rotate::setup(config, &a.name).await,
        Command::Probe(a) => probe::probe(config, format, &a).await,
        Command::Put(a) => secret::put(config, format, &a).await,
        Command::Get(a) => secret::get(config, format, &a).await,
        Command::History(a) => secret::history(config, format, &a.name).await,
        Command::Store(crate::cli::StoreCommand::Migrate { to }) => {
            store::migrate(config, &to).await
        }
        Command::Store(crate::cli::StoreCommand::Sync) => store::sync(config).await,
        Command::MasterKey(crate::cli::MasterKeyCommand::Rotate) => {
            store::rotate_master_key(config).await
        }
        Command::Serve(a) => daemon::serve(config, &a).await,
        Command::Alerts(a) => daemon::alerts(config, &a, format),
        Command::Token(crate::cli::TokenCommand::New { name, scopes }) => {
            daemon::token_new(&name, &scopes, format)
        }
        Command::Drill(a) => daemon::drill(config, format, &a).await,
        Command::Render => secret::render(config, format).await,
        Command::Audit(a) => audit::run(config, format, a).await,
        Command::Jwks(a) => jwt::jwks(config, &a.name).await,
        Command::Keyring(a) => jwt::keyring(config, &a).await,
        Command::Jwt(a) => jwt::run(config, a).await,
        Command::Completions(a) => shell::completions(a.shell),
        Command::Man => shell::man(),
    }
}
